"""Readiness, status and watchdog pings to systemd (the sd_notify protocol, through `sdnotify`).

The unit is `Type=notify`: systemd counts the agent as started only after `ready()`, so a unit
ordered after it (or `systemctl start`, which waits) sees a process that has loaded its sequence
and opened its library, not one still importing numba. With `WatchdogSec=` set, systemd kills and
restarts an agent that stops pinging, which is how a hung libindi call or a deadlock is recovered
at 3 a.m. with nobody at the mount. Ping from the loop whose progress proves the agent is alive,
never from a thread of its own (a thread that only pings would keep a hung agent alive).

Outside systemd (no NOTIFY_SOCKET) every call does nothing, so the same code runs in a terminal.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def watchdog_interval(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between watchdog pings (half of WATCHDOG_USEC, as sd_watchdog_enabled advises), or
    None when systemd watches no watchdog for this process.

    WATCHDOG_PID, when set, names the process the watchdog is meant for: a child that inherited the
    variables (the master builder, a warm-up) must not ping on the agent's behalf.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and (not owner.isdigit() or int(owner) != (os.getpid() if pid is None else pid)):
        return None
    return int(usec) / 2_000_000


class ServiceNotifier:
    """Tells systemd how the agent is doing; a no-op when not started by a `Type=notify` unit."""

    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        self.watchdog_interval = watchdog_interval() if address else None
        self._notifier: Any = None
        if address:
            import sdnotify

            notifier = sdnotify.SystemdNotifier()  # connects to NOTIFY_SOCKET ('@' = abstract)
            if notifier.socket is None:
                log.warning("NOTIFY_SOCKET %s cannot be reached; systemd will not hear from the agent", address)
                self.watchdog_interval = None
            else:
                self._notifier = notifier

    @property
    def enabled(self) -> bool:
        """True when systemd listens (the agent runs under a Type=notify unit)."""
        return self._notifier is not None

    def _send(self, message: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(message)  # sdnotify swallows socket errors: never fails the night

    def ready(self, status: str | None = None) -> None:
        """The agent is up: systemd's `start` returns and units ordered after it may start."""
        self._send("READY=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))

    def status(self, text: str) -> None:
        """One line `systemctl status obsagent` shows, e.g. "imaging M31 (L 12/40)"."""
        self._send(f"STATUS={_one_line(text)}")

    @property
    def watchdog_enabled(self) -> bool:
        return self.watchdog_interval is not None

    def watchdog(self) -> None:
        """A ping; call at least every `watchdog_interval` seconds while the agent makes progress."""
        if self.watchdog_interval is not None:
            self._send("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> None:
        """Ask for more time for the start-up or stop under way (EXTEND_TIMEOUT_USEC): parking the
        mount and closing the cap may take longer than TimeoutStopSec on a slow mount."""
        self._send(f"EXTEND_TIMEOUT_USEC={max(1, int(seconds * 1_000_000))}")

    def stopping(self, status: str | None = None) -> None:
        """The agent is shutting down on purpose (SIGTERM, end of the service)."""
        self._send("STOPPING=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))


def _one_line(text: str) -> str:
    """STATUS= ends at the newline; a multi-line status would be cut or read as other fields."""
    return " ".join(text.split())
