"""`obsagent web --sequence FILE`: the pages use the calibration policy of the sequence file, the
same one the night builds from it."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastapi.testclient import TestClient
from web_fixtures import FinishedNight

from agent.commands import web as web_command
from agent.config import load_sequence
from agent.library.keys import FrameType, LibraryPolicy
from agent.library.policy import library_policy
from agent.web.app import create_app

EXAMPLE = Path(__file__).parent.parent / "examples" / "night.yaml"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    web_command.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["web", *argv])


def test_the_policy_is_the_one_the_night_builds(tmp_path: Path) -> None:
    from agent.night import services

    seq = load_sequence(EXAMPLE)
    assert services.library_policy is library_policy  # one function: the night and the web agree
    settings = web_command.web_settings(_args("--data", str(tmp_path), "--sequence", str(EXAMPLE)))
    assert settings.policy == library_policy(seq)
    assert web_command.web_settings(_args("--data", str(tmp_path))).policy == LibraryPolicy()


def test_pages_count_frames_toward_the_policy(finished_night: FinishedNight, tmp_path: Path) -> None:
    sequence = tmp_path / "night.yaml"
    text = EXAMPLE.read_text()
    assert "dark: {min_frames: 20," in text
    sequence.write_text(text.replace("dark: {min_frames: 20,", "dark: {min_frames: 7,"))
    settings = web_command.web_settings(_args("--data", str(finished_night.root), "--sequence", str(sequence)))
    assert settings.policy.min_for(FrameType.DARK) == 7
    groups = TestClient(create_app(settings)).get("/api/groups").json()
    assert any(g["frame_type"] == "dark" for g in groups)
    for g in groups:
        assert g["target"] == settings.policy.min_for(FrameType(g["frame_type"]))
