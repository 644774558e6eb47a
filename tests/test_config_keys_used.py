"""Every key of the sequence file is read somewhere in the agent, or rejected at validation.

The test walks the whole pydantic model. A key counts as read when one source file outside
agent/config/ accesses both it and its parent section as attributes (`.stacking` and
`.rejection`), which a key nobody reads never does. Keys read another way are listed below
with the reason, so an addition to the model must either be used or be named here.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent.config.model import Sequence

AGENT = Path(__file__).resolve().parent.parent / "agent"

# Keys read through their parent object, or refused at validation whenever they are set.
READ_ANOTHER_WAY = {
    "targets.ra": "read through Target.ra_deg (filled from the catalogue when absent)",
    "targets.dec": "read through Target.dec_deg",
    "sync.token_env": "refused at validation when set: no uploader takes a token",
}

# Keys the agent accepts but does not honour yet; each must stay unread until it is fixed (then
# the second test fails and the entry is removed).
NOT_YET_HONOURED: dict[str, str] = {}


def _models(annotation: object) -> Iterator[type[BaseModel]]:
    for arg in typing.get_args(annotation) or (annotation,):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            yield arg
        elif typing.get_args(arg):
            yield from _models(arg)


def _keys(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, info in model.model_fields.items():
        yield (*path, name)
        for sub in _models(info.annotation):
            yield from _keys(sub, (*path, name))


def _sources() -> list[str]:
    return [p.read_text() for p in AGENT.rglob("*.py") if "config" not in p.relative_to(AGENT).parts]


def _read(key: tuple[str, ...], sources: list[str]) -> bool:
    # `agent.stacking` (a module path) is not the `stacking` section
    patterns = [re.compile(rf"(?<!agent)\.{name}\b") for name in key[-2:]]
    return any(all(p.search(text) for p in patterns) for text in sources)


ALL_KEYS = [".".join(k) for k in _keys(Sequence)]


def test_the_walk_sees_nested_sections() -> None:
    assert "calibration.allow_looser.expired_masters" in ALL_KEYS
    assert "stacking.rejection" in ALL_KEYS and "sync.url" in ALL_KEYS
    assert "targets.exposures.readout_mode" in ALL_KEYS


def test_every_key_is_read_somewhere() -> None:
    sources = _sources()
    unread = [
        key
        for key in ALL_KEYS
        if key not in READ_ANOTHER_WAY
        and key not in NOT_YET_HONOURED
        and not _read(tuple(key.split(".")), sources)
    ]
    assert unread == [], f"keys of the sequence file that nothing reads: {unread}"


@pytest.mark.parametrize("key", sorted(NOT_YET_HONOURED))
def test_keys_not_yet_honoured_are_still_unread(key: str) -> None:
    assert key in ALL_KEYS
    assert not _read(tuple(key.split(".")), _sources()), f"{key} is read now: remove it from NOT_YET_HONOURED"


@pytest.mark.parametrize("key", sorted(READ_ANOTHER_WAY))
def test_allow_list_names_real_keys(key: str) -> None:
    assert key in ALL_KEYS
