"""Is the system clock right? A Raspberry Pi has no real-time clock: after a power cut without
network it starts at its last shutdown time, and a night planned on it is planned for the wrong sky.

`clock_synchronised()` asks the kernel (adjtimex: STA_UNSYNC clear means an NTP/PPS discipline is
running); `gps_time()` reads an INDI GPS device (TIME_UTC, as `indi_gpsd`/`gps_simulator.cpp`
publish it); `check_clock` compares them and says what is wrong.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
from dataclasses import dataclass, field

from agent.devices.client import IndiClient

MAX_CLOCK_ERROR_S = 5.0
_STA_UNSYNC = 0x0040


class _Timex(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint), *((n, ctypes.c_long) for n in (
        "offset", "freq", "maxerror", "esterror")), ("status", ctypes.c_int),
        *((n, ctypes.c_long) for n in ("constant", "precision", "tolerance")),
        ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
        *((n, ctypes.c_long) for n in ("stabil", "jitcnt", "calcnt", "errcnt", "stbcnt")),
        ("tai", ctypes.c_int), ("pad", ctypes.c_int * 11)]


def clock_synchronised() -> bool | None:
    """True when the kernel says the clock is disciplined (NTP/PPS), None when it cannot tell."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return not (tx.status & _STA_UNSYNC) and state != 5  # 5 = TIME_ERROR


def gps_time(client: IndiClient, device: str) -> dt.datetime | None:
    """The GPS device's UTC (TIME_UTC.UTC), None when it has no fix yet."""
    if not client.has(device, "TIME_UTC"):
        return None
    text = str(client.get(device, "TIME_UTC").values.get("UTC", "")).strip()
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "")).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


@dataclass
class ClockCheck:
    best_time: dt.datetime
    source: str  # "gps" or "system"
    warnings: list[str] = field(default_factory=list)


def check_clock(
    system_now: dt.datetime, gps_now: dt.datetime | None, synchronised: bool | None
) -> ClockCheck:
    """Prefer the GPS time; warn when the system clock differs from it by more than a few seconds,
    or, without GPS, when the system clock is not synchronised."""
    if gps_now is not None:
        check = ClockCheck(gps_now, "gps")
        error = (system_now - gps_now).total_seconds()
        if abs(error) > MAX_CLOCK_ERROR_S:
            check.warnings.append(
                f"the system clock is {error:+.0f} s off the GPS time; using the GPS time — enable NTP or gpsd "
                "time sync (chrony) so planning uses the right sky"
            )
        return check
    check = ClockCheck(system_now, "system")
    if synchronised is False:
        check.warnings.append(
            "the system clock is not synchronised (no NTP, no RTC on a Raspberry Pi): the night may be planned "
            "for the wrong time; connect to a network with NTP or add a GPS"
        )
    return check
