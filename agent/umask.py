"""The process umask, for files made under a temporary name (mkstemp makes 0600; a share or a web
server must read what obsagent writes). Standard library only: the status file's readers import it."""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path


@functools.cache
def process_umask() -> int:
    """Read once: from /proc (no window where it is changed, other threads may be writing), else
    by setting and restoring it."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode of a file created now: 0666 less the umask."""
    return 0o666 & ~process_umask()
