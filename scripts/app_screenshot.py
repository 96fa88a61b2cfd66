"""docs/app.png: a screenshot of the page (python -m src.app) after labelling a world scene.

    python scripts/app_screenshot.py [--out docs/app.png] [--width 1400] [--height 1650]

It starts the page on the offline world's CLIP (no download), drives it with Debian's headless
Chromium through Selenium (the driver at its system path: never a driver or browser download),
labels a bundled example, and saves the window. tests/test_app_browser.py drives the page with the
same browser (:func:`headless_chromium`, :func:`start_page`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = ("install Debian's chromium and chromium-driver "
                "(apt-get install chromium chromium-driver)")
# The page on the world CLIP, as `python -m src.app teacher=world prompts=world scale=null`; the
# tests add the CPU settings, so that the src.predict commands they run stay in-process.
SCREENSHOT = ["teacher=world", "prompts=world", "scale=null"]
WORLD = [*SCREENSHOT, "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
         "num_workers=0"]


def browser_missing() -> str | None:
    """Why the browser cannot run here (None when it can): names what is missing and the fix."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).is_file()]
    if missing:
        return f"{' and '.join(missing)} not found: {INSTALL_HINT}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return f"selenium is not installed (pip install -e '.[dev]'); and {INSTALL_HINT}"
    return None


def headless_chromium(download_dir: str | Path | None = None, size: tuple[int, int] = (1400, 1200)):
    """Debian's Chromium, headless, through its own chromedriver (Selenium Manager is never
    asked: both paths are given), with every network request in the performance log.

    Args:
        download_dir: where downloads land (no prompt).
        size: the window (width, height) in CSS pixels.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"):
        options.add_argument(arg)
    if download_dir is not None:
        options.add_experimental_option("prefs", {
            "download.default_directory": str(download_dir),
            "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.profile_dir = profile  # removed by close_chromium
    return driver


def close_chromium(driver) -> None:
    driver.quit()
    shutil.rmtree(driver.profile_dir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_page(overrides=WORLD, temp_dir: str | Path | None = None):
    """The page in this process on a free local port: (LabellingApp, Gradio Blocks, address).
    Stop it with ``demo.close(); app.close()``."""
    from src.app import LabellingApp, build_ui, launch
    from src.utils.experiments import compose_config

    extra = [] if temp_dir is None else [f"temp_dir={temp_dir}"]
    app = LabellingApp(compose_config("app", [*overrides, *extra]), list(overrides))
    demo = build_ui(app)
    url = launch(app, demo, host="127.0.0.1", port=free_port())
    return app, demo, url


def label_example(driver, url: str, classes: str, timeout: float = 120) -> None:
    """Open the page, pick the first bundled example, type ``classes``, press Label, and wait
    for the overlay."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    driver.get(url)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button.gallery-item"))).click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#images img")))
    box = driver.find_element(By.CSS_SELECTOR, "#classes textarea, #classes input")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(classes)
    driver.find_element(By.CSS_SELECTOR, "#run").click()
    wait.until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, "#overlay img[src*='gradio_api/file=']")))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#downloads a")))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "app.png"))
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1650)
    parser.add_argument("--classes", default="grass, water, sand, brick, sky, ball, star, "
                                              "heart, kite, box, ring, cloud")
    args = parser.parse_args(argv)
    reason = browser_missing()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    app, demo, url = start_page(SCREENSHOT)
    driver = headless_chromium(size=(args.width, args.height))
    try:
        label_example(driver, url, args.classes)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
        print(f"wrote {out} ({url})")
    finally:
        close_chromium(driver)
        demo.close()
        app.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
