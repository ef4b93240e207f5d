"""Headless Chromium for the page tests: the flags and the executables, or a clear failure.

Needs Debian's `chromium` and `chromium-driver` (CI installs them) and the `selenium` package; without
them a page test fails and says what to install, because a page nobody drives is a page nobody tested.
"""

from __future__ import annotations

import shutil

import pytest

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=760,1000",
)
WAIT_S = 30


def executables() -> tuple[str, str]:
    """Return the Chromium and chromedriver executables, or fail saying how to get them."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail("headless Chromium is missing: apt-get install -y chromium chromium-driver")
    try:
        import selenium  # noqa: F401, PLC0415 -- checked here to fail with a clear message
    except ImportError:
        pytest.fail("the selenium package is missing: pip install selenium")
    return chromium, driver
