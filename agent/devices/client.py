"""The INDI wire: one `IndiClient` owns a `PyIndi.BaseClient`.

libindi calls our callbacks on its own thread. Callbacks only copy values out into plain Python
snapshots and signal a `threading.Condition`; every callback body is guarded, because an exception
escaping a SWIG director callback kills the process. All `sendNew*` calls go through this class
under one lock, from the thread that drives the agent. Waits are event-driven with timeouts.

A lost server is noticed through `serverDisconnected`; `reconnect()` builds a new BaseClient
(libindi refuses to reconnect the old one), re-subscribes and re-enables BLOBs where we had them.
Nothing above `agent.devices` ever sees a PyIndi object.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import PyIndi

from agent.devices import outgoing
from agent.devices.listener import RETIRED_LISTENERS, Listener
from agent.devices.snapshot import BlobArrival, PropertySnapshot, blob_bytes, copy_property
from agent.errors import (
    DeviceMissing,
    IndiError,
    IndiTimeout,
    PropertyAlert,
    PropertyMissing,
    ServerUnreachable,
)

log = logging.getLogger(__name__)

class ExposureAborted(IndiError):
    """An exposure was aborted on request."""


class ServerLost(IndiError):
    """The connection to the INDI server dropped while we waited."""


class IndiClient:
    """Connection to one INDI server with a cache of every property we have seen."""

    def __init__(self, host: str = "localhost", port: int = 7624, connect_timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self._cond = threading.Condition()
        self._send_lock = threading.RLock()
        self._props: dict[tuple[str, str], PropertySnapshot] = {}
        self._devices: set[str] = set()
        self._messages: dict[str, collections.deque[str]] = collections.defaultdict(
            lambda: collections.deque(maxlen=50)
        )
        self._blobs: dict[tuple[str, str], collections.deque[BlobArrival]] = collections.defaultdict(
            lambda: collections.deque(maxlen=4)
        )
        self._blob_seq = 0
        self._blob_props: set[tuple[str, str]] = set()
        self._connected = False
        self._generation = 0  # bumps on every (re)connect
        self._version = 0
        self._defined_at: dict[str, float] = {}  # device -> when it last defined a property
        self._listener: Listener | None = None
        self._watchers: list[Callable[[str, str], None]] = []

    def add_watcher(self, watcher: Callable[[str, str], None]) -> None:
        """Call `watcher(device, property)` after every change is recorded ("" for device or server
        events). It runs on libindi's thread: it must be quick, and what it raises is only logged."""
        with self._cond:
            self._watchers.append(watcher)

    def remove_watcher(self, watcher: Callable[[str, str], None]) -> None:
        with self._cond:
            self._watchers = [w for w in self._watchers if w is not watcher]

    def _notify(self, device: str, name: str) -> None:
        with self._cond:
            watchers = list(self._watchers)
        for watcher in watchers:
            try:
                watcher(device, name)
            except Exception:  # noqa: BLE001 - a watcher must never break the callback
                log.exception("INDI watcher failed")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # ---- callbacks (libindi thread) -------------------------------------------------------
    def _on_device(self, name: str, present: bool) -> None:
        with self._cond:
            if present:
                self._devices.add(name)
            else:
                self._devices.discard(name)
                for key in [k for k in self._props if k[0] == name]:
                    del self._props[key]
            self._version += 1
            self._cond.notify_all()
        self._notify(name, "")

    def _on_property(self, prop: Any, defined: bool = False) -> None:
        snap = copy_property(prop)
        arrivals: list[BlobArrival] = []
        if prop.getType() == PyIndi.INDI_BLOB and snap.state == "Ok":
            for e in PyIndi.PropertyBlob(prop):
                data = blob_bytes(e)
                if data:
                    arrivals.append(BlobArrival(snap.device, snap.name, e.getName(), data, e.getFormat(), 0))
        with self._cond:
            self._version += 1
            snap.version = self._version
            self._props[(snap.device, snap.name)] = snap
            self._devices.add(snap.device)
            if defined:
                self._defined_at[snap.device] = time.monotonic()
            for a in arrivals:
                self._blob_seq += 1
                a.seq = self._blob_seq
                self._blobs[(a.device, a.prop)].append(a)
            self._cond.notify_all()
        self._notify(snap.device, snap.name)

    def _on_remove_property(self, device: str, name: str) -> None:
        with self._cond:
            self._props.pop((device, name), None)
            self._version += 1
            self._cond.notify_all()
        self._notify(device, name)

    def _on_message(self, device: str, text: str) -> None:
        log.info("%s: %s", device, text)
        with self._cond:
            self._messages[device].append(text)
            self._cond.notify_all()

    def _on_server(self, connected: bool, code: int) -> None:
        with self._cond:
            self._connected = connected
            if not connected:
                # code 0 is our own disconnect; anything else is a lost server
                level = logging.DEBUG if code == 0 else logging.WARNING
                log.log(level, "INDI server %s disconnected (code %s)", self.address, code)
            self._version += 1
            self._cond.notify_all()
        self._notify("", "")

    # ---- connection ----------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        with self._cond:
            return self._connected

    def connect(self, timeout: float | None = None) -> None:
        """Connect to the server; raise `ServerUnreachable` with the address when it is not there."""
        timeout = self.connect_timeout if timeout is None else timeout
        with self._send_lock:
            self._drop_listener()
            listener = Listener(self)
            listener.setServer(self.host, int(self.port))
            with contextlib.suppress(AttributeError):
                listener.setConnectionTimeout(int(max(1, timeout)), 0)
            if not listener.connectServer():
                raise ServerUnreachable(
                    f"cannot reach the INDI server at {self.address}; start indiserver or pass --indi HOST:PORT"
                )
            self._listener = listener
            with self._cond:
                self._connected = True
                self._generation += 1
            for device, prop in sorted(self._blob_props):
                self._listener.setBLOBMode(PyIndi.B_ALSO, device, prop)

    def _drop_listener(self) -> None:
        old = self._listener
        self._listener = None
        if old is not None:
            RETIRED_LISTENERS.append(old)
            with contextlib.suppress(Exception):
                old.disconnectServer()
        with self._cond:
            self._connected = False
            self._props.clear()
            self._devices.clear()
            self._cond.notify_all()
        self._notify("", "")

    def disconnect(self) -> None:
        with self._send_lock:
            self._drop_listener()

    def reconnect(self, deadline_s: float = 60.0, first_delay: float = 0.5, max_delay: float = 8.0) -> None:
        """Re-create the client and connect again, backing off exponentially until the deadline."""
        end = time.monotonic() + deadline_s
        delay = first_delay
        last: Exception | None = None
        while True:
            try:
                self.connect()
                return
            except ServerUnreachable as exc:
                last = exc
            if time.monotonic() + delay > end:
                raise ServerUnreachable(
                    f"INDI server at {self.address} did not come back within {deadline_s:.0f} s; "
                    "check that indiserver is running"
                ) from last
            time.sleep(delay)
            delay = min(max_delay, delay * 2)

    def __enter__(self) -> IndiClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # ---- waiting ---------------------------------------------------------------------------
    def _wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Wait on the condition until `predicate()` is truthy; raise on timeout or server loss."""
        end = time.monotonic() + timeout
        with self._cond:
            generation = self._generation
            while True:
                result = predicate()
                if result:
                    return result
                if not self._connected or self._generation != generation:
                    raise ServerLost(f"lost the INDI server at {self.address} while waiting for {what}")
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise IndiTimeout(f"timed out after {timeout:g} s waiting for {what}")
                self._cond.wait(min(remaining, 0.5))

    def devices(self) -> list[str]:
        with self._cond:
            return sorted(self._devices)

    def wait_devices(self, names: Iterable[str], timeout: float = 10.0) -> None:
        wanted = set(names)
        try:
            self._wait(lambda: wanted <= self._devices, timeout, f"devices {sorted(wanted)}")
        except IndiTimeout:
            with self._cond:
                missing = sorted(wanted - self._devices)
                have = sorted(self._devices)
            raise DeviceMissing(
                f"device {', '.join(repr(m) for m in missing)} not found on {self.address} "
                f"(have: {', '.join(have) or 'none'}); check the device name or start its driver"
            ) from None

    def wait_driver_info(self, timeout: float = 5.0) -> None:
        """Wait until every known device has defined DRIVER_INFO (its capabilities), or time out quietly."""
        with contextlib.suppress(IndiTimeout):
            self._wait(
                lambda: self._devices and all((d, "DRIVER_INFO") in self._props for d in self._devices),
                timeout,
                "device definitions",
            )

    def settle(self, quiet: float = 0.3, timeout: float = 5.0, device: str | None = None) -> None:
        """Wait `quiet` seconds, longer while properties are still being *defined* (on `device`, or on any).

        Drivers define their properties in a burst after connecting; value updates (a mount's
        coordinates, a cooler's temperature) go on all the time and do not count.
        """
        start = time.monotonic()
        end = start + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                times = [self._defined_at.get(device, 0.0)] if device else list(self._defined_at.values())
                since = now - max([start, *times])
                if since >= quiet or now >= end:
                    return
                self._cond.wait(min(quiet - since, end - now))

    def has(self, device: str, name: str) -> bool:
        with self._cond:
            return (device, name) in self._props

    def get(self, device: str, name: str) -> PropertySnapshot:
        with self._cond:
            snap = self._props.get((device, name))
            if snap is None:
                if device not in self._devices:
                    raise DeviceMissing(f"device {device!r} not found on {self.address}; check the device name")
                raise PropertyMissing(f"{device} has no property {name}; this driver does not support it")
            return snap

    def wait_property(self, device: str, name: str, timeout: float = 5.0) -> PropertySnapshot:
        try:
            self._wait(lambda: (device, name) in self._props, timeout, f"{device}.{name}")
        except IndiTimeout:
            return self.get(device, name)  # raises the precise missing error
        return self.get(device, name)

    def wait_for(
        self,
        device: str,
        name: str,
        condition: Callable[[PropertySnapshot], bool],
        timeout: float,
        what: str,
        alert_raises: bool = True,
        alert_after: int = 0,
    ) -> PropertySnapshot:
        """Wait until the property satisfies `condition`; ALERT raises `PropertyAlert`.

        Only an Alert newer than version `alert_after` counts: drivers leave a refused command's
        Alert on the property (the Flip-Flat refusing the light while open), and that Alert belongs
        to the command that caused it, not to the next one. Pass the version `send_*` returned.
        """

        def check() -> PropertySnapshot | None:
            snap = self._props.get((device, name))
            if snap is None:
                if device not in self._devices:
                    raise DeviceMissing(f"device {device!r} disappeared from {self.address} (driver exited?)")
                return None
            if alert_raises and snap.state == "Alert" and snap.version > alert_after:
                raise PropertyAlert(self._alert_text(device, name))
            return snap if condition(snap) else None

        result: PropertySnapshot = self._wait(check, timeout, what)
        return result

    def _alert_text(self, device: str, name: str) -> str:
        last = self._messages[device][-1] if self._messages.get(device) else ""
        detail = f": {last.split(': ', 1)[-1].strip()}" if last else ""
        return f"{device} reported ALERT on {name}{detail}"

    def messages(self, device: str) -> list[str]:
        with self._cond:
            return list(self._messages.get(device, ()))

    # ---- sending (owner thread) ------------------------------------------------------------
    def _live(self, device: str, name: str, kind: str) -> Any:
        if self._listener is None or not self.connected:
            raise ServerLost(f"not connected to the INDI server at {self.address}")
        self.get(device, name)  # precise missing errors
        dev = self._listener.getDevice(device)
        if dev is None:
            raise DeviceMissing(f"device {device!r} not found on {self.address}; check the device name")
        getter = {"number": dev.getNumber, "switch": dev.getSwitch, "text": dev.getText}[kind]
        prop = getter(name)
        if prop is None or not prop.isValid():
            raise PropertyMissing(f"{device}.{name} is not a {kind} property; this driver does not support it")
        return prop

    def _baseline(self, device: str, name: str) -> int:
        with self._cond:
            snap = self._props.get((device, name))
            return snap.version if snap else 0

    def send_number(self, device: str, name: str, values: Mapping[str, float]) -> int:
        """Send new numbers in a vector built apart from libindi's copy (see `outgoing.py`)."""
        with self._send_lock:
            live = self._live(device, name, "number")
            prop = outgoing.numbers(live, values, f"{device}.{name}")
            base = self._send(prop, device, name, live)
            self._listener.sendNewNumber(prop)  # type: ignore[union-attr]
            return base

    def send_switch(self, device: str, name: str, on: Iterable[str], exclusive: bool = True) -> int:
        """Send switches in a vector built apart from libindi's copy (see `outgoing.py`)."""
        with self._send_lock:
            live = self._live(device, name, "switch")
            prop = outgoing.switches(live, set(on), exclusive, f"{device}.{name}")
            base = self._send(prop, device, name, live)
            self._listener.sendNewSwitch(prop)  # type: ignore[union-attr]
            return base

    def send_text(self, device: str, name: str, values: Mapping[str, str]) -> int:
        """Send texts in a vector built apart from libindi's copy (see `outgoing.py`)."""
        with self._send_lock:
            live = self._live(device, name, "text")
            prop = outgoing.texts(live, values)
            base = self._send(prop, device, name, live)
            self._listener.sendNewText(prop)  # type: ignore[union-attr]
            return base

    def _send(self, prop: Any, device: str, name: str, live: Any) -> int:
        """Name the detached vector after the live one; the version our answer must exceed."""
        outgoing.address(prop, device, name, live)
        return self._baseline(device, name)

    def set_number(
        self, device: str, name: str, values: Mapping[str, float], timeout: float = 10.0, wait: bool = True
    ) -> PropertySnapshot:
        """Send numbers and wait for the driver to answer Ok (or Idle); ALERT raises."""
        base = self.send_number(device, name, values)
        if not wait:
            return self.get(device, name)
        return self.wait_for(
            device, name, lambda s: s.version > base and s.state in ("Ok", "Idle"), timeout, f"{device}.{name}",
            alert_after=base,
        )

    def set_switch(
        self, device: str, name: str, on: Iterable[str], timeout: float = 10.0, wait: bool = True
    ) -> PropertySnapshot:
        on = list(on)
        current = self.get(device, name)
        if wait and current.state in ("Ok", "Idle") and set(current.on_switches()) == set(on):
            return current  # already so; some drivers do not answer a no-op change
        base = self.send_switch(device, name, on)
        if not wait:
            return self.get(device, name)
        return self.wait_for(
            device, name, lambda s: s.version > base and s.state in ("Ok", "Idle"), timeout, f"{device}.{name}",
            alert_after=base,
        )

    def set_text(
        self, device: str, name: str, values: Mapping[str, str], timeout: float = 10.0, wait: bool = True
    ) -> PropertySnapshot:
        base = self.send_text(device, name, values)
        if not wait:
            return self.get(device, name)
        return self.wait_for(
            device, name, lambda s: s.version > base and s.state in ("Ok", "Idle"), timeout, f"{device}.{name}",
            alert_after=base,
        )

    # ---- BLOBs -----------------------------------------------------------------------------
    def enable_blob(self, device: str, prop: str) -> None:
        """Ask for BLOBs of this one property only (never for the whole device)."""
        with self._send_lock:
            self._blob_props.add((device, prop))
            if self._listener is not None:
                self._listener.setBLOBMode(PyIndi.B_ALSO, device, prop)

    def blob_mark(self, device: str, prop: str) -> int:
        with self._cond:
            return self._blob_seq

    def wake(self) -> None:
        """Wake every waiter so it re-checks its condition (used by aborts)."""
        with self._cond:
            self._cond.notify_all()

    def wait_blob(
        self,
        device: str,
        prop: str,
        after: int,
        timeout: float,
        alert_on: str | None = None,
        cancel: Any = None,
        alert_after: int = 0,
    ) -> BlobArrival:
        """Wait for a BLOB newer than `after`; ALERT on `alert_on` of the same device raises."""

        def check() -> BlobArrival | None:
            if cancel is not None and cancel.is_set():
                raise ExposureAborted(f"exposure on {device} aborted")
            if alert_on is not None:
                watched = self._props.get((device, alert_on))
                # only an ALERT the driver sent after our request counts; an older one is stale
                if watched is not None and watched.state == "Alert" and watched.version > alert_after:
                    raise PropertyAlert(self._alert_text(device, alert_on))
            if device not in self._devices:
                raise DeviceMissing(f"device {device!r} disappeared from {self.address} (driver exited?)")
            for arrival in self._blobs.get((device, prop), ()):
                if arrival.seq > after:
                    return arrival
            return None

        result: BlobArrival = self._wait(check, timeout, f"an image from {device}.{prop}")
        return result

    # ---- devices -----------------------------------------------------------------------------
    def connect_device(self, device: str, timeout: float = 15.0) -> None:
        """Switch CONNECTION on and wait for the driver's properties to be defined."""
        self.wait_devices([device], timeout=timeout)
        snap = self.wait_property(device, "CONNECTION", timeout=timeout)
        if snap.values.get("CONNECT") and snap.state == "Ok":
            self.settle(quiet=0.5, timeout=10.0, device=device)
            return
        self.set_switch(device, "CONNECTION", ["CONNECT"], timeout=timeout)
        self.wait_for(
            device,
            "CONNECTION",
            lambda s: bool(s.values.get("CONNECT")) and s.state == "Ok",
            timeout,
            f"{device} to connect",
        )
        # Drivers define their properties in a burst after connecting; optional ones (cooler, gain,
        # cap) must not be mistaken for absent, so wait until the burst has been quiet for half a second.
        self.settle(quiet=0.5, timeout=10.0, device=device)
