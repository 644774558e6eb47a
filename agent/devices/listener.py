"""The libindi side of the client: callbacks that copy data out, signal, and never raise.

An exception escaping a SWIG director callback would kill the process, so every body is guarded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import PyIndi

if TYPE_CHECKING:
    from agent.devices.client import IndiClient

log = logging.getLogger(__name__)


class Listener(PyIndi.BaseClient):
    """The libindi side: copies data out and signals; never raises."""

    def __init__(self, owner: IndiClient) -> None:
        super().__init__()
        self._owner = owner

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException:  # noqa: BLE001 - an escaping exception would kill the process
            log.exception("INDI callback failed")

    def newDevice(self, d: Any) -> None:  # noqa: N802 - libindi's name
        self._guard(lambda: self._owner._on_device(d.getDeviceName(), present=True))

    def removeDevice(self, d: Any) -> None:  # noqa: N802
        self._guard(lambda: self._owner._on_device(d.getDeviceName(), present=False))

    def newProperty(self, p: Any) -> None:  # noqa: N802
        self._guard(lambda: self._owner._on_property(p, defined=True))

    def updateProperty(self, p: Any) -> None:  # noqa: N802
        self._guard(lambda: self._owner._on_property(p))

    def removeProperty(self, p: Any) -> None:  # noqa: N802
        self._guard(lambda: self._owner._on_remove_property(p.getDeviceName(), p.getName()))

    def newMessage(self, d: Any, message_id: int) -> None:  # noqa: N802
        self._guard(lambda: self._owner._on_message(d.getDeviceName(), d.messageQueue(message_id)))

    def serverConnected(self) -> None:  # noqa: N802
        self._guard(lambda: self._owner._on_server(True, 0))

    def serverDisconnected(self, code: int) -> None:  # noqa: N802
        self._guard(lambda: self._owner._on_server(False, code))


# Listeners we have disconnected are kept for the life of the process: if the last reference went
# away inside a libindi callback, ~BaseClient would run on libindi's own thread and join itself,
# which aborts the process ("Resource deadlock avoided"). One small object per reconnect is cheap.
RETIRED_LISTENERS: list[Listener] = []
