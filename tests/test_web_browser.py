"""The dashboard in a real headless Chromium (Debian's `chromium` + `chromium-driver`, Selenium).

Every page renders from a library holding a finished night; tabs, chips, expanders and downloads
work; the Tonight page updates by itself when the night rewrites the status file.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_fixtures import TOKEN, FinishedNight, LiveServer, night_status

from agent import control
from agent.status import write_status

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver (make setup installs them)"
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(arg)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False,
        "safebrowsing.enabled": False,
    })  # fmt: skip
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    driver.set_page_load_timeout(30)
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: object, timeout: float = 10.0) -> object:
    end = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < end:
        try:
            last = check()  # type: ignore[operator]
        except Exception:  # noqa: BLE001 - the page may be mid-update
            last = None
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError("the page never showed what was expected")


def sign_in(driver: object, server: LiveServer) -> None:
    from selenium.webdriver.common.by import By

    d = driver
    d.get(f"{server.url}/login?next=/")  # type: ignore[attr-defined]
    d.find_element(By.ID, "token").send_keys(TOKEN)  # type: ignore[attr-defined]
    d.find_element(By.ID, "sign-in").click()  # type: ignore[attr-defined]
    wait_for(lambda: "sign out" in d.page_source)  # type: ignore[attr-defined]


def test_every_page_renders(browser: object, live_server: LiveServer, finished_night: FinishedNight) -> None:
    from selenium.webdriver.common.by import By

    d = browser
    n = finished_night
    pages = {
        "/": "Tonight", "/library": "Calibration library", "/library?tab=frames": "Calibration library",
        "/library?tab=needs": "Calibration library", "/lights": "Lights", "/campaigns": "Campaigns",
        "/reports": "Morning reports", f"/reports/{n.night}": f"Night of {n.night}", "/api": "JSON API",
        f"/library/masters/{n.master_ids[0]}": "Master", f"/lights/{n.lights['calibrated']}": "M_42_L_0000",
    }  # fmt: skip
    for path, heading in pages.items():
        d.get(live_server.url + path)  # type: ignore[attr-defined]
        h1 = d.find_element(By.TAG_NAME, "h1").text  # type: ignore[attr-defined]
        assert heading in h1, (path, h1)
        assert "Traceback" not in d.page_source  # type: ignore[attr-defined]
    # images decode in the browser (preview of a master, the last frame)
    d.get(f"{live_server.url}/library/masters/{n.master_ids[0]}")  # type: ignore[attr-defined]
    width = d.execute_script(  # type: ignore[attr-defined]
        "const i = document.getElementById('master-preview'); return i.complete && i.naturalWidth;"
    )
    assert width == 64
    d.get(live_server.url + "/")  # type: ignore[attr-defined]
    assert wait_for(lambda: d.execute_script(  # type: ignore[attr-defined]
        "const i = document.getElementById('latest'); return i && i.complete && i.naturalWidth;"))
    assert d.find_element(By.CSS_SELECTOR, "svg.timeline")  # type: ignore[attr-defined]


def test_tabs_chips_and_expanders(browser: object, live_server: LiveServer, finished_night: FinishedNight) -> None:
    from selenium.webdriver.common.by import By

    d = browser
    d.get(live_server.url + "/library")  # type: ignore[attr-defined]
    assert d.find_elements(By.ID, "panel-masters")  # type: ignore[attr-defined]
    d.find_element(By.ID, "tab-needs").click()  # type: ignore[attr-defined]
    wait_for(lambda: d.find_elements(By.ID, "panel-needs"))  # type: ignore[attr-defined]
    assert "NGC_7000" in d.find_element(By.ID, "panel-needs").text  # type: ignore[attr-defined]
    d.find_element(By.ID, "tab-frames").click()  # type: ignore[attr-defined]
    group = wait_for(lambda: d.find_element(By.CSS_SELECTOR, "details.group"))  # type: ignore[attr-defined]
    assert "3/5" in group.text  # type: ignore[attr-defined]
    group.find_element(By.TAG_NAME, "summary").click()  # type: ignore[attr-defined]
    rows = wait_for(lambda: group.find_elements(By.CSS_SELECTOR, "table.frames tr td"))  # type: ignore[attr-defined]
    assert rows and "dark_120s_0000.fits" in group.text  # type: ignore[attr-defined]
    # master expander: its source frames
    d.get(f"{live_server.url}/library/masters/{finished_night.master_ids[0]}")  # type: ignore[attr-defined]
    sources = d.find_element(By.ID, "sources")  # type: ignore[attr-defined]
    assert not sources.find_element(By.TAG_NAME, "table").is_displayed()
    sources.find_element(By.TAG_NAME, "summary").click()
    assert sources.find_element(By.TAG_NAME, "table").is_displayed()
    # chips, with their colours
    d.get(live_server.url + "/lights")  # type: ignore[attr-defined]
    chips = {
        e.get_attribute("data-status"): e.value_of_css_property("background-color")
        for e in d.find_elements(By.CSS_SELECTOR, "table.lights .chip[data-status]")  # type: ignore[attr-defined]
    }
    assert chips == {
        "calibrated": "rgba(63, 174, 90, 1)", "failed": "rgba(226, 92, 87, 1)",
        "no_masters": "rgba(240, 160, 75, 1)", "rejected": "rgba(139, 151, 165, 1)",
    }  # fmt: skip
    d.find_element(By.LINK_TEXT, "M_42_L_0001.fits").click()  # type: ignore[attr-defined]
    wait_for(lambda: d.find_elements(By.CSS_SELECTOR, ".banner-looser"))  # type: ignore[attr-defined]


def test_downloads(browser: object, live_server: LiveServer, finished_night: FinishedNight) -> None:
    from selenium.webdriver.common.by import By

    d = browser
    folder: Path = d.downloads  # type: ignore[attr-defined]
    d.get(f"{live_server.url}/lights/{finished_night.lights['calibrated']}")  # type: ignore[attr-defined]
    d.find_element(By.ID, "download-raw").click()  # type: ignore[attr-defined]
    d.find_element(By.ID, "download-calibrated").click()  # type: ignore[attr-defined]
    wait_for(lambda: {p.name for p in folder.glob("*.fits")} >= {"M_42_L_0000.fits", "M_42_L_0000_cal.fits"},
             timeout=20)  # fmt: skip
    assert (folder / "M_42_L_0000.fits").read_bytes()[:6] == b"SIMPLE"
    d.get(f"{live_server.url}/lights?night={finished_night.night}&target=M_42")  # type: ignore[attr-defined]
    d.find_element(By.ID, "zip").click()  # type: ignore[attr-defined]
    wait_for(lambda: [p for p in folder.glob("lights-*.zip")], timeout=20)


def test_live_page_follows_the_status_file(
    browser: object, live_server: LiveServer, finished_night: FinishedNight
) -> None:
    """The night rewrites `<data>/status.json` as it goes; an open Tonight page follows it."""
    from selenium.webdriver.common.by import By

    d = browser
    root = finished_night.root
    last = next((root / "frames").rglob("M_42_L_0000.fits"))
    d.get(live_server.url + "/")  # type: ignore[attr-defined]
    for i, (state, activity) in enumerate([("imaging", "M 42 · L · frame 3 of 40"),
                                            ("gap_calibration", "darks 60 s · 7 of 20"),
                                            ("dawn_flats", "sky flats · L")]):  # fmt: skip
        status = night_status(root, finished_night.night, last, state=state, activity=activity)
        status.record_cooler(-10.0 + i, -10.0, 50.0)
        write_status(root, status)
        wait_for(lambda a=activity: d.find_element(By.ID, "activity").text == a, timeout=10)  # type: ignore[attr-defined]
        assert d.find_element(By.ID, "state").text == state  # type: ignore[attr-defined]
    write_status(root, night_status(root, finished_night.night, last))


def test_sign_in_and_act(browser: object, live_server: LiveServer, finished_night: FinishedNight) -> None:
    from selenium.webdriver.common.by import By

    d = browser
    root = finished_night.root
    before = {r.id for r in control.pending_requests(root)}
    sign_in(d, live_server)
    d.find_element(By.ID, "action-pause").click()  # type: ignore[attr-defined]
    wait_for(lambda: d.find_element(By.ID, "queued"))  # type: ignore[attr-defined]
    new = [r for r in control.pending_requests(root) if r.id not in before]
    assert [r.action for r in new] == ["pause"]
    d.get(f"{live_server.url}/lights/{finished_night.lights['warned']}")  # type: ignore[attr-defined]
    d.find_element(By.ID, "recalibrate").click()  # type: ignore[attr-defined]
    wait_for(lambda: d.find_element(By.ID, "queued"))  # type: ignore[attr-defined]
    for r in control.pending_requests(root):
        control.mark_done(root, r.id, True, "done in test")
    d.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()  # type: ignore[attr-defined]
    wait_for(lambda: "sign in" in d.page_source)  # type: ignore[attr-defined]
