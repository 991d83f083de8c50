"""A real browser (Debian's headless Chromium driven by Selenium) against the inbox served by
uvicorn on a free port, with a real SMTP capture server for the emails."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from notifications.capture import free_port

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def screenshot_dir() -> Path:
    """Where the browser tests leave their screenshots (git-ignored; README names it)."""
    path = Path(os.environ.get("EA_SCREENSHOT_DIR") or REPO / "data" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser_installed() -> None:
    """Install chromium, chromedriver and Inter with apt-get when missing (tests/browser/)."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        result = subprocess.run(
            ["bash", str(REPO / "tests" / "browser" / "install.sh")],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.fail(
                "the browser tests need Debian's chromium and chromium-driver; installing them "
                f"failed (run `make browser` as root):\n{result.stderr[-2000:]}"
            )


@pytest.fixture()
def driver(browser_installed, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1440,960",
    ):
        options.add_argument(arg)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    browser.set_page_load_timeout(30)
    yield browser
    browser.quit()


class LiveServer:
    """uvicorn serving an ASGI app in a thread, on a free port."""

    def __init__(self, app, port: int):
        import uvicorn

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 15 s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture()
def port() -> int:
    return free_port()
