"""Keys that could not work are refused at validation, with the way that does work."""

from __future__ import annotations

import pytest

from agent.config import SequenceError, parse_sequence
from tests.config_fixtures import MINIMAL_SEQUENCE

BASE = MINIMAL_SEQUENCE


def _problems(extra: str) -> list[str]:
    with pytest.raises(SequenceError) as info:
        parse_sequence(BASE + extra, "night.yaml")
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    "url", ["http://nas.local/masters", "https://example.org/upload", "HTTPS://example.org/x"]
)
def test_http_sync_urls_are_refused(url: str) -> None:
    (problem,) = _problems(f"sync: {{url: '{url}'}}\n")
    assert "sync.url" in problem and "http(s) are not supported" in problem and "sftp://" in problem


def test_token_env_is_refused() -> None:
    (problem,) = _problems("sync: {url: 'sftp://me@nas/srv', token_env: NAS_TOKEN}\n")
    assert "sync.token_env" in problem and "not supported" in problem and "?key=" in problem


@pytest.mark.parametrize(
    "url", ["file:///srv/masters", "sftp://me@nas.local/srv/masters", "s3://bucket/prefix"]
)
def test_working_sync_urls_are_accepted(url: str) -> None:
    seq = parse_sequence(BASE + f"sync: {{url: '{url}'}}\n")
    assert seq.sync is not None and seq.sync.url == url
