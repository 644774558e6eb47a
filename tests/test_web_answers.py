"""The dashboard's answers: computed once per library change, slow ones refreshed in the background,
large libraries answered by a worker process with the same result, and a web process that never
loads the numeric stack."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient
from web_fixtures import FinishedNight

from agent.library.queries.rows import JsonRows
from agent.web.app import create_app
from agent.web.caches import AnswerCache
from agent.web.pages.library import Paging
from agent.web.security import WebSettings


class _Library:
    """Stands in for a read-only library: the cache only hands it to `compute`."""


def _cache(root: Path) -> AnswerCache:
    (root / "library.sqlite").write_bytes(b"")  # its stamp is what the cache watches
    return AnswerCache(root, lambda: _Library())  # type: ignore[arg-type, return-value]


def _touch(root: Path) -> None:
    with open(root / "library.sqlite", "ab") as fh:
        fh.write(b"x")


def test_an_answer_is_computed_once_however_many_ask(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    calls = []

    def compute(lib: object) -> int:
        calls.append(1)
        time.sleep(0.05)
        return len(calls)

    answers: list[int] = []
    threads = [threading.Thread(target=lambda: answers.append(cache.get("a", compute))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [1, 1, 1, 1] and len(calls) == 1
    _touch(tmp_path)
    assert cache.get("a", compute) == 2  # a quick answer is recomputed on the spot


def test_a_slow_answer_is_served_while_its_successor_is_computed(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    release = threading.Event()
    calls = []

    def slow(lib: object) -> int:
        calls.append(1)
        if len(calls) > 1:
            release.wait(5)
        else:
            time.sleep(0.2)
        return len(calls)

    assert cache.get("needs", slow) == 1
    _touch(tmp_path)
    started = time.monotonic()
    assert cache.get("needs", slow) == 1  # the previous answer, at once
    assert cache.get("needs", slow) == 1  # still computing: no second refresh
    assert time.monotonic() - started < 0.15
    release.set()
    deadline = time.monotonic() + 5
    while cache.get("needs", slow) != 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert len(calls) == 2


def test_answers_kept_are_bounded(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    for i in range(cache.size + 10):
        cache.get(f"report:{i}", lambda lib: 0)
    assert len(cache.items) == cache.size and "report:0" not in cache.items


def test_json_rows_round_trip_in_blocks() -> None:
    rows = JsonRows()
    want = [{"i": i, "text": "°C\nline" * (i % 3)} for i in range(150)]
    for r in want:
        rows.append(r)
    rows.seal()
    assert len(rows) == 150 and list(rows.rows(range(150))) == want
    assert json.loads(rows.text_of(149)) == want[149] and rows.row(3) == want[3]


def test_paging_clamps_to_the_pages_there_are() -> None:
    assert Paging.of(0, 5, 100) == Paging(1, 1, 0, 0)
    assert Paging.of(250, 3, 100) == Paging(3, 3, 200, 250)
    assert Paging.of(250, 99, 100).page_no == 3 and Paging.of(250, -4, 100).page_no == 1


def test_a_worker_process_answers_as_the_web_would(finished_night: FinishedNight) -> None:
    here = TestClient(create_app(WebSettings(data_dir=finished_night.root)))
    there = TestClient(create_app(WebSettings(data_dir=finished_night.root, large_library_bytes=0)))
    for url in ("/api/needs", "/api/groups", "/api/lights", "/api/campaigns", "/api/report"):
        a, b = here.get(url), there.get(url)
        assert a.status_code == b.status_code == 200, url
        a_json, b_json = a.json(), b.json()
        if url == "/api/needs":
            a_json.pop("seconds"), b_json.pop("seconds")
        assert a_json == b_json, url
    for url in ("/library?tab=needs", "/library?tab=frames", "/lights", "/campaigns"):
        assert here.get(url).text == there.get(url).text, url


def test_the_web_process_never_loads_the_numeric_stack() -> None:
    code = (
        "import sys, agent.web.app, agent.web.answer_worker, agent.library.needs\n"
        "heavy = {'numpy', 'astropy', 'numba'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_listening_socket_says_it_is_tcp() -> None:
    """asyncio turns Nagle off only on sockets created as IPPROTO_TCP; otherwise every small page
    waits 40 ms for the client's delayed ACK."""
    from agent.commands.web import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
