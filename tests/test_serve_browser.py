"""The page in a real browser: headless Chromium (Debian ``chromium`` + ``chromium-driver``) through Selenium.

One page load, one upload, one download. Skipped, with the reason, only when no browser can be had;
``.ci/run`` installs it. ``COLORKIT_SCREENSHOT=docs/serve-page.png`` also saves a screenshot of the page.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorkit.color import rgb_to_lab
from colorkit.serve import ServerThread, create_app

pytestmark = pytest.mark.slow

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
_DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver", "/usr/bin/chromedriver")


def _find(names: tuple[str, ...]) -> str | None:
    for n in names:
        found = shutil.which(n) or (n if os.path.isabs(n) and os.access(n, os.X_OK) else None)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")
    binary, driver_path = _find(_BROWSERS), _find(_DRIVERS)
    if not binary or not driver_path:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver (.ci/run does)")
    downloads = tmp_path_factory.mktemp("downloads")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,1150", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    from selenium.webdriver.chrome.service import Service

    try:  # an explicit driver path: Selenium never tries to download one
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    except Exception as e:  # a browser that cannot start here is a skip, with the reason
        pytest.skip(f"headless {binary} would not start: {type(e).__name__}: {str(e).splitlines()[0]}")
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver, downloads
    driver.quit()


@pytest.fixture(scope="module")
def server():
    """The starter model: a random network's colour could be near gray, the starter's is not."""
    from colorkit import load_colorizer

    with ServerThread(create_app(load_colorizer())) as url:
        yield url


def _gray_photo(path: Path) -> Image.Image:
    """A real portrait (matplotlib's sample), gray, at an odd size so a resized result would show."""
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        gray = im.convert("L").resize((201, 243), Image.Resampling.LANCZOS)
    gray.save(path)
    return gray


def _mean_chroma(img: Image.Image) -> float:
    t = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).float().div(255)
    lab = rgb_to_lab(t[None])[0]
    return float(lab[1:].pow(2).sum(0).sqrt().mean())


def test_upload_colorize_and_download_in_a_browser(browser, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, downloads = browser
    src = _gray_photo(tmp_path / "grace_gray.png")
    assert _mean_chroma(src) < 0.01

    driver.get(server)
    wait = WebDriverWait(driver, 90)
    wait.until(lambda d: "model starter" in d.find_element(By.ID, "model").text)
    driver.find_element(By.ID, "files").send_keys(str(tmp_path / "grace_gray.png"))
    card = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#results .card.done"))
    after = card.find_element(By.CSS_SELECTOR, "img.after")
    assert after.is_displayed()
    assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", after) == 201
    assert "201×243" in card.find_element(By.CSS_SELECTOR, ".state").text
    # the before/after slider moves the split
    slider = card.find_element(By.CSS_SELECTOR, "input.slider")
    driver.execute_script("arguments[0].value = 20; arguments[0].dispatchEvent(new Event('input'))", slider)
    assert "80%" in card.find_element(By.CSS_SELECTOR, "img.before").get_attribute("style")

    card.find_element(By.CSS_SELECTOR, "a.download").click()
    target = downloads / "grace_gray_colorized.png"
    end = time.monotonic() + 60
    while not target.exists() and time.monotonic() < end:
        time.sleep(0.1)
    assert target.exists(), f"no download; the folder holds {os.listdir(downloads)}"
    with Image.open(target) as out:
        out.load()
    assert out.size == src.size == (201, 243)
    chroma = _mean_chroma(out)
    assert chroma > 1.5, f"the result is nearly gray (mean Lab chroma {chroma:.2f}; the input's is 0)"
    assert np.abs(np.asarray(out.convert("L"), float) - np.asarray(src, float)).mean() < 2  # same photo

    if os.environ.get("COLORKIT_SCREENSHOT"):  # for docs/serve.md
        driver.execute_script("arguments[0].value = 50; arguments[0].dispatchEvent(new Event('input'))", slider)
        driver.save_screenshot(os.environ["COLORKIT_SCREENSHOT"])

    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors  # no script errors, no blocked (off-site) loads
