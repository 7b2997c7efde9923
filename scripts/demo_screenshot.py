"""Open the `td-detr demo` page in headless Chromium, choose a query and save a screenshot of the answer.

    python scripts/demo_screenshot.py --model td-detr-runs/synthetic --query 137 --output docs/demo.png

starts `td-detr demo --model M` (the synthetic data set) on a free port, drives the system Chromium with Selenium
(Debian: apt-get install chromium chromium-driver; pip install selenium), waits for the windows table and the timeline,
writes a palette PNG and stops the demo. ``--url`` screenshots a page that is already running.
The demo's browser tests use `open_browser` and `choose_query`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

WINDOW_SIZE = (1360, 1420)


def chromium_paths() -> tuple[str, str] | None:
    """(browser, driver) of the system Chromium, or None when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def open_browser():
    """A headless Chromium driven by Selenium, with the system's chromedriver (Selenium Manager never downloads)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = chromium_paths()
    if paths is None:
        raise RuntimeError("needs chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}", "--hide-scrollbars"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(paths[1]), options=options)


def choose_query(driver, url: str, search: str, timeout: float = 60.0) -> dict:
    """Open ``url``, type ``search`` into the query list, pick the first match and wait for the answer. Returns the
    elements found: ``rows`` (windows table rows; their cells are ``[role=gridcell]``), ``plot`` (the timeline image) and ``metrics`` (its text)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    driver.get(url)
    box = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#query-list input")))
    box.click()
    box.send_keys(search)
    option = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#query-list li[role=option]")))
    option.click()
    box.send_keys(Keys.ESCAPE)
    driver.execute_script("document.activeElement.blur()")  # no text cursor in the screenshot
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#dataset-plot img"))
    rows = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#dataset-windows [role=row].virtual-row") or False)
    metrics = wait.until(lambda d: (d.find_element(By.ID, "dataset-metrics").text.strip() or False))
    time.sleep(0.5)  # let the image finish its layout before a screenshot
    return {"rows": rows, "plot": driver.find_element(By.CSS_SELECTOR, "#dataset-plot img"), "metrics": metrics}


def start_demo(model: str, timeout: float = 300.0):
    """Run `td-detr demo --model M` on a free port as a user would; returns (process, address) once it serves."""
    import socket
    import subprocess

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "td_detr", "demo", "--model", model, "--port", str(port)],
                              stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    for line in server.stdout:  # the command prints its address once the page is served
        if "serving on " in line:
            return server, line.split("serving on ", 1)[1].split()[0]
        if time.monotonic() > deadline:
            break
    server.terminate()
    raise RuntimeError(f"td-detr demo did not start (exit code {server.wait(timeout=30)})")


def save_small_png(png: bytes, path: Path, colours: int = 128) -> Path:
    """The screenshot as a palette PNG (a few hundred kB instead of ~1 MB)."""
    import io

    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model to serve (with the synthetic data set, or the data flags of --args)")
    parser.add_argument("--url", help="screenshot a running demo instead of serving one")
    parser.add_argument("--query", default="", help="text typed into the query list (a qid, video id or words)")
    parser.add_argument("--output", default="docs/demo.png")
    args = parser.parse_args(argv)
    if not args.url and not args.model:
        parser.error("give --model or --url")
    server = None
    url = args.url
    if url is None:
        server, url = start_demo(args.model)
    try:
        driver = open_browser()
        try:
            found = choose_query(driver, url, args.query)
            path = save_small_png(driver.get_screenshot_as_png(), Path(args.output))
        finally:
            driver.quit()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    print(f"wrote {path} ({path.stat().st_size // 1024} kB): {len(found['rows'])} windows; {found['metrics'][:80]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
