"""Importing masters made elsewhere (or by us) as masters the matcher can use.

A master is never ingested as a raw frame (see `processed`); asked for explicitly it is copied
into `masters/<type>/` in ADU as float32, with our provenance header, and registered like a built
master (no build job; method 'imported'; the original file named in its stats).

Scale: masters from Siril, Astro Pixel Processor and PixInsight are float data normalised to
[0, 1]: each divides 16-bit integer frames by 65535. A float master whose finite pixels all lie
within [0, 1] is therefore multiplied by 65535, unless the header states the full scale (BITDEPTH
or ADCBITS: 2^bits - 1; obsagent's own ADUSCALE) or the user gives `scale=`. Integer masters and
float masters above 1 are already ADU (scale 1). The copy is written in obsagent's product form
(`stacking.products`: float32 ADU / 65535 with ADUSCALE), which the calibration reads back in ADU. The key's bit depth is the raw frames' (16), not the float master's, so a
master and the lights it calibrates compare equal.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__
from agent.library import dialects, processed
from agent.library.camera_names import aliases_for, canonical_camera, known_spelling
from agent.library.headers import capture_time, frame_type_from_path
from agent.library.ingest import file_checksum, without_path
from agent.library.keys import ConfigKey, FrameType, LibraryPolicy, exposure_key
from agent.library.sensor_kinds import ensure_camera

if TYPE_CHECKING:
    import numpy as np
    from astropy.io import fits

    from agent.library.store import Library

# Key fields a user may give when the master's header lacks or misstates them.
SETTABLE = ("camera", "gain", "offset", "filter", "exposure", "temperature", "binning", "readout_mode", "scale")
RAW_BIT_DEPTH = 16


@dataclass(frozen=True)
class MasterImport:
    path: str
    status: str  # imported | unchanged | refused
    master_id: int | None = None
    reason: str | None = None
    key: ConfigKey | None = None
    scale: float | None = None
    how: str | None = None  # how the scale was decided

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "status": self.status,
            "master_id": self.master_id,
            "reason": self.reason,
            "key": None if self.key is None else self.key.as_dict(),
            "scale": self.scale,
            "scale_reason": self.how,
        }


class Refused(Exception):
    """This file cannot be imported as a master; the message says why and what to give."""


def adu_scale(data: np.ndarray, header: fits.Header, bitpix: int, given: float | None) -> tuple[float, str]:
    """The factor that brings the master to ADU, and why (see the module's docstring)."""
    import numpy as np

    if given is not None:
        return given, "scale given"
    stated = dialects.number(header, "ADUSCALE")  # obsagent's products: ADU = value x ADUSCALE
    if stated is not None and stated > 0:
        return stated, "ADUSCALE in the header"
    if bitpix > 0:
        return 1.0, "integer data are ADU"
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        raise Refused("no finite pixels")
    if float(finite.max()) > 1.0 or float(finite.min()) < -0.5:
        return 1.0, "float data above 1 are ADU"
    bits = dialects.number(header, "BITDEPTH", "ADCBITS")
    if bits is not None and 8 <= bits <= 32:
        return float(2 ** int(bits) - 1), f"float 0-1 data, {int(bits)}-bit full scale from the header"
    return 65535.0, "float 0-1 data (Siril/APP/PixInsight normalise 16-bit frames by 65535)"


def _frame_type(found: processed.ProcessedEvidence | None, path: Path, given: FrameType | None) -> FrameType:
    if given is not None:
        return given
    if found is not None and found.master_type is not None:
        return found.master_type
    words = re.sub(r"[^a-z]+", " ", path.stem.lower().replace("master", " ")).split()
    from_name = frame_type_from_path(path.with_name(" ".join(words) + path.suffix))
    if from_name is not None and from_name is not FrameType.LIGHT:
        return from_name
    raise Refused("the header does not say which master this is; give --type dark|flat|bias|darkflat")


def master_key(
    lib: Library, header: fits.Header, shape: tuple[int, ...], path: Path,
    frame_type: FrameType | None, settings: dict[str, str],
) -> tuple[ConfigKey, float | None]:  # fmt: skip
    """The key a master serves, from its header with the user's settings on top."""
    found = processed.classify(header, shape)
    if found is not None and found.kind is not processed.Processing.MASTER:
        raise Refused(f"not a master: {found.reason()}")
    if found is None and frame_type is None:
        raise Refused("no sign of a master in the header (IMAGETYP, CALFRAME, STACKCNT, NCOMBINE); "
                      "a raw frame is ingested without --masters, or give --type to import it as a master")  # fmt: skip
    kind = _frame_type(found, path, frame_type)
    if kind is FrameType.LIGHT:
        raise Refused("a master light is a stack, not a calibration master")
    written = settings.get("camera") or dialects.camera_name(header)
    if written is None:
        raise Refused("no INSTRUME in the header; give --set camera=NAME")
    camera = known_spelling(lib.conn, canonical_camera(written, aliases_for(lib.conn)))
    if len(shape) != 2:
        raise Refused(f"image has shape {shape}; a master of a raw configuration has one plane")

    def num(name: str, read: float | None) -> float | None:
        return float(settings[name]) if name in settings else read

    exposure = num("exposure", dialects.exposure(header))
    if kind in (FrameType.DARK, FrameType.DARKFLAT) and exposure is None:
        raise Refused("no EXPTIME in the header; give --set exposure=SECONDS")
    if "binning" in settings:
        bx, _, by = settings["binning"].lower().partition("x")
        bins = (int(bx), int(by or bx))
    else:
        bins = dialects.binning(header) or (1, 1)
    temperature = num("temperature", dialects.sensor_temperature(header))
    if temperature is None:
        temperature = dialects.set_point(header)
    with lib.transaction() as c:
        sensor = ensure_camera(c, camera)
    key = ConfigKey(
        frame_type=kind,
        camera=camera,
        sensor_kind=sensor,
        width=int(shape[-1]),
        height=int(shape[-2]),
        binning=f"{bins[0]}x{bins[1]}",
        gain=num("gain", dialects.gain(header)),
        offset=num("offset", dialects.offset(header)),
        readout_mode=settings.get("readout_mode") or dialects.readout_mode(header),
        bit_depth=RAW_BIT_DEPTH,
        filter=(settings.get("filter") or dialects.filter_name(header)) if kind is FrameType.FLAT else None,
        exposure_key=exposure_key(kind, exposure),
        temperature=temperature,
    )
    return key, exposure


def import_master(
    lib: Library,
    path: str | Path,
    *,
    frame_type: FrameType | None = None,
    settings: dict[str, str] | None = None,
    policy: LibraryPolicy | None = None,
) -> MasterImport:
    """Import one master file; never raises for a file it cannot use (status 'refused')."""
    from agent.errors import CorruptFile
    from agent.fitsfile import read_fits

    p = Path(path).resolve()
    settings = dict(settings or {})
    try:
        checksum = file_checksum(p)
        data, header = read_fits(p)
        row = lib.conn.execute("SELECT id FROM masters WHERE sources_hash = ?", (checksum,)).fetchone()
        if row is not None:
            return MasterImport(str(p), "unchanged", int(row[0]), "already imported")
        own = lib.conn.execute("SELECT id FROM masters WHERE path = ?", (_stored(lib, p),)).fetchone()
        if own is not None:
            return MasterImport(str(p), "unchanged", int(own[0]), "already a master of this library")
        key, exposure = master_key(lib, header, data.shape, p, frame_type, settings)
        given = float(settings["scale"]) if "scale" in settings else None
        scale, how = adu_scale(data, header, int(header.get("BITPIX", -32)), given)
    except CorruptFile as exc:
        return MasterImport(str(p), "refused", reason=without_path(exc, p))
    except OSError as exc:
        return MasterImport(str(p), "refused", reason=exc.strerror or str(exc))
    except (Refused, dialects.HeaderValueError) as exc:
        return MasterImport(str(p), "refused", reason=str(exc))
    except ValueError as exc:
        return MasterImport(str(p), "refused", reason=f"a --set value is not a number ({exc})")
    master_id = _register(lib, p, checksum, header, data, key, exposure, scale, how, policy or LibraryPolicy())
    return MasterImport(str(p), "imported", master_id, key=key, scale=scale, how=how)


def _register(
    lib: Library, source: Path, checksum: str, header: fits.Header, data: np.ndarray,
    key: ConfigKey, exposure: float | None, scale: float, how: str, policy: LibraryPolicy,
) -> int:  # fmt: skip
    """Write the ADU copy (file first), then its row."""
    import numpy as np

    from agent.stacking.products import write_product

    out = provenance(key, header, source, scale)
    stem = re.sub(r"[^A-Za-z0-9+.\-]+", "_", source.stem)[:60]
    target = lib.masters_dir / key.frame_type.value / f"imported_{stem}_{checksum[:10]}.fits"
    write_product(target, (np.asarray(data, dtype=np.float64) * scale).astype(np.float32), out)
    n = processed.source_count(header) or 1
    now = time.time()
    notes: list[str] = []
    newest = capture_time(header, source.stat().st_mtime, notes)
    stats = {"imported_from": str(source), "scale": scale, "scale_reason": how, "checksum": file_checksum(target),
             "writer": dialects.dialect(header)}  # fmt: skip
    with lib.transaction() as c:
        cur = c.execute(
            "INSERT INTO masters (frame_type, camera, sensor_kind, width, height, binning, gain, offset, "
            "readout_mode, bit_depth, filter, exposure_key, temperature, exposure, path, n_sources, method, "
            "stats, sources_hash, created_at, newest_source, expires_at, job_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (*key.exact(), key.temperature, exposure, _stored(lib, target), n, "imported", json.dumps(stats),
             checksum, now, newest, newest + policy.max_age_for(key.frame_type) * 86400.0),
        )  # fmt: skip
    return int(cur.lastrowid or 0)


def _stored(lib: Library, path: Path) -> str:
    """How the library records a path (relative inside its data folder, where it can say so)."""
    stored = getattr(lib, "stored", None)
    return str(stored(path)) if stored is not None else str(path)


def provenance(key: ConfigKey, original: fits.Header, source: Path, scale: float) -> fits.Header:
    """Our master header (readable by Siril and PixInsight) for an imported master."""
    from astropy.io import fits

    from agent.library.build_job import provenance_header

    h: fits.Header = provenance_header(key, 0, processed.source_count(original) or 1)
    del h["OALIBJOB"]
    if "CCD-TEMP" in h:
        h["CCD-TEMP"] = (h["CCD-TEMP"], "[degC] sensor temperature of the master")
    h["SWCREATE"] = f"obsagent {__version__}"
    h["IMPORTED"] = (source.name[:48], "source file")
    h["IMPSCALE"] = (scale, "factor that brought the imported master to ADU")
    writer = dialects.text(original, "PROGRAM", "SOFTWARE", "SWCREATE", "CREATOR")
    if writer:
        h["ORIGPROG"] = (writer[:40], "program that made it")
    h.add_history(f"imported {hashlib.sha256(str(source).encode()).hexdigest()[:12]} from {source}"[:70])
    for line in dialects.history(original)[:50]:
        h.add_history(line[:70])
    return fits.Header(h)
