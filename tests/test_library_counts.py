"""`Library.count_captured`: how many frames of a kind the night stored, read from the library."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from library_fixtures import nina_header, write_frame

from agent.library.captures import capture_path
from agent.library.store import Library

NIGHT = "2025-03-01"
_SEEDS = itertools.count(1)  # distinct pixels: the same bytes twice would be a duplicate


def night_count(lib: Library, night_dir: Path, frame_type: str, exposure: float | None,
                filter_name: str | None = None, target: str | None = None) -> int:  # fmt: skip
    """The night's own count as it was written in `NightContext.count_frames`, kept here as the
    reference the library's answer must equal."""

    def slug(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "x"

    folder = night_dir / (slug(target) if target else frame_type)
    prefix = "_".join(
        [frame_type]
        + ([slug(target)] if target else [])
        + ([slug(filter_name)] if filter_name and frame_type in ("light", "flat") else [])
    )
    pattern = f"{prefix}_{exposure:g}s_" if exposure is not None else f"{prefix}_"
    rows = lib.conn.execute(
        "SELECT COUNT(*) FROM frames WHERE path LIKE ? AND state != 'quarantined'",
        (f"{lib.stored(folder)}/{pattern}%",),  # recorded relative to the data folder
    ).fetchone()
    return int(rows[0])


def capture(lib: Library, night_dir: Path, frame_type: str, exposure: float, n: int,
            filter_name: str | None = None, target: str | None = None) -> None:  # fmt: skip
    """Store `n` frames the way the night names them, file first, then the row."""
    for index in range(1, n + 1):
        path = capture_path(night_dir, frame_type, exposure, index, filter_name, target)
        level = 30000.0 if frame_type == "flat" else 1000.0  # a flat at a flat's level passes the ingest gate
        write_frame(path, nina_header(frame_type, exposure, filt=filter_name), level=level, seed=next(_SEEDS))
        assert lib.ingest_file(path).status == "added"


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Library]:
    with Library(tmp_path / "data") as library:
        tonight = library.night_dir(NIGHT)
        capture(library, tonight, "light", 300, 3, "L", "M31")
        capture(library, tonight, "light", 300, 2, "R", "M31")
        capture(library, tonight, "light", 60, 1, "L", "M31")
        capture(library, tonight, "light", 600, 2, "Ha", "NGC 7000")
        capture(library, tonight, "dark", 300, 4)
        capture(library, tonight, "dark", 60, 1)
        capture(library, tonight, "darkflat", 2.0, 2, "L")
        capture(library, tonight, "flat", 2.0, 3, "L")
        capture(library, tonight, "bias", 0.0, 2)
        junk = capture_path(tonight, "light", 300, 4, "L", "M31")
        junk.write_text("not a FITS file")  # quarantined: does not count
        assert library.ingest_file(junk).status == "quarantined"
        capture(library, library.night_dir("2025-02-28"), "light", 300, 2, "L", "M31")  # another night
        elsewhere = tmp_path / "elsewhere" / capture_path(Path("."), "light", 300, 1, "L", "M31")
        write_frame(elsewhere, nina_header("light", 300, filt="L"), seed=next(_SEEDS))
        assert library.ingest_file(elsewhere).status == "added"  # the same name, not under the night's folder
        yield library


CASES = [
    # frame type, exposure, filter, target, frames tonight
    ("light", 300, "L", "M31", 3),
    ("light", 300, "R", "M31", 2),
    ("light", None, "L", "M31", 4),  # no exposure: every exposure
    ("light", 300, None, "M31", 0),  # no filter names frames without one; these all have one
    ("light", None, None, "M31", 6),  # neither: every filter and exposure
    ("light", 600, "Ha", "NGC 7000", 2),  # the target's name made safe for a file name
    ("light", 300, "L", "M33", 0),
    ("dark", 300, None, None, 4),
    ("dark", None, None, None, 5),
    ("darkflat", 2.0, "L", None, 2),  # dark flats are not named by filter
    ("flat", 2.0, "L", None, 3),
    ("flat", 2.0, "R", None, 0),
    ("bias", 0.0, None, None, 2),
]


@pytest.mark.parametrize(("frame_type", "exposure", "filter_name", "target", "expected"), CASES)
def test_counts_the_nights_frames_of_one_kind_as_the_night_did(
    lib: Library, frame_type: str, exposure: float | None, filter_name: str | None, target: str | None,
    expected: int,
) -> None:  # fmt: skip
    tonight = lib.night_dir(NIGHT)
    got = lib.count_captured(tonight, frame_type, exposure, filter_name, target)
    assert got == expected
    assert got == night_count(lib, tonight, frame_type, exposure, filter_name, target)


def test_the_night_is_its_folder_under_frames(lib: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    assert lib.night_dir(NIGHT) == lib.root / "frames" / NIGHT
    assert lib.count_captured(lib.night_dir("2025-02-28"), "light", 300, "L", "M31") == 2
    assert lib.count_captured(lib.night_dir("2025-03-02"), "light", 300, "L", "M31") == 0
    monkeypatch.chdir(lib.root)  # a relative folder is resolved, as the night's count did
    assert lib.count_captured(Path("frames") / NIGHT, "dark", 300) == 4


def test_the_count_gives_the_next_free_index(lib: Library) -> None:
    """The night stores frame count+1 next: after a resume it neither overwrites nor skips."""
    tonight = lib.night_dir(NIGHT)
    index = lib.count_captured(tonight, "dark", 300) + 1
    assert capture_path(tonight, "dark", 300, index) == lib.root / "frames" / NIGHT / "dark" / "dark_300s_0005.fits"
    assert not capture_path(tonight, "dark", 300, index).exists()
    assert capture_path(tonight, "light", 600, 1, "Ha", "NGC 7000").relative_to(tonight) == Path(
        "NGC_7000/light_NGC_7000_Ha_600s_0001.fits"
    )
