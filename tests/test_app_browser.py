"""The page in a real browser: Debian's headless Chromium, driven by Selenium through the system's
chromedriver (never a driver or browser download). Skipped, saying how to install it, where the
browser is missing; .ci/run installs it.

The page runs in this process on a free local port with the world CLIP. Chromium's performance log
records every request the page makes; each must go to that server (this machine has no internet,
so a blocked request would prove nothing)."""

from __future__ import annotations

import json
import shutil
import shlex
import time
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from scripts.app_screenshot import browser_missing

REASON = browser_missing()
pytestmark = [pytest.mark.browser, pytest.mark.skipif(REASON is not None, reason=REASON or "")]

WORLD_CLASSES = "grass, water, sand, brick, sky, ball, star, heart, kite, box, ring, cloud"
TIMEOUT = 60  # seconds for any one thing to appear on the page
LOCAL_SCHEMES = ("data", "blob", "about", "chrome", "chrome-extension", "devtools")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(app, address) of the page, served from this process on 127.0.0.1."""
    from scripts.app_screenshot import start_page

    app, demo, url = start_page(temp_dir=tmp_path_factory.mktemp("page"))
    yield app, url
    demo.close()
    app.close()


@pytest.fixture
def browser(tmp_path, monkeypatch):
    """Headless Chromium with downloads into ``tmp_path/downloads``; Selenium Manager (which
    would download a driver) fails the test if anything asks it."""
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    from scripts.app_screenshot import close_chromium, headless_chromium

    def no_manager(*args, **kwargs):
        raise AssertionError("Selenium Manager was asked for a driver")

    monkeypatch.setattr(SeleniumManager, "binary_paths", no_manager)
    (tmp_path / "downloads").mkdir()
    driver = headless_chromium(tmp_path / "downloads")
    yield driver
    close_chromium(driver)


def requests_made(driver) -> list[str]:
    """Every URL the page requested (documents, scripts, fonts, images, XHR, event streams,
    web sockets), from Chromium's performance log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
        elif message["method"] == "Network.webSocketCreated":
            urls.append(message["params"]["url"])
    return urls


def assert_all_local(urls: list[str], address: str) -> None:
    server = urlsplit(address).netloc
    network = [u for u in urls if urlsplit(u).scheme not in LOCAL_SCHEMES]
    assert network, "the performance log recorded no request"
    elsewhere = [u for u in network if urlsplit(u).netloc != server
                 or urlsplit(u).hostname not in ("127.0.0.1", "localhost")]
    assert elsewhere == [], f"requests that leave the local server: {elsewhere}"


def wait_for(driver, selector: str, timeout: float = TIMEOUT):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, selector)))


def clear_and_type(element, text: str) -> None:
    """Replace a text box's value the way a user does (so the page sees input events)."""
    from selenium.webdriver.common.keys import Keys

    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.DELETE)
    if text:
        element.send_keys(text)


def test_upload_label_download_equals_src_predict(page, browser, tmp_path):
    """Upload a world scene, type classes, tick PAMR, press Label: the overlay appears, and the
    label PNG the browser downloads equals src.predict's for the command the page shows."""
    from selenium.webdriver.common.by import By

    from src.predict import class_list_argv, predict
    from src.utils.experiments import compose_config

    app, url = page
    start = time.perf_counter()
    scene = tmp_path / "my_scene.png"  # a file of the user's, outside the page's folder
    shutil.copyfile(app.examples[2], scene)
    browser.get(url)
    wait_for(browser, "#images input[type=file]").send_keys(str(scene))
    wait_for(browser, "#images img")  # the upload arrived
    clear_and_type(browser.find_element(By.CSS_SELECTOR, "#classes textarea"), WORLD_CLASSES)
    browser.find_element(By.CSS_SELECTOR, "#pamr input").click()
    browser.find_element(By.CSS_SELECTOR, "#run").click()

    overlay = wait_for(browser, "#overlay img[src*='gradio_api/file=']")
    assert browser.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", overlay) == 96
    wait_for(browser, "#legend .entry")
    assert "my_scene.png" in browser.find_element(By.CSS_SELECTOR, "#areas").text
    link = wait_for(browser, "#downloads a[download='my_scene_labels.png']")
    command = browser.find_element(By.CSS_SELECTOR, "#command textarea").get_attribute("value")
    link.click()
    downloaded = tmp_path / "downloads" / "my_scene_labels.png"
    deadline = time.monotonic() + TIMEOUT
    while not downloaded.is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert downloaded.is_file(), list((tmp_path / "downloads").iterdir())
    in_browser = time.perf_counter() - start

    argv = shlex.split(command)
    assert argv[:4] == ["python", "-m", "src.predict", "images=my_scene.png"]
    assert "postproc=pamr" in argv and argv[-1] == "out=predictions"
    out = tmp_path / "predict"
    predict(compose_config("predict", class_list_argv(
        [f"images={scene}", *argv[4:-1], f"out={out}"])))
    with Image.open(downloaded) as mine, Image.open(out / "labels" / "my_scene.png") as theirs:
        assert mine.mode == theirs.mode == "P" and mine.getpalette() == theirs.getpalette()
        assert np.array_equal(np.asarray(mine), np.asarray(theirs))
    assert downloaded.read_bytes() == (out / "labels" / "my_scene.png").read_bytes()
    assert_all_local(requests_made(browser), url)
    print(f"\nbrowser: upload, label, download in {in_browser:.1f} s "
          f"(test {time.perf_counter() - start:.1f} s)")


def test_an_empty_class_list_is_said_on_the_page(page, browser):
    """Pick an example, empty the class box, press Label: the page says what to do, and shows
    no traceback and no overlay."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app, url = page
    start = time.perf_counter()
    browser.get(url)
    wait_for(browser, "button.gallery-item").click()
    wait_for(browser, "#images img")
    clear_and_type(browser.find_element(By.CSS_SELECTOR, "#classes textarea"), "")
    browser.find_element(By.CSS_SELECTOR, "#run").click()
    toast = wait_for(browser, ".toast-body.error")
    WebDriverWait(browser, TIMEOUT).until(  # the toast fades in: its text shows a moment later
        lambda driver: "Classes: the list is empty" in toast.text)
    assert "separated by commas (e.g. cat, dog, grass)" in toast.text
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Traceback" not in body and "File \"" not in body
    assert not browser.find_elements(By.CSS_SELECTOR, "#overlay img[src*='gradio_api/file=']")
    assert_all_local(requests_made(browser), url)
    print(f"\nbrowser: empty class list message in {time.perf_counter() - start:.1f} s")
