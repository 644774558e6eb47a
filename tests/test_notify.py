"""Notifications: real apprise delivering to a real HTTP server on loopback; flood control; a dead or
hanging endpoint never blocks or fails the caller; a bad URL is a validation error at its line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.config import SequenceError, load_sequence, parse_sequence
from agent.config.notify import NotificationSettings
from agent.notify import Notifier
from tests.config_fixtures import MINIMAL_SEQUENCE


class Inbox:
    """An HTTP endpoint on 127.0.0.1 that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        self.arrived = threading.Condition()
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with inbox.arrived:
                    inbox.received.append(json.loads(body))
                    inbox.arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, str]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


@pytest.fixture()
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    yield box
    box.server.shutdown()
    box.server.server_close()


class Clock:
    """The notifier's time, moved by the test (minutes of flood control in no time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_message_arrives_with_its_title_body_and_severity(inbox: Inbox) -> None:
    notifier = Notifier(NotificationSettings(urls=[inbox.url]))
    assert notifier.send("fault", "Camera lost", "ZWO CCD ASI294MM Pro stopped answering at 01:12; the night is paused.")
    assert notifier.flush(20)
    [message] = inbox.wait_for(1)
    assert message["title"] == "Camera lost"
    assert message["message"] == "ZWO CCD ASI294MM Pro stopped answering at 01:12; the night is paused."
    assert message["type"] == "failure"
    assert notifier.counts.sent == 1 and notifier.counts.failed == 0
    notifier.close()


def test_a_flapping_sky_sends_one_message_per_interval_and_says_what_was_held_back(inbox: Inbox) -> None:
    clock = Clock()
    notifier = Notifier(NotificationSettings(urls=[inbox.url], min_interval_minutes={"unsafe": 30}), clock=clock)
    assert notifier.send("unsafe", "Unsafe", "clouds at 23:10")
    for minute in range(1, 6):  # the sky flaps for five minutes
        clock.now += 60
        assert not notifier.send("unsafe", "Unsafe", f"clouds again ({minute})")
    assert notifier.send("fault", "Cap stuck", "the cap did not close")  # another kind is not held back
    clock.now += 31 * 60
    assert notifier.send("unsafe", "Unsafe", "rain at 23:46")
    assert notifier.flush(20)
    bodies = [m["message"] for m in inbox.wait_for(3)]
    assert bodies[0] == "clouds at 23:10" and bodies[1] == "the cap did not close"
    assert bodies[2] == "rain at 23:46\n\n(5 more unsafe messages held back in the last 35 min)"
    assert notifier.counts.held_back == 5 and notifier.counts.sent == 3
    notifier.close()


def test_a_repeat_is_sent_once_and_unwanted_kinds_not_at_all(inbox: Inbox) -> None:
    clock = Clock()
    settings = NotificationSettings(urls=[inbox.url], events=["night_summary", "fault"])
    notifier = Notifier(settings, clock=clock)
    summary = ("Night of 2026-11-29", "M31: 40/40 lights, 3 masters built")
    assert notifier.send("night_summary", *summary)
    clock.now += 600  # night_summary has no interval; the same text again is a repeat
    assert not notifier.send("night_summary", *summary)
    assert notifier.send("night_summary", "Night of 2026-11-30", "clouded out")
    assert not notifier.send("disk_low", "Disk", "2 GB left")  # not among the file's events
    assert not notifier.send("weather", "?", "?")  # type: ignore[arg-type]  # unknown kind: logged, no raise
    assert notifier.flush(20)
    assert [m["title"] for m in inbox.wait_for(2)] == ["Night of 2026-11-29", "Night of 2026-11-30"]
    assert notifier.counts.repeated == 1
    notifier.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_dead_endpoint_neither_blocks_nor_raises() -> None:
    notifier = Notifier(NotificationSettings(urls=[f"json://127.0.0.1:{_closed_port()}/"]))
    start = time.monotonic()
    assert notifier.send("fault", "Mount lost", "EQMod Mount vanished")
    assert time.monotonic() - start < 0.1
    assert notifier.flush(20)
    assert notifier.counts.failed == 1 and notifier.counts.sent == 0
    notifier.close()


def test_an_endpoint_that_never_answers_does_not_hold_up_the_caller() -> None:
    with socket.socket() as silent:  # accepts connections, never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        notifier = Notifier(NotificationSettings(urls=[f"json://127.0.0.1:{port}/?rto=1&cto=1"]))
        start = time.monotonic()
        for night in range(3):
            notifier.send("night_summary", f"Night {night}", "done")
        assert time.monotonic() - start < 0.1
        assert notifier.flush(30)  # each one times out after a second on the notifier's thread
        assert notifier.counts.failed == 3
        notifier.close()


def test_without_urls_nothing_is_sent_and_apprise_is_never_imported() -> None:
    code = textwrap.dedent(f"""
        import sys
        from agent.config import parse_sequence
        from agent.notify import Notifier
        sequence = parse_sequence({MINIMAL_SEQUENCE!r})
        notifier = Notifier.for_sequence(sequence)
        print(notifier.send("fault", "t", "b"), notifier.enabled, "apprise" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["False", "False", "False"]


def test_notifications_come_from_the_sequence_file(inbox: Inbox) -> None:
    text = MINIMAL_SEQUENCE + f"notifications:\n  urls: ['{inbox.url}']\n  events: [unsafe]\n"
    notifier = Notifier.for_sequence(parse_sequence(text))
    assert notifier.wants("unsafe") and not notifier.wants("fault")
    assert notifier.interval_seconds("unsafe") == 30 * 60  # the default


def test_a_bad_url_is_a_validation_error_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "night.yaml"
    path.write_text(MINIMAL_SEQUENCE + textwrap.dedent("""\
        notifications:
          urls:
            - ntfy://ntfy.example/obsagent
            - nfty://ntfy.example/obsagent
            - tgram://
          min_interval_minutes: {unsafe: -5}
    """))
    with pytest.raises(SequenceError) as caught:
        load_sequence(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:12: notifications.urls.1: 'nfty' is not a notification service apprise knows; "
        "see the list of services at https://github.com/caronc/apprise/wiki",
        f"{path}:13: notifications.urls.2: 'tgram://' is not a valid tgram URL (a host, token or topic "
        "missing?); see apprise's page for tgram",
        f"{path}:14: notifications.min_interval_minutes.unsafe: input should be greater than or equal to 0",
    ]
