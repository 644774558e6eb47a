"""The Tonight page in a real headless Chromium follows a simulated night as it runs, and its
pause and park reach the night through the control inbox."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent import control
from agent.status import read_status
from tests.sim_fixtures import needs_indiserver
from tests.test_agent_night import night_runner, start_sim, write_sequence
from tests.web_fixtures import TOKEN, serve

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.indi,
    needs_indiserver,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver"),
]


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = check()
        except Exception:  # noqa: BLE001 - the page may be mid-update
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_tonight_page_follows_a_running_night(sim_server: Callable[..., object], tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    seq_path = write_sequence(tmp_path, flats="panel")
    server = start_sim(sim_server, seq_path)
    data = tmp_path / "data"
    runner: Any = night_runner(seq_path, server, data)
    night = threading.Thread(target=runner.run, daemon=True)  # no signal handlers off the main thread
    night.start()
    wait_for(lambda: read_status(data) is not None and (data / "library.sqlite").exists(), 120, "the night to start")

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    web = serve(data, token=TOKEN)
    live = next(web)
    try:
        browser.get(f"{live.url}/login?next=/")
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "sign-in").click()
        wait_for(lambda: "sign out" in browser.page_source, 20, "signing in")
        browser.get(f"{live.url}/")
        seen: set[str] = set()

        def state() -> str:
            text = browser.find_element(By.ID, "state").text
            seen.add(text)
            return text

        # the page updates by itself (server-sent events) as the night moves on
        wait_for(lambda: state().startswith("imaging"), 300, "the page to show imaging")
        assert len(seen) > 1, f"the page showed only {seen}"
        control.submit(data, "pause", requested_by="test")
        wait_for(lambda: "(paused)" in state(), 60, "the page to show the pause")
        control.submit(data, "park", requested_by="test")
        night.join(timeout=120)
        assert not night.is_alive(), "the night did not stop on park"
        assert runner.result is not None and "park requested" in str(runner.result.reason)
        wait_for(lambda: state().startswith("stopped"), 30, "the page to show the night stopped")
    finally:
        browser.quit()
        web.close()
        if night.is_alive():
            runner.request_stop("test over")
            night.join(timeout=60)
