"""Two readout modes of one camera are two configurations: their darks never mix.

A readout mode changes read noise, bias and full well (Player One SENSOR_MODE, QHY READ_MODE,
Touptek conversion gain), so "High Gain" and "Low Noise" frames of the same camera, gain, offset,
exposure and temperature must build two masters, and each light must be calibrated with its own.
"""

from __future__ import annotations

from pathlib import Path

from library_fixtures import nina_header, write_series

from agent.library.builder import drain, schedule
from agent.library.keys import ConfigKey, FrameType, LibraryPolicy
from agent.library.match import match_light
from agent.library.store import Library

MIN5 = LibraryPolicy(min_frames={FrameType.BIAS: 5, FrameType.DARK: 5, FrameType.DARKFLAT: 5, FrameType.FLAT: 5})
MODES = {"High Gain": 1200.0, "Low Noise": 800.0}  # the dark level of each mode (a different bias)


def test_two_readout_modes_give_two_keys_and_their_darks_never_mix(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    for i, (mode, level) in enumerate(MODES.items()):
        slug = mode.replace(" ", "")
        write_series(inbox / slug / "darks", "dark", [nina_header("dark", 60, readout=mode) for _ in range(5)],
                     level=level)
        write_series(inbox / slug / "darkflats", "df", [nina_header("darkflat", 2.0, readout=mode) for _ in range(5)],
                     level=level)
        write_series(inbox / slug / "flats", "flat",
                     [nina_header("flat", 2.0, filt="L", readout=mode) for _ in range(5)], level=20000 + 100 * i)
        write_series(inbox / slug / "lights", "light",
                     [nina_header("light", 60, filt="L", readout=mode) for _ in range(1)], level=level + 300)
    with Library(tmp_path / "data") as lib:
        lib.ingest_paths([inbox])
        dark_groups = lib.groups(MIN5, FrameType.DARK)
        assert sorted(g.key.readout_mode or "" for g in dark_groups) == sorted(MODES)
        keys = {g.key for g in dark_groups}
        assert len(keys) == 2  # same camera, gain, offset, exposure, temperature: only the mode differs

        schedule(lib, MIN5)
        drain(lib, MIN5)
        darks = {m.key.readout_mode: m for m in lib.masters(frame_type=FrameType.DARK)}
        assert set(darks) == set(MODES)
        for mode, master in darks.items():
            sources = lib.conn.execute(
                "SELECT DISTINCT readout_mode FROM frames WHERE master_id = ?", (master.id,)
            ).fetchall()
            assert [row[0] for row in sources] == [mode]  # no frame of the other mode went in

        for mode in MODES:
            (light,) = (inbox / mode.replace(" ", "") / "lights").glob("*.fits")
            row = lib.light_frame(light)
            assert row is not None
            key = ConfigKey.from_row(row, temperature=row["temperature"])
            result = match_light(lib, key, float(row["exposure"]), MIN5)
            dark = result.choices[FrameType.DARK].master
            flat = result.choices[FrameType.FLAT].master
            assert dark is not None and dark.id == darks[mode].id
            assert flat is not None and flat.key.readout_mode == mode
            assert not result.warnings
