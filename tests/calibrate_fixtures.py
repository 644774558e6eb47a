"""Simulated calibration sets for the calibration tests: masters built from indi_sim model frames.

Frames are small (256x192) and rendered through `SimModel.render`; headers carry what a driver
would write (IMAGETYP, EXPTIME, CCD-TEMP, ADCBITS, BAYERPAT).  Sets are cached per session since
several tests look at the same masters.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from agent.fitsfile import write_fits_atomic
from agent.stacking.masters import CalibrationMaster
from agent.stacking.masterset import MasterSet
from agent.stacking.recipes import build_master
from indi_sim.model import Optics, SimModel

WIDTH, HEIGHT = 256, 192
UNIFORM_SKY = Optics(sky_gradient=(0.0, 0.0), star_density_per_deg2=0.0)
IMAGETYP = {"light": "Light Frame", "bias": "Bias Frame", "dark": "Dark Frame", "flat": "Flat Field",
            "darkflat": "Dark Flat"}


def sim_header(model: SimModel, frame_type: str, exposure: float, temperature: float = 0.0) -> fits.Header:
    h = fits.Header()
    h["IMAGETYP"] = IMAGETYP[frame_type]
    h["EXPTIME"] = model.spec.min_exposure_s if frame_type == "bias" else exposure
    h["CCD-TEMP"] = temperature
    h["ADCBITS"] = model.spec.bit_depth
    h["XBINNING"] = 1
    h["YBINNING"] = 1
    h["SENSKIND"] = model.spec.kind
    if model.spec.cfa:
        h["BAYERPAT"] = model.spec.cfa
    return h


def render(model: SimModel, frame_type: str, n: int, exposure: float = 1.0, **kw: object) -> list[np.ndarray]:
    sim_type = "dark" if frame_type == "darkflat" else frame_type
    if sim_type in ("dark", "bias"):
        kw.setdefault("cap_closed", True)  # a CMOS sensor has no shutter: darks are taken behind the cap
    return [model.render(sim_type, exposure=exposure, **kw) for _ in range(n)]  # type: ignore[arg-type]


def write_frames(directory: Path, stem: str, frames: list[np.ndarray], header: fits.Header) -> list[Path]:
    return [write_fits_atomic(directory / f"{stem}_{i:03d}.fits", f, header) for i, f in enumerate(frames)]


@dataclass
class CalibrationSet:
    """A model with the masters built from its frames and the settings that made them."""

    model: SimModel
    masters: MasterSet
    bias: CalibrationMaster
    dark: CalibrationMaster
    darkflat: CalibrationMaster | None
    flat: CalibrationMaster
    light_exposure: float
    flat_exposure: float
    n: int
    flat_kw: dict[str, Any]
    sun_altitude: float


@functools.cache
def cmos_set(preset: str, n: int = 16, seed: int = 5) -> CalibrationSet:
    """CMOS masters matched to 60 s lights of a uniform twilight sky; flats of ~45 % full scale."""
    m = SimModel(preset, seed=seed, width=WIDTH, height=HEIGHT, optics=UNIFORM_SKY)
    exp, fexp = 60.0, 1.0
    flat_kw: dict[str, Any] = {"panel_brightness": 100, "cap_closed": True}
    if preset == "imx571":
        fexp = 2.0
    bias = build_master("bias", render(m, "bias", n), header=sim_header(m, "bias", 0.0))
    dark = build_master("dark", render(m, "dark", n, exp), header=sim_header(m, "dark", exp))
    darkflat = build_master("darkflat", render(m, "darkflat", n, fexp), header=sim_header(m, "darkflat", fexp))
    flats = render(m, "flat", n, fexp, **flat_kw)
    flat = build_master("flat", flats, darkflat=darkflat, header=sim_header(m, "flat", fexp))
    return CalibrationSet(m, MasterSet(bias=bias, dark=dark, flat=flat), bias, dark, darkflat, flat, exp, fexp, n,
                          flat_kw, -14.0)


@functools.cache
def ccd_set(n: int = 16, seed: int = 7) -> CalibrationSet:
    """CCD masters: bias, a 600 s dark for scaling, flats calibrated with the bias."""
    m = SimModel("ccd", seed=seed, width=WIDTH, height=HEIGHT, optics=UNIFORM_SKY)
    dexp, fexp = 600.0, 2.0
    flat_kw: dict[str, Any] = {"panel_brightness": 90, "cap_closed": True}
    bias = build_master("bias", render(m, "bias", n), header=sim_header(m, "bias", 0.0))
    dark = build_master("dark", render(m, "dark", n, dexp), header=sim_header(m, "dark", dexp))
    flats = render(m, "flat", n, fexp, **flat_kw)
    flat = build_master("flat", flats, bias=bias, header=sim_header(m, "flat", fexp))
    return CalibrationSet(m, MasterSet(bias=bias, dark=dark, flat=flat), bias, dark, None, flat, 300.0, fexp, n,
                          flat_kw, -30.0)


def light(cs: CalibrationSet, exposure: float | None = None, noise: bool = True, seed: int = 99,
          temperature: float = 0.0, sun_altitude: float | None = None) -> tuple[np.ndarray, fits.Header]:
    """One light of the uniform sky, its noise drawn from `seed` (independent of test order)."""
    exp = cs.light_exposure if exposure is None else exposure
    sun = cs.sun_altitude if sun_altitude is None else sun_altitude
    data = cs.model.render("light", exposure=exp, sun_altitude=sun, noise=noise, temperature=temperature,
                           rng=np.random.default_rng(seed))
    return data, sim_header(cs.model, "light", exp, temperature)


def expected_calibrated(cs: CalibrationSet, exposure: float | None = None) -> np.ndarray:
    """Noise-free truth of a calibrated light: sky signal flat-fielded by the true flat shape."""
    m = cs.model
    exp = cs.light_exposure if exposure is None else exposure
    sky = m.expected_adu("light", exposure=exp, sun_altitude=cs.sun_altitude) - m.expected_adu("dark", exposure=exp, cap_closed=True)
    flat_kw = dict(cs.flat_kw)
    f = m.expected_adu("flat", exposure=cs.flat_exposure, **flat_kw) - m.expected_adu("dark", exposure=cs.flat_exposure, cap_closed=True)
    return (sky * (float(f.mean(dtype=np.float64)) / f)).astype(np.float64)
