"""`allow_looser.bias_for_darkflats` and `obsagent library ... --allow-looser expired` change what is built
and matched: flats with and without the permission to use the master bias; the CLI with and without
permission to use an expired master."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from library_fixtures import add_master, light_key, nina_header, write_series

from agent.cli import build_parser
from agent.commands.library import policy_from
from agent.config import parse_sequence
from agent.library.builder import drain, schedule
from agent.library.keys import FrameType, LibraryPolicy
from agent.library.match import match_light
from agent.library.needs import needs
from agent.library.policy import library_policy
from agent.library.store import Library
from tests.config_fixtures import MINIMAL_SEQUENCE

FIVE = {"bias": 5, "dark": 5, "darkflat": 5, "flat": 5}


def night_policy(bias_for_darkflats: bool | None) -> LibraryPolicy:
    """The night's policy from a sequence file, with the key set, cleared, or left out."""
    masters = ", ".join(f"{k}: {{min_frames: {n}, max_age_days: 30}}" for k, n in FIVE.items())
    text = MINIMAL_SEQUENCE + f"  masters: {{{masters}}}\n"
    if bias_for_darkflats is not None:
        text += f"  allow_looser: {{bias_for_darkflats: {str(bias_for_darkflats).lower()}}}\n"
    return library_policy(parse_sequence(text))


def sky_flats_and_bias(root: Path) -> None:
    """Five bias frames and five sky flats whose exposure grew as the dusk sky faded."""
    write_series(root / "bias", "bias", [nina_header("bias", 0.0) for _ in range(5)], level=1000)
    flats = [nina_header("flat", e, filt="L") for e in (0.5, 0.8, 1.3, 2.1, 3.4)]
    write_series(root / "flats", "flat", flats, level=20000)


def panel_flats_and_bias(root: Path) -> None:
    """Five bias frames and five panel flats at one exposure, with no dark flats taken."""
    write_series(root / "bias", "bias", [nina_header("bias", 0.0) for _ in range(5)], level=1000)
    write_series(root / "flats", "flat", [nina_header("flat", 2.0, filt="L") for _ in range(5)], level=20000)


def build(tmp_path: Path, policy: LibraryPolicy) -> tuple[dict[str, int], list[str]]:
    """Masters built (kind -> count) and the reasons of the groups left waiting."""
    with Library(tmp_path / "data") as lib:
        lib.ingest_paths([tmp_path / "in"])
        schedule(lib, policy)
        drain(lib, policy)
        built: dict[str, int] = {}
        for m in lib.masters():
            built[m.key.frame_type.value] = built.get(m.key.frame_type.value, 0) + 1
        waiting = [n.reason for n in needs(lib, policy) if n.kind == "waiting"]
        return built, waiting


@pytest.mark.parametrize("writer", [sky_flats_and_bias, panel_flats_and_bias], ids=["sky", "panel"])
def test_flats_use_the_bias_only_when_the_sequence_allows_it(tmp_path: Path, writer) -> None:  # type: ignore[no-untyped-def]
    writer(tmp_path / "allowed" / "in")
    allowed, _ = build(tmp_path / "allowed", night_policy(True))
    assert allowed == {"bias": 1, "flat": 1}
    writer(tmp_path / "strict" / "in")
    strict, waiting = build(tmp_path / "strict", night_policy(False))
    assert strict == {"bias": 1}, "no flat master without dark flats when the bias may not stand in"
    (reason,) = waiting
    assert "bias_for_darkflats" in reason


def test_the_default_keeps_the_bias_for_sky_flats() -> None:
    assert night_policy(None).bias_for_flats is True
    assert night_policy(False).bias_for_flats is False


def test_panel_flats_still_prefer_their_dark_flats(tmp_path: Path) -> None:
    root = tmp_path / "in"
    panel_flats_and_bias(root)
    write_series(root / "darkflats", "df", [nina_header("darkflat", 2.0) for _ in range(5)], level=1002)
    with Library(tmp_path / "data") as lib:
        lib.ingest_paths([root])
        policy = night_policy(False)
        schedule(lib, policy)
        drain(lib, policy)
        (flat,) = [m for m in lib.masters() if m.key.frame_type is FrameType.FLAT]
        assert "darkflat_id" in flat.stats and "bias_id" not in flat.stats


def cli_policy(*options: str) -> LibraryPolicy:
    args = build_parser("library").parse_args(["library", "needs", *options])
    return policy_from(args)


def test_library_cli_uses_an_expired_master_only_with_allow_looser_expired(tmp_path: Path) -> None:
    now = time.time()
    light = light_key()
    with Library(tmp_path / "data") as lib:
        old = add_master(lib, light.for_type(FrameType.DARK, 60.0), created=now - 200 * 86400, expires=now - 86400)
        strict = match_light(lib, light, 60.0, cli_policy(), now=now).choices[FrameType.DARK]
        assert strict.master is None
        assert any("--allow-looser expired" in line for line in strict.explanation)
        loose = match_light(lib, light, 60.0, cli_policy("--allow-looser", "expired"), now=now)
        chosen = loose.choices[FrameType.DARK]
        assert chosen.master is not None and chosen.master.id == old
        assert any("expired" in w for w in chosen.warnings)


def test_allow_looser_expired_is_not_a_key_field() -> None:
    policy = cli_policy("--allow-looser", "expired", "--allow-looser", "gain")
    assert policy.expired_masters and policy.looser_matches == frozenset({"gain"})
