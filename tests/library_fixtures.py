"""Small synthetic frames with headers as capture programs write them, for the library tests.

Keyword spellings: NINA and SharpCap follow headers published in the PhotonFinder test
samples (NINA 1.10: IMAGETYP 'LIGHT', EXPOSURE+EXPTIME, GAIN, OFFSET, SET-TEMP, CCD-TEMP,
BAYERPAT, SWCREATE 'N.I.N.A. ...'; SharpCap: SWCREATE 'SharpCap', CCD-TEMP, EXPTIME, no
IMAGETYP, DATE-OBS with 7 fraction digits). Ekos/INDI use the MaxIm/SBIG names ('Light
Frame', 'Dark Frame', 'Flat Field', 'Bias Frame'). The ASIAIR sample uses the file name
pattern `Dark_180.0s_Bin1_<camera>_gain<g>_<date>-<time>_<temp>C_<n>.fit`; its header
keywords are the common set and were not checked against a real ASIAIR file.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.io import fits

from agent.fitsfile import write_fits_atomic
from agent.library.keys import ConfigKey, FrameType, SensorKind
from agent.library.store import Library

SHAPE = (24, 32)
CAMERA = "ZWO ASI294MC Pro"

_NINA_TYPES = {"light": "LIGHT", "dark": "DARK", "flat": "FLAT", "bias": "BIAS", "darkflat": "DARKFLAT"}
_EKOS_TYPES = {"light": "Light Frame", "dark": "Dark Frame", "flat": "Flat Field", "bias": "Bias Frame"}


def iso(ts: float, digits: int = 3) -> str:
    dt = datetime.fromtimestamp(ts, UTC)
    frac = f"{dt.microsecond:06d}{'0' * 7}"[:digits]
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if digits else "")


def nina_header(
    frame_type: str,
    exposure: float,
    *,
    when: float | None = None,
    gain: int = 120,
    offset: int = 30,
    set_temp: float = -10.0,
    ccd_temp: float | None = None,
    filt: str | None = None,
    readout: str | None = None,
    camera: str = CAMERA,
) -> fits.Header:
    when = time.time() - 3600 if when is None else when
    h = fits.Header()
    h["IMAGETYP"] = (_NINA_TYPES[frame_type], "Type of exposure")
    h["EXPOSURE"] = (float(exposure), "[s] Exposure duration")
    h["EXPTIME"] = (float(exposure), "[s] Exposure duration")
    h["DATE-OBS"] = (iso(when), "Time of observation (UTC)")
    h["XBINNING"] = (1, "X axis binning factor")
    h["YBINNING"] = (1, "Y axis binning factor")
    h["GAIN"] = (gain, "Sensor gain")
    h["OFFSET"] = (offset, "Sensor gain offset")
    h["EGAIN"] = (1.0022, "[e-/ADU] Electrons per A/D unit")
    h["XPIXSZ"] = (4.63, "[um] Pixel X axis size")
    h["INSTRUME"] = (camera, "Imaging instrument name")
    h["SET-TEMP"] = (set_temp, "[degC] CCD temperature setpoint")
    h["CCD-TEMP"] = (set_temp + 0.1 if ccd_temp is None else ccd_temp, "[degC] CCD temperature")
    h["BAYERPAT"] = ("RGGB", "Sensor Bayer pattern")
    if readout:
        h["READOUTM"] = (readout, "Sensor readout mode")
    if filt:
        h["FILTER"] = (filt, "Active filter name")
    h["SWCREATE"] = ("N.I.N.A. 3.0.0.9001", "Software that created this file")
    return h


def ekos_header(
    frame_type: str,
    exposure: float,
    *,
    when: float | None = None,
    gain: int = 120,
    offset: int = 30,
    ccd_temp: float = -10.0,
    filt: str | None = None,
    camera: str = "ZWO CCD ASI294MC Pro",
) -> fits.Header:
    when = time.time() - 3600 if when is None else when
    h = fits.Header()
    h["EXPTIME"] = (float(exposure), "Total Exposure Time (s)")
    h["CCD-TEMP"] = (ccd_temp, "CCD Temperature (Celsius)")
    h["XBINNING"] = (1, "Binning factor in width")
    h["YBINNING"] = (1, "Binning factor in height")
    h["IMAGETYP"] = (_EKOS_TYPES[frame_type], "Frame Type")
    h["INSTRUME"] = (camera, "CCD Name")
    h["GAIN"] = (gain, "Gain")
    h["OFFSET"] = (offset, "Offset")
    if filt:
        h["FILTER"] = (filt, "Filter")
    h["DATE-OBS"] = (iso(when), "UTC start date of observation")
    return h


def sharpcap_header(exposure: float, *, when: float | None = None, ccd_temp: float = 12.7) -> fits.Header:
    when = time.time() - 3600 if when is None else when
    h = fits.Header()
    h["SWCREATE"] = "SharpCap"
    h["CCD-TEMP"] = ccd_temp
    h["YBINNING"] = 1
    h["XBINNING"] = 1
    h["EXPTIME"] = exposure
    h["DATE-OBS"] = (iso(when, 7), "System Clock-Frame Grabbed")
    h["INSTRUME"] = "ZWO ASI290MM Mini"
    return h


def asiair_header(
    frame_type: str, exposure: float, *, when: float | None = None, gain: int = 120
) -> fits.Header:
    when = time.time() - 3600 if when is None else when
    h = fits.Header()
    h["IMAGETYP"] = frame_type.capitalize()
    h["EXPTIME"] = float(exposure)
    h["DATE-OBS"] = iso(when, 6)
    h["XBINNING"] = 1
    h["YBINNING"] = 1
    h["GAIN"] = gain
    h["OFFSET"] = 30
    h["SET-TEMP"] = -10.0
    h["CCD-TEMP"] = -10.0
    h["INSTRUME"] = "ZWO ASI2600MC Pro"
    h["CREATOR"] = "ZWO ASIAIR"
    return h


def asiair_name(frame_type: str, exposure: float, n: int) -> str:
    return f"{frame_type.capitalize()}_{exposure:.1f}s_Bin1_2600MC_gain120_20240301-220000_-10.0C_{n:04d}.fit"


def write_frame(path: Path, header: fits.Header, *, level: float = 1000.0, seed: int = 0) -> Path:
    """A 32x24 uint16 frame around `level` ADU."""
    rng = np.random.default_rng(seed)
    data = np.clip(rng.normal(level, 5.0, SHAPE), 0, 65535).astype(np.uint16)
    return write_fits_atomic(path, data, header)


def write_series(
    folder: Path, stem: str, headers: list[fits.Header], *, level: float = 1000.0, suffix: str = ".fits"
) -> list[Path]:
    return [
        write_frame(folder / f"{stem}_{i:04d}{suffix}", h, level=level, seed=i) for i, h in enumerate(headers)
    ]


def light_key(**changes: object) -> ConfigKey:
    """A NINA-style light configuration; keyword arguments change single fields."""
    base = ConfigKey(
        frame_type=FrameType.LIGHT,
        camera=CAMERA,
        sensor_kind=SensorKind.CMOS,
        width=SHAPE[1],
        height=SHAPE[0],
        binning="1x1",
        gain=120.0,
        offset=30.0,
        readout_mode=None,
        bit_depth=16,
        filter="L",
        exposure_key=None,
        temperature=-10.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def add_master(
    lib: Library,
    key: ConfigKey,
    *,
    exposure: float | None = None,
    created: float | None = None,
    expires: float | None = None,
    superseded_by: int | None = None,
) -> int:
    """Register a master row directly (matching and needs look only at rows, not pixels)."""
    created = time.time() - 86400 if created is None else created
    expires = created + 30 * 86400 if expires is None else expires
    with lib.transaction() as c:
        cur = c.execute(
            "INSERT INTO masters (frame_type, camera, sensor_kind, width, height, binning, gain, offset, "
            "readout_mode, bit_depth, filter, exposure_key, temperature, exposure, path, n_sources, method, "
            "sources_hash, created_at, newest_source, expires_at, superseded_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 20, 'test', '-', ?, ?, ?, ?)",
            (
                *key.exact(),
                key.temperature,
                exposure if exposure is not None else key.exposure_key,
                f"/masters/{key.frame_type.value}-{created}-{time.monotonic_ns()}.fits",
                created,
                created,
                expires,
                superseded_by,
            ),
        )
        return int(cur.lastrowid or 0)
