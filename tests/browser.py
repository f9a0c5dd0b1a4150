"""Headless Chromium for the HTML view's tests and its benchmark (Debian's chromium and
chromium-driver, driven by selenium)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
)


def _find(names: tuple[str, ...], fallback: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return fallback if Path(fallback).exists() else None


def missing_browser() -> str | None:
    """Why no browser can be driven here, or None when one can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if _find(CHROMIUM_NAMES, "/usr/bin/chromium") is None:
        return "no chromium (apt-get install chromium chromium-driver)"
    if _find(DRIVER_NAMES, "/usr/bin/chromedriver") is None:
        return "no chromedriver (apt-get install chromium-driver)"
    return None


def start_browser():
    """A fresh headless Chromium with its own throwaway profile; quit it when done."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _find(CHROMIUM_NAMES, "/usr/bin/chromium")
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="attnviz-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(_find(DRIVER_NAMES, "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.attnviz_profile = profile
    return driver


def stop_browser(driver) -> None:
    profile = getattr(driver, "attnviz_profile", None)
    driver.quit()
    if profile and os.path.isdir(profile):
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver, path: Path, timeout: float = 30.0) -> dict[str, float]:
    """Load a page from disk, wait until it is interactive; its timings in milliseconds."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(Path(path).resolve().as_uri())
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script(
            "return document.readyState === 'complete' && document.body.dataset.ready === '1'"
            " && performance.getEntriesByType('navigation')[0].loadEventEnd > 0"
        )
    )
    return driver.execute_script(
        "const nav = performance.getEntriesByType('navigation')[0];"
        "return {dom_content_loaded: nav.domContentLoadedEventEnd,"
        " load: nav.loadEventEnd, interactive: window.attnvizReadyAt};"
    )
