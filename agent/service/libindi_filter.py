"""The filter between the agent's file descriptor 2 and the journal (run as its own small process).

libindi, inside pyindi-client, logs with IDLog(), a plain `vfprintf(stderr, ...)`
(libs/indicore/indicom.c): every connection attempt prints "INDI::BaseClient::connectServer:
creating new connection..." and a reconnect may add "Already connected." or "Already
disconnected.". A service that reconnects all night would fill the journal with them at the
journal's default priority. The agent therefore points its descriptor 2 at this process, which
drops those lines (keeps them at debug priority with --keep-chatter) and passes every other line
(libindi's real complaints such as "Bad XML from ...", Python tracebacks from libindi's thread,
numba warnings) with a warning priority prefix when writing to the journal.

It runs in its own process, not a thread, so the last lines before a crash (a C++ abort message,
which the design notes libindiclient can cause) still reach the journal: the process reads until
every writer has gone, and ignores the signals that stop the agent. It uses only the standard
library and is started with `python -I -S` (no site packages: a fast start, nothing to break).
"""

from __future__ import annotations

import re
import signal
import sys

# IDLog lines of libindi's client that say nothing a user must act on (libs/indiclient/baseclient.cpp).
CHATTER = re.compile(r"^INDI::BaseClient::(?:connectServer|disconnectServer): ")
# A driver's update that reaches a new client before the property's definition (a timer racing the
# client's getProperties): libindi prints the error and then the whole XML message, line by line.
UNDEFINED = re.compile(r"^Dispatch command error\(-?\d+\): INDI: Could not find property ")
XML_END = re.compile(r"^</\w+Vector>\s*$")
_PREFIXED = re.compile(r"^<[0-7]>")
WARNING, DEBUG = 4, 7


def render(line: str, *, journal: bool, keep_chatter: bool) -> str | None:
    """The text to write for one line read (without its newline), or None to drop it."""
    chatter = CHATTER.match(line) is not None
    if chatter and not keep_chatter:
        return None
    if not journal or _PREFIXED.match(line):
        return line
    return f"<{DEBUG if chatter else WARNING}>{line}"


def main(argv: list[str]) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # stop at end of input, once the agent has gone
    journal, keep = "--journal" in argv, "--keep-chatter" in argv
    out = sys.stdout.buffer
    in_dump = False  # inside the XML libindi prints after an update for an undefined property
    for raw in sys.stdin.buffer:
        line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        if UNDEFINED.match(line):
            in_dump = True
        if in_dump:
            in_dump = XML_END.match(line) is None
            if not keep:
                continue
            text = f"<{DEBUG}>{line}" if journal else line
        else:
            text = render(line, journal=journal, keep_chatter=keep)
        if text is not None:
            try:
                out.write(text.encode("utf-8") + b"\n")
                out.flush()
            except OSError:  # the journal went away; keep draining so writers never block
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
