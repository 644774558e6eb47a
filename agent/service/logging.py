"""Logging for the long-lived agent: into the journal with priorities, libindi's chatter kept out.

Under systemd, stdout and stderr are journal streams (JOURNAL_STREAM names the stream). journald
stamps every line with the time itself and reads a `<N>` syslog priority at the start of a line,
so the agent writes `<6>agent.night.runner: ...` (no timestamp of its own): `journalctl -p warning`
then shows exactly the warnings and errors. Outside the journal (a terminal) lines keep their
timestamps.

libindi writes straight to file descriptor 2 (IDLog is `vfprintf(stderr, ...)`), below Python's
`sys.stderr`, so no Python logging setting can silence it. The agent's descriptor 2 is pointed at a
small filter process (`libindi_filter.py`) that drops the connection chatter and passes the rest;
the agent's own log records and faulthandler's crash dumps go to a duplicate of the original
descriptor, straight to the journal, never through the filter.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# logging level -> syslog priority (sd-daemon.h: SD_CRIT 2, SD_ERR 3, SD_WARNING 4, SD_INFO 6, SD_DEBUG 7)
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))

_FILTER = Path(__file__).with_name("libindi_filter.py")


def under_journald() -> bool:
    """True when stderr is the journal stream systemd gave us (JOURNAL_STREAM is "DEV:INODE" of it,
    checked against fd 2 as systemd.exec(5) advises: a redirected stderr is not the journal)."""
    dev, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not (dev.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(2)
    except OSError:
        return False
    return st.st_dev == int(dev) and st.st_ino == int(inode)


def syslog_priority(levelno: int) -> int:
    for level, priority in _PRIORITIES:
        if levelno >= level:
            return priority
    return 7


class JournalFormatter(logging.Formatter):
    """`<N>logger: message`, each line of a traceback prefixed too (journald splits records at
    newlines, and an unprefixed continuation line would be stored at the default priority)."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


@dataclass(frozen=True)
class ServiceLogging:
    """What `configure_service_logging` set up."""

    journal: bool
    libindi_filtered: bool
    stream: IO[str]


_configured: ServiceLogging | None = None


def configure_service_logging(level: int = logging.INFO, *, filter_libindi: bool = True) -> ServiceLogging:
    """Route the process's logging for a long run (call once, early, before PyIndi connects).

    Replaces the root logger's handlers. With `filter_libindi`, descriptor 2 goes through the
    filter process (libindi's connection chatter dropped, kept at debug priority when `level` is
    DEBUG). Calling it again only changes the level.
    """
    global _configured
    root = logging.getLogger()
    root.setLevel(level)
    if _configured is not None:
        return _configured
    journal = under_journald()
    stream: IO[str] = sys.stderr
    filtered = False
    if filter_libindi:
        stream, filtered = _filter_descriptor_2(journal, keep_chatter=level <= logging.DEBUG)
    handler = logging.StreamHandler(stream)
    if journal:
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    logging.captureWarnings(True)
    # a segfault in libindi dumps every Python thread's stack straight to the journal
    faulthandler.enable(file=stream, all_threads=True)
    _configured = ServiceLogging(journal=journal, libindi_filtered=filtered, stream=stream)
    return _configured


def _filter_descriptor_2(journal: bool, *, keep_chatter: bool) -> tuple[IO[str], bool]:
    """Start the filter on a copy of descriptor 2 and point descriptor 2 at it; returns the stream
    that reaches the original stderr, and whether the filter runs."""
    sys.stderr.flush()
    original = os.dup(2)
    stream = os.fdopen(original, "w", buffering=1, encoding="utf-8", errors="replace")
    args = [sys.executable, "-I", "-S", str(_FILTER)]
    args += ["--journal"] if journal else []
    args += ["--keep-chatter"] if keep_chatter else []
    try:
        child = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=original, close_fds=True)
    except OSError as exc:
        logging.getLogger(__name__).warning("libindi's messages are not filtered: %s", exc)
        return stream, False
    assert child.stdin is not None
    os.dup2(child.stdin.fileno(), 2)
    child.stdin.close()  # descriptor 2 is now the only write end the agent holds
    return stream, True
