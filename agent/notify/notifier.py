"""Send a notification without ever holding up or failing the night.

`send()` only decides (is the kind wanted, is it a repeat, is it too soon after the last one) and
queues; a background thread does the network work through apprise. A dead, slow or refusing
endpoint costs that thread its time-outs and a counted failure in the log, never an exception in
the caller. Nothing touches the network, nor even imports apprise, until a message is sent to a
configured URL.

Flood control: a kind is sent at most once per its minimum interval; what is held back in between
is counted and said in the next message of that kind ("3 more unsafe messages held back"), so
nothing is lost silently. An identical message (same kind, title and body) is not sent again
within `REPEAT_WINDOW`, whatever the interval.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from agent.config.notify import DEFAULT_MIN_INTERVAL, KINDS, NotificationKind, NotificationSettings

if TYPE_CHECKING:
    from agent.config.model import Sequence

log = logging.getLogger(__name__)

REPEAT_WINDOW = 12 * 3600.0  # seconds: about a night
QUEUE_SIZE = 64

_SEVERITY: dict[str, str] = {  # apprise NotifyType values
    "night_summary": "info",
    "unsafe": "warning",
    "fault": "failure",
    "disk_low": "warning",
    "device_missing": "failure",
}


@dataclass(frozen=True)
class NotifierCounts:
    """What happened to the messages asked for since the start."""

    queued: int = 0
    sent: int = 0
    failed: int = 0
    held_back: int = 0  # too soon after the last of its kind
    repeated: int = 0  # identical to one sent within REPEAT_WINDOW
    dropped: int = 0  # the queue was full (the endpoint far slower than the messages)


@dataclass(frozen=True)
class _Message:
    kind: NotificationKind
    title: str
    body: str


_STOP = object()


class Notifier:
    """Sends the kinds of messages the sequence file asks for to its apprise URLs."""

    def __init__(
        self, settings: NotificationSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._counts = NotifierCounts()
        self._last_of_kind: dict[str, float] = {}
        self._held: dict[str, tuple[int, float]] = {}  # kind -> (count, first held at)
        self._recent: dict[tuple[str, str, str], float] = {}
        self._queue: queue.Queue[Any] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition(self._lock)
        self._pending = 0

    @classmethod
    def for_sequence(cls, sequence: Sequence) -> Notifier:
        return cls(sequence.notifications)

    @property
    def enabled(self) -> bool:
        return bool(self.settings.urls)

    @property
    def counts(self) -> NotifierCounts:
        with self._lock:
            return self._counts

    def interval_seconds(self, kind: NotificationKind) -> float:
        """The flood limit of a kind: the file's `min_interval_minutes`, else the kind's default."""
        return 60.0 * self.settings.min_interval_minutes.get(kind, DEFAULT_MIN_INTERVAL[kind])

    def wants(self, kind: str) -> bool:
        return self.enabled and kind in self.settings.events

    def send(self, kind: NotificationKind, title: str, body: str) -> bool:
        """Queue a message; True when it will be delivered (not filtered, held back or dropped).
        Never raises and never waits for the network."""
        try:
            return self._send(kind, title, body)
        except Exception:  # noqa: BLE001 - a notification must never stop the night
            log.exception("notification %r not sent", kind)
            return False

    def _send(self, kind: NotificationKind, title: str, body: str) -> bool:
        if kind not in KINDS:
            log.warning("unknown notification kind %r (known: %s); not sent", kind, ", ".join(KINDS))
            return False
        if not self.wants(kind):
            return False
        with self._lock:
            now = self._clock()
            key = (kind, title, body)
            self._recent = {k: t for k, t in self._recent.items() if now - t < REPEAT_WINDOW}
            if key in self._recent:
                self._count(repeated=1)
                return False
            last = self._last_of_kind.get(kind)
            if last is not None and now - last < self.interval_seconds(kind):
                count, since = self._held.get(kind, (0, now))
                self._held[kind] = (count + 1, since)
                self._count(held_back=1)
                return False
            held, since = self._held.pop(kind, (0, now))
            if held:
                minutes = (now - since) / 60.0
                body = (f"{body}\n\n({held} more {kind.replace('_', ' ')} message{'s' if held != 1 else ''} "
                        f"held back in the last {minutes:.0f} min)")  # fmt: skip
            try:
                self._queue.put_nowait(_Message(kind, title, body))
            except queue.Full:
                self._count(dropped=1)
                log.warning("notification %r dropped: %d messages are still waiting for the endpoint",
                            kind, QUEUE_SIZE)  # fmt: skip
                return False
            self._last_of_kind[kind] = now
            self._recent[key] = now
            self._pending += 1
            self._count(queued=1)
            if self._thread is None:
                self._thread = threading.Thread(target=self._deliver_all, name="notifications", daemon=True)
                self._thread.start()
        return True

    def _count(self, **more: int) -> None:
        self._counts = replace(self._counts, **{k: getattr(self._counts, k) + v for k, v in more.items()})

    def flush(self, timeout: float) -> bool:
        """Wait until every queued message was delivered or failed; False on time-out."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (waiting at most `timeout`), then stop the thread."""
        self.flush(timeout)
        if self._thread is not None:
            with contextlib.suppress(queue.Full):  # the thread is a daemon: it ends with the process
                self._queue.put_nowait(_STOP)

    def _deliver_all(self) -> None:
        sender: Any = None
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                if sender is None:
                    sender = self._apprise()
                ok = bool(sender.notify(title=item.title, body=item.body, notify_type=_SEVERITY[item.kind],
                                        body_format="text"))  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - a broken endpoint or plug-in must not kill the thread
                log.warning("notification %r failed: %s", item.kind, exc)
                ok = False
            else:
                if not ok:
                    log.warning("notification %r could not be delivered to every URL", item.kind)
            with self._idle:
                if ok:
                    self._count(sent=1)
                else:
                    self._count(failed=1)
                self._pending -= 1
                self._idle.notify_all()

    def _apprise(self) -> Any:
        import apprise

        sender = apprise.Apprise(asset=apprise.AppriseAsset(app_id="obsagent", app_desc="observatory agent"))
        for url in self.settings.urls:
            if not sender.add(url):
                log.warning("notification URL %s was not accepted by apprise", _redacted(url))
        return sender


def _redacted(url: str) -> str:
    """A URL for the log without its secrets (tokens and passwords sit after the scheme)."""
    scheme, sep, _ = url.partition("://")
    return f"{scheme}://…" if sep else "…"
