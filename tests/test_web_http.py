"""The dashboard over HTTP: every page and API answer, tokens, CSRF, and downloads that never
leave the library (ids only; `..`, absolute paths, symlinks and unknown ids are 404)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from web_fixtures import TOKEN, FinishedNight, build_finished_night

from agent import control
from agent.errors import ConfigError
from agent.status import NightStatus, read_status, write_status
from agent.web.app import create_app
from agent.web.security import WebSettings

PAGES = ["/", "/live", "/library", "/library?tab=masters&all=1", "/library?tab=frames", "/library?tab=needs",
         "/lights", "/campaigns", "/reports", "/api"]  # fmt: skip
API = ["/api/status", "/api/plan", "/api/needs", "/api/masters", "/api/frames", "/api/groups", "/api/lights",
       "/api/report", "/api/campaigns", "/api/openapi.json"]  # fmt: skip


def client(root: Path, **kw: object) -> TestClient:
    return TestClient(create_app(WebSettings(data_dir=root, **kw)))  # type: ignore[arg-type]


@pytest.fixture()
def own_night(tmp_path: Path) -> FinishedNight:
    """A night of its own, for tests that tamper with files."""
    return build_finished_night(tmp_path)


def test_every_page_and_api_renders(finished_night: FinishedNight) -> None:
    c = client(finished_night.root)
    n = finished_night
    pages = PAGES + [f"/library/masters/{i}" for i in n.master_ids] + [f"/lights/{i}" for i in n.lights.values()]
    pages += [f"/reports/{n.night}", f"/library/masters/{n.master_ids[0]}/preview.png", "/latest.jpg"]
    for url in pages + API:
        r = c.get(url)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
    assert c.get("/latest.jpg").content[:3] == b"\xff\xd8\xff"
    assert c.get(f"/library/masters/{n.master_ids[0]}/preview.png").content[:4] == b"\x89PNG"


def test_api_returns_what_the_cli_returns(finished_night: FinishedNight) -> None:
    c = client(finished_night.root)
    needs = c.get("/api/needs").json()
    assert set(needs) == {"needs", "seconds"}
    kinds = {n["kind"] for n in needs["needs"]}
    assert {"missing", "accumulating"} <= kinds
    missing = next(n for n in needs["needs"] if n["kind"] == "missing")
    assert missing["lights"] and missing["lights"][0]["target"] == "NGC_7000"
    masters = c.get("/api/masters").json()
    assert {m["frame_type"] for m in masters} == {"dark", "darkflat", "flat"}
    assert {"id", "camera", "gain", "n_sources", "created_at", "expires_at"} <= set(masters[0])
    lights = {r["id"]: r["status"] for r in c.get("/api/lights").json()}
    want = {"calibrated": "calibrated", "failed": "failed", "no_masters": "no_masters", "rejected": "rejected"}
    for name, status in want.items():
        assert lights[finished_night.lights[name]] == status
    report = c.get("/api/report").json()
    assert report["night"] == finished_night.night and report["state"] == "done"
    assert report["captured"]["light"] == 6 and report["masters_built"]
    status = c.get("/api/status").json()
    assert status["status"]["night"] == finished_night.night and status["library"]["masters"] == 3
    schema = c.get("/api/openapi.json").json()
    assert {"/api/status", "/api/needs", "/latest.jpg", "/api/actions/pause"} <= set(schema["paths"])


def test_light_detail_shows_masters_and_warnings(finished_night: FinishedNight) -> None:
    c = client(finished_night.root)
    html = c.get(f"/lights/{finished_night.lights['warned']}").text
    assert "Looser match by policy" in html and "download-calibrated" in html and "download-raw" in html
    assert "Master" not in html or "/library/masters/" in html
    failed = c.get(f"/lights/{finished_night.lights['failed']}").text
    assert "Cal failed" in failed and "frame sizes differ" in failed


def test_empty_data_folder_renders_gracefully(tmp_path: Path) -> None:
    c = client(tmp_path)
    for url in PAGES:
        assert c.get(url).status_code == 200, url
    assert "No night is running" in c.get("/").text
    assert c.get("/api/plan").status_code == 404
    assert c.get("/latest.jpg").status_code == 404
    assert c.get("/api/status").json()["status"] is None


# ---- tokens ---------------------------------------------------------------------------------------


def test_refuses_non_loopback_without_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="token"):
        create_app(WebSettings(data_dir=tmp_path, host="0.0.0.0"))


def test_non_loopback_needs_token_for_everything(finished_night: FinishedNight) -> None:
    c = client(finished_night.root, host="0.0.0.0", token=TOKEN)
    for url in PAGES + API + ["/latest.jpg", f"/download/raw/{finished_night.lights['calibrated']}"]:
        r = c.get(url)
        assert r.status_code == 401, url
    assert c.get("/api/status", headers={"Authorization": "Bearer wrong-token-000"}).status_code == 401
    ok = c.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    # a browser signs in once and gets a session cookie
    assert c.post("/login", data={"token": "nope-nope-nope", "next": "/"}).status_code == 401
    r = c.post("/login", data={"token": TOKEN, "next": "/library"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/library"
    assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
    assert c.get("/library").status_code == 200


def test_login_never_redirects_off_site(tmp_path: Path) -> None:
    c = client(tmp_path, token=TOKEN)
    for target in ("//evil.example/", "https://evil.example/", "\\\\evil"):
        r = c.post("/login", data={"token": TOKEN, "next": target}, follow_redirects=False)
        assert r.headers["location"] == "/"


def test_anonymous_read_only_when_asked(finished_night: FinishedNight) -> None:
    c = client(finished_night.root, host="0.0.0.0", token=TOKEN, anonymous_read=True)
    assert c.get("/library?tab=needs").status_code == 200
    assert c.post("/actions/pause").status_code == 401
    assert c.post("/api/actions/pause").status_code == 401


# ---- actions ----------------------------------------------------------------------------------------


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def test_actions_need_token_and_csrf(own_night: FinishedNight) -> None:
    root = own_night.root
    light = own_night.lights["calibrated"]
    off = client(root)
    for url in ("/actions/pause", "/actions/resume", "/actions/park", f"/actions/recalibrate/{light}",
                "/actions/build-master", "/api/actions/pause"):  # fmt: skip
        assert off.post(url).status_code == 403, url  # no token configured: actions are off
    c = client(root, token=TOKEN)
    for url in ("/actions/pause", "/actions/resume", "/actions/park", f"/actions/recalibrate/{light}",
                "/actions/build-master", "/api/actions/park", f"/api/actions/recalibrate/{light}"):  # fmt: skip
        assert c.post(url).status_code == 401, url
    assert c.get("/actions/pause").status_code == 405
    assert control.pending_requests(root) == []
    c.post("/login", data={"token": TOKEN, "next": "/"})
    assert c.post("/actions/pause", data={}).status_code == 403  # signed in, but no CSRF token
    assert c.post("/actions/pause", data={"csrf": "0" * 64}).status_code == 403
    csrf = _csrf(c.get("/").text)
    evil = c.post("/actions/pause", data={"csrf": csrf}, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403
    assert control.pending_requests(root) == []
    r = c.post("/actions/pause", data={"csrf": csrf})
    assert r.status_code == 202 and "queued" in r.text
    group = re.search(r'name="group" value="([^"]+)"', c.get("/library?tab=frames").text)
    assert group
    import html as html_module

    ident = html_module.unescape(group.group(1))
    assert c.post("/actions/build-master", data={"csrf": csrf, "group": ident}).status_code == 202
    assert c.post(f"/actions/recalibrate/{light}", data={"csrf": csrf}).status_code == 202
    assert c.post("/actions/recalibrate/999999", data={"csrf": csrf}).status_code == 404
    # scripts use the bearer token (no cookie, so no CSRF)
    script = client(root, token=TOKEN)
    r = script.post("/api/actions/resume", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 202 and r.json()["action"] == "resume"
    pending = control.pending_requests(root)
    assert [p.action for p in pending] == ["pause", "build_master", "recalibrate_light", "resume"]
    build = pending[1]
    assert build.params["forced"] is True and build.params["key"]["exposure_key"] == 120.0
    assert pending[2].params == {"frame_id": light}
    # the agent handles one; the dashboard shows the outcome
    control.mark_done(root, pending[0].id, True, "paused")
    assert [p.action for p in control.pending_requests(root)] == ["build_master", "recalibrate_light", "resume"]
    assert script.get(f"/api/requests/{pending[0].id}").json()["ok"] is True
    assert "paused" in c.get("/").text


# ---- downloads ----------------------------------------------------------------------------------------


def test_downloads_serve_only_library_files(own_night: FinishedNight) -> None:
    root = own_night.root
    c = client(root)
    light = own_night.lights["calibrated"]
    raw = c.get(f"/download/raw/{light}")
    assert raw.status_code == 200 and raw.content[:6] == b"SIMPLE"
    assert c.get(f"/download/calibrated/{light}").status_code == 200
    assert c.get(f"/download/master/{own_night.master_ids[0]}").status_code == 200
    secret = root.parent / "secret.txt"
    secret.write_text("not for the web")
    bad = [
        "/download/raw/..%2F..%2Fsecret.txt", "/download/raw/../../secret.txt", "/download/raw/%2e%2e",
        f"/download/raw/{secret}", f"/download/raw//{secret}", "/download/raw/%2Fetc%2Fpasswd",
        "/download/../../etc/passwd", "/download/raw/999999", "/download/raw/-1", "/download/raw/1.5",
        "/download/master/999999", "/download/calibrated/999999", "/download/secret/1", "/download/raw/",
        f"/download/calibrated/{own_night.lights['no_masters']}", "/download/zip?night=../../", "/download/zip",
        "/download/zip?target=%2Fetc", "/library/masters/999/preview.png", "/library/masters/..%2F1/preview.png",
        "/static/../app.py", "/static/%2e%2e/app.py", "/reports/..%2F..%2Fetc", "/lights/0",
    ]  # fmt: skip
    for url in bad:
        r = c.get(url)
        assert r.status_code == 404, (url, r.status_code)
        assert b"not for the web" not in r.content and b"root:" not in r.content
    # a recorded file swapped for a symlink is not served
    target = Path(str(c.get(f"/api/lights/{light}").json()["id"]))
    assert target
    row_path = next(p for p in (root / "frames").rglob("M_42_L_0000.fits"))
    os.replace(row_path, row_path.with_suffix(".moved"))
    os.symlink(secret, row_path)
    assert c.get(f"/download/raw/{light}").status_code == 404
    # and a folder on the way swapped for a symlink neither
    master = c.get(f"/api/masters/{own_night.master_ids[0]}").json()
    master_path = Path(master["path"])
    moved = master_path.parent.with_name("moved")
    os.replace(master_path.parent, moved)
    os.symlink(moved, master_path.parent)
    assert c.get(f"/download/master/{own_night.master_ids[0]}").status_code == 404


def test_zip_of_a_night_and_a_target(finished_night: FinishedNight) -> None:
    import io
    import zipfile

    c = client(finished_night.root)
    for query in (f"night={finished_night.night}", "target=M_42"):
        r = c.get(f"/download/zip?{query}")
        assert r.status_code == 200
        names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
        assert any("/raw/" in n for n in names) and any("/calibrated/" in n for n in names)
        assert all(not n.startswith("/") and ".." not in n for n in names)


def test_errors_never_show_a_traceback(finished_night: FinishedNight, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.library.queries import campaigns, lights

    def broken(*args: object, **kw: object) -> object:
        raise RuntimeError("secret internals /home/pi/.ssh")

    monkeypatch.setattr(campaigns, "campaigns", broken)
    monkeypatch.setattr(lights, "light_detail", broken)
    c = TestClient(create_app(WebSettings(data_dir=finished_night.root)), raise_server_exceptions=False)
    for url in ("/campaigns", "/api/campaigns", f"/lights/{finished_night.lights['calibrated']}"):
        r = c.get(url)
        assert r.status_code == 500
        assert "Traceback" not in r.text and "secret internals" not in r.text and "RuntimeError" not in r.text
    for url in ("/nope", "/api/nope", "/lights/abc", "/api/lights/abc"):
        r = c.get(url)
        assert r.status_code == 404 and "Traceback" not in r.text


# ---- the status file and the control inbox ------------------------------------------------------------


def test_status_round_trip_and_damage(tmp_path: Path) -> None:
    assert read_status(tmp_path) is None
    s = NightStatus(night="2026-01-10", state="imaging", activity="M 42 L 3/40")
    s.record_cooler(-9.8, -10.0, 45.0)
    s.record_weather(True, "clear")
    write_status(tmp_path, s)
    back = read_status(tmp_path)
    assert back is not None and back.state == "imaging" and back.cooler[0].temperature == -9.8 and back.safe
    (tmp_path / "status.json").write_text("{broken")
    assert read_status(tmp_path) is None
    assert not list(tmp_path.glob(".status.json.*"))


def test_control_inbox_round_trip(tmp_path: Path) -> None:
    a = control.submit(tmp_path, "park", requested_by="test")
    b = control.submit(tmp_path, "recalibrate_light", {"frame_id": 3})
    assert [r.id for r in control.pending_requests(tmp_path)] == [a.id, b.id]
    done = control.mark_done(tmp_path, a.id, False, "mount not connected")
    assert done.ok is False and not done.pending
    assert [r.id for r in control.pending_requests(tmp_path)] == [b.id]
    assert control.get_request(tmp_path, a.id).message == "mount not connected"  # type: ignore[union-attr]
    assert control.get_request(tmp_path, "../../etc/passwd") is None
    with pytest.raises(control.ControlError):
        control.submit(tmp_path, "format_disk")
    with pytest.raises(control.ControlError):
        control.mark_done(tmp_path, "../x", True)
    (tmp_path / "control" / "pending" / "junk.json").write_text("{")
    assert [r.id for r in control.pending_requests(tmp_path)] == [b.id]
    assert json.loads((tmp_path / "control" / "done" / f"{a.id}.json").read_text())["action"] == "park"


def test_cli_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "OBSAGENT_WEB_TOKEN": ""}
    for args, words in (
        (["--listen", "0.0.0.0:0"], "token"),
        (["--listen", "127.0.0.1:notaport"], "HOST:PORT"),
        (["--listen", "0.0.0.0:0", "--token", "short"], "too short"),
    ):
        r = subprocess.run([sys.executable, "-m", "agent.cli", "web", "--data", str(tmp_path), *args],
                           capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
        assert r.returncode == 2, (args, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
