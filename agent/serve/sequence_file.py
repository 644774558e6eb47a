"""The sequence file a long-running service follows: reloaded on SIGHUP or when it changes.

A bad edit must never stop the observatory: it is refused with the validator's message and the
file that was running stays in force until a good one is saved.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from agent.config import Sequence, load_sequence
from agent.errors import ConfigError

log = logging.getLogger(__name__)


class SequenceFile:
    def __init__(self, path: Path, adapt: Callable[[Sequence], Sequence] | None = None) -> None:
        self.path = path
        self.adapt = adapt or (lambda seq: seq)  # e.g. the simulator's device names put in
        self.current: Sequence = self.adapt(load_sequence(path))  # the first load must be good
        self._stamp = self._read_stamp()
        self.refused: str | None = None  # the last bad edit's message, while it stays unfixed

    def _read_stamp(self) -> tuple[float, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def changed(self) -> bool:
        return self._read_stamp() != self._stamp

    def reload(self) -> Sequence | None:
        """Validate the file again; the new sequence when it is good and differs, else None."""
        self._stamp = self._read_stamp()
        try:
            fresh = self.adapt(load_sequence(self.path))
        except ConfigError as exc:
            message = str(exc)
            if message != self.refused:
                log.error("sequence file edit refused; still running the previous one:\n%s", message)
            self.refused = message
            return None
        self.refused = None
        if fresh == self.current:
            return None
        self.current = fresh
        log.warning("sequence file %s reloaded", self.path)
        return fresh
