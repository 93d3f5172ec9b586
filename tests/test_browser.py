"""/jobs in a real headless Chromium: live progress and thumbnails, no reload, hostile fields inert, times in the
browser's time zone, the offline indicator, the 404 page, a screenshot."""

import io
import os
import re
import shutil
import struct
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.image_source import ImageSource
from tests.payloads import COMPLETED, FAILED, PROGRESS, payload
from tests.servers import GunicornServer

ROOT = Path(__file__).resolve().parent.parent
# the README's picture; written there only when asked (UPDATE_SCREENSHOT=1), so a test run leaves the tree clean
README_SCREENSHOT = ROOT / "docs" / "jobs.png"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
INSTALL = "apt-get update && apt-get install -y chromium chromium-driver; pip install -r requirements-dev.txt"
WINDOW = (1280, 800)
FLAGS = (
    "--headless",
    "--no-sandbox",  # as root, in a container without user namespaces
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # no traffic but to the test's own servers
    "--disable-component-update",
    "--disable-sync",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)
# every field the backend controls, each trying to run a script that would leave a mark
PWN = "window.__pwned = 1; alert(1)"
HOSTILE_PROMPT = f'<img src=x onerror="{PWN}"><script>{PWN}</script>'
HOSTILE_MESSAGE = f'"><svg onload="{PWN}">'
GREEN, ORANGE = "rgb(46, 157, 91)", "rgb(180, 83, 9)"  # pages.css: --green, --orange
HOSTILE_MODEL = '<iframe srcdoc="<script>parent.__pwned = 1</script>"></iframe>'


def require_browser():
    """Skip with the install command where Chromium, its driver or Selenium is missing; fail in CI (.ci/run
    installs them)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium")
    if not missing:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{', '.join(missing)} missing in CI: .ci/run must install them")
    pytest.skip(f"{', '.join(missing)} missing: {INSTALL}")


def until(read, done=bool, timeout=10, what="the page"):
    """Poll `read()` until `done(value)` or the deadline; return the value, or fail with the last one."""
    deadline = time.monotonic() + timeout
    while not done(value := read()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not get there within {timeout}s: last value {value!r}")
        time.sleep(0.1)
    return value


def picture(number):
    """A small PNG landscape, different for each number: what the backend serves and the service copies."""
    from PIL import Image, ImageDraw

    hue = (number * 67) % 360
    image = Image.new("RGB", (512, 512))
    draw = ImageDraw.Draw(image)
    for y in range(512):  # a sky from dark to light
        draw.line([(0, y), (511, y)], fill=f"hsl({(hue + y * 40 // 512) % 360},70%,{35 + y * 40 // 512}%)")
    sun = 150 + (number * 117) % 300
    draw.ellipse([sun - 60, 100, sun + 60, 220], fill=f"hsl({(hue + 180) % 360},90%,80%)")
    draw.polygon(
        [(0, 380 + number % 40), (256, 330), (511, 360), (511, 511), (0, 511)], fill=f"hsl({(hue + 120) % 360},40%,25%)"
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def pictures():
    """The backend's image server on loopback (tests/image_source.py): the service copies from it."""
    server = ImageSource().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless Chromium for the module, with a new empty profile; Selenium is given the driver's path, so
    Selenium Manager downloads nothing."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.unhandled_prompt_behavior = "ignore"  # an alert stays open for the test to find
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(10)
    yield driver
    driver.quit()


@pytest.fixture
def server(tmp_path, browser, pictures):
    """The service as `make run` starts it (development, SQLite), one worker, copying from the test's image
    server; the browser leaves its page before it stops (a polling page keeps its connections busy)."""
    env = {"APP_ENV": "development", "WEB_CONCURRENCY": "1", "IMAGE_SOURCES": pictures.origin}
    with GunicornServer(tmp_path, {**env, "IMAGE_STORE": f"file://{tmp_path / 'images'}"}) as server:
        yield server
        browser.get("about:blank")


def post(server, body):
    response = server.post(body)
    assert response.status_code == 200, response.text
    return response


def completed(job_id, pictures, numbers, *, prompt, model, seconds, user=None):
    body = payload(COMPLETED, job_id, message=f"{len(numbers)} image(s) prête(s)")
    image = body["data"]["images"][0]
    body["data"]["images"] = [
        {
            **image,
            "url": pictures.add(f"/{n}.png", picture(n)),
            "description": prompt,
            "size_bytes": len(picture(n)),
            "dimensions": "512x512",
        }
        for n in numbers
    ]
    body["data"]["metadata"].update(model_name=model, generation_time_seconds=seconds)
    return body


def row_state(browser, job_id):
    """What the job's row shows: its status, its bar's value (None without a bar), its loaded thumbnails."""
    return browser.execute_script(
        """const row = document.querySelector('tr[data-job-id="' + CSS.escape(arguments[0]) + '"]');
        if (!row) return null;
        const bar = row.querySelector("progress");
        const images = [...row.querySelectorAll("img.thumb")];
        return {status: row.querySelector(".badge").textContent, progress: bar ? bar.value : null,
                images: images.filter((i) => i.complete && i.naturalWidth > 0).map((i) => i.getAttribute("src"))};""",
        job_id,
    )


def csp_errors(browser):
    return [entry["message"] for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]]


def test_progress_moves_and_thumbnails_appear_without_a_reload(browser, server, pictures):
    """While /jobs is open, each progress notification moves the job's bar and the completion shows its
    thumbnails, the page polling its JSON view (304 while nothing changed) and never reloading."""
    job_id = f"live-{uuid.uuid4().hex[:8]}"
    post(server, payload(PROGRESS, job_id, status="pending", progress=0, message="En attente"))
    browser.get(server.url + "/jobs")
    marker = uuid.uuid4().hex
    browser.execute_script("window.__loaded = arguments[0]", marker)
    origin = browser.execute_script("return performance.timeOrigin")
    assert row_state(browser, job_id)["progress"] == 0

    for status, progress in (("generating", 30), ("generating", 70), ("saving", 90)):
        post(server, payload(PROGRESS, job_id, status=status, progress=progress, message=f"{status} {progress}%"))
        state = until(lambda: row_state(browser, job_id), lambda s, p=progress: s["progress"] == p, what="the bar")
        assert state["status"] == status
    post(server, completed(job_id, pictures, [1, 2], prompt="Un chat astronaute", model="imagen-3", seconds=9.5))
    state = until(lambda: row_state(browser, job_id), lambda s: len(s["images"]) == 2, what="the thumbnails")
    assert state == {
        "status": "completed",
        "progress": None,
        "images": [f"/jobs/{job_id}/images/0/thumbnail", f"/jobs/{job_id}/images/1/thumbnail"],
    }

    assert browser.execute_script("return window.__loaded") == marker  # the same document all along
    assert browser.execute_script("return performance.timeOrigin") == origin
    assert browser.execute_script('return performance.getEntriesByType("navigation").length') == 1
    server.wait_for('"GET /jobs.json HTTP/1.1" 304')  # the polling is conditional: 304 once nothing changes
    assert csp_errors(browser) == []  # the page, its scripts and Chart.js keep within its own policy


def test_hostile_fields_run_no_script(browser, server, pictures):
    """A prompt, message and model name carrying scripts show as text on both pages: no alert, no mark left,
    and the Content-Security-Policy refuses an inline script even if one got in."""
    from selenium.common.exceptions import NoAlertPresentException

    job_id = f"hostile-{uuid.uuid4().hex[:8]}"
    body = completed(job_id, pictures, [3], prompt=HOSTILE_PROMPT, model=HOSTILE_MODEL, seconds=1.0)
    post(server, {**body, "message": HOSTILE_MESSAGE})
    post(server, payload(FAILED, f"{job_id}-failed", error_message=HOSTILE_PROMPT, message=HOSTILE_MESSAGE))

    browser.get(f"{server.url}/jobs/{job_id}")
    assert HOSTILE_PROMPT in browser.find_element("css selector", ".gallery .description").text
    browser.get(server.url + "/jobs")
    until(lambda: row_state(browser, job_id), lambda s: len(s["images"]) == 1, what="the hostile job's thumbnail")
    rows = browser.execute_script('return document.querySelectorAll("tr[data-job-id]").length')
    texts = browser.execute_script(
        'return [...document.querySelectorAll(".description, .model, .text, .error")].map((e) => e.textContent)'
    )
    assert rows == 2 and HOSTILE_PROMPT in texts and HOSTILE_MESSAGE in texts
    assert any(text.startswith(HOSTILE_MODEL) for text in texts)
    time.sleep(2)  # a poll rebuilds nothing unchanged, but give any script the time to run
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 (reading it is the check)
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    assert browser.execute_script("return document.querySelectorAll('iframe, svg, script:not([src])').length") == 0
    assert csp_errors(browser) == []

    blocked = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        document.addEventListener("securitypolicyviolation", (e) => done(e.violatedDirective));
        const script = document.createElement("script");
        script.textContent = "window.__inline = 1";
        document.body.append(script);
        setTimeout(() => done(window.__inline === undefined ? "not run, no report" : "ran"), 3000);"""
    )
    assert blocked.startswith("script-src") and browser.execute_script("return window.__inline") is None


def test_times_are_shown_in_the_browsers_time_zone(browser, server, pictures):
    """The job page's times, written in UTC by the server, read in the browser's own time zone (here Kolkata,
    UTC+5:30) in French, to the second; the UTC text stays in their title."""
    job_id = f"times-{uuid.uuid4().hex[:8]}"
    post(server, completed(job_id, pictures, [4], prompt="Un phare", model="imagen-3", seconds=2.0))
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Kolkata"})
    try:
        browser.get(f"{server.url}/jobs/{job_id}")
        ended = 'time[data-local][datetime="2025-10-21T16:45:00Z"]'  # the spec's generated_at, in the backend's UTC
        read = f"const t = document.querySelector('{ended}'); return t && [t.textContent, t.title];"
        text, title = until(lambda: browser.execute_script(read), lambda v: v and "UTC " not in v[0] + " ")
        assert title == "21 oct. 2025 16:45:00 UTC"
        assert text.startswith("21 oct. 2025") and "22:15:00" in text and "+5:30" in text, text
        received = browser.execute_script(
            "return [...document.querySelectorAll('time[data-local]')].map((t) => t.textContent)"
        )
        assert all("UTC+5:30" in time and not re.search(r":\d{2}[.,]\d", time) for time in received), received
    finally:
        browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ""})


def test_offline_does_not_look_live(browser, server):
    """The live indicator is green only while the feed answers: cut off, it says "hors ligne" in orange, and
    turns green again once the feed answers."""
    post(server, payload(PROGRESS, f"offline-{uuid.uuid4().hex[:8]}", status="generating", progress=10))
    browser.get(server.url + "/jobs")
    live = browser.find_element("id", "live")

    def indicator():
        return browser.execute_script("return [arguments[0].textContent, getComputedStyle(arguments[0]).color]", live)

    assert until(indicator, lambda v: v[0].startswith("en direct"))[1] == GREEN
    browser.execute_cdp_cmd("Network.enable", {})
    offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    try:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
        assert until(indicator, lambda v: v[0] == "hors ligne", what="the indicator")[1] == ORANGE
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {**offline, "offline": False})
        browser.execute_cdp_cmd("Network.disable", {})
    assert until(indicator, lambda v: v[0].startswith("en direct"), what="the indicator")[1] == GREEN


def test_an_unknown_job_is_a_page_with_its_way_back(browser, server):
    """/jobs/<unknown> shows a 404 page with the service's header and a link that leads back to /jobs."""
    from selenium.webdriver.common.by import By

    csp_errors(browser)  # reading the log empties it: what an earlier test left is not this page's
    browser.get(f"{server.url}/jobs/never-notified")
    status = browser.execute_script('return performance.getEntriesByType("navigation")[0].responseStatus')
    assert status == 404
    assert browser.find_element(By.CSS_SELECTOR, "header.top .brand").text == "Image Webhook"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Job introuvable"
    browser.find_element(By.ID, "back").click()
    until(lambda: browser.current_url, lambda url: url == server.url + "/jobs", what="the link back")
    assert browser.find_element(By.ID, "jobs").is_displayed()
    assert csp_errors(browser) == []


def test_screenshot_of_the_jobs_page(browser, server, pictures, tmp_path):
    """The README's picture: /jobs with real jobs (thumbnails, a failure, a running bar) and the plots."""
    from selenium.webdriver.common.by import By

    jobs = [
        ("a1f3", "Un chat astronaute flottant dans l'espace", "gemini-2.0-flash-exp", 12.5, [11, 12], "alice"),
        ("b7c2", "Un phare sous une aurore boréale", "imagen-3", 18.2, [5], "bob"),
        ("c9d4", "Une forêt de bambous au lever du soleil", "gemini-2.0-flash-exp", 9.8, [8, 9, 10], "alice"),
        ("d2e8", "Un robot jardinier dans une serre", "sdxl-turbo", 3.1, [14], "chloé"),
        ("e5f1", "Une ville flottante au coucher du soleil", "imagen-3", 21.4, [2, 6], "bob"),
    ]
    for job_id, prompt, model, seconds, numbers, user in jobs:
        post(server, payload(PROGRESS, f"job-{job_id}", status="generating", progress=40))
        post(server, completed(f"job-{job_id}", pictures, numbers, prompt=prompt, model=model, seconds=seconds))
        owner = {"user_id": user} | ({"prompt": f"{prompt}, style aquarelle"} if user == "alice" else {})
        requests.put(f"{server.url}/api/jobs/job-{job_id}", json=owner, timeout=10)
    post(server, completed("job-b7c2", pictures, [5], prompt="", model="imagen-3", seconds=18.2))  # a duplicate
    post(server, payload(FAILED, "job-f0a6", error_message="Quota de l'API dépassé"))
    post(server, payload(PROGRESS, "job-g3b9", status="generating", progress=45, message="Génération en cours..."))
    post(server, payload(PROGRESS, "job-h8c1", status="pending", progress=0, message="En file d'attente"))

    screenshot = README_SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") else tmp_path / "jobs.png"
    browser.get(server.url + "/jobs")
    until(lambda: browser.execute_script("return document.getElementById('monitoring').dataset.loaded"))
    until(lambda: all(len(row_state(browser, f"job-{j[0]}")["images"]) == len(j[4]) for j in jobs))
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr[data-job-id]")) == 8
    until(lambda: browser.find_element(By.ID, "live").text.startswith("en direct"))  # its first poll answered
    total = browser.find_element(By.CSS_SELECTOR, '[data-stat="bytes"]')
    assert re.fullmatch(r"\d+(,\d)? (ko|Mo|Go)", total.text) and total.get_attribute("title").endswith(" octets")
    # the whole page, 1280 pixels wide: the jobs and, below them, the plots
    height = browser.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": WINDOW[0], "height": max(height, WINDOW[1]), "deviceScaleFactor": 1, "mobile": False}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        time.sleep(0.5)  # the charts follow the new size on their next frame
        assert browser.save_screenshot(str(screenshot))
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    width, height = struct.unpack(">II", screenshot.read_bytes()[16:24])  # the PNG's IHDR
    assert width == WINDOW[0] and height >= WINDOW[1]
