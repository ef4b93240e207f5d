"""The slot's player page in headless Chromium: spin, see the reels, the win and the balance.

Needs Debian's `chromium` and `chromium-driver` (CI installs them) and the `selenium` package; without
them the test fails and says what to install, because a page nobody drives is a page nobody tested.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from browser import CHROMIUM_FLAGS, WAIT_S, executables
from test_house import OPENING, House, serve_house

from providers.house import store


def _drive(chromium: str, chromedriver: str, pages: dict[str, str], shots: Path) -> dict[str, dict[str, Any]]:
    """Open each page, spin once, and read back what the page shows (runs in a thread)."""
    from selenium import webdriver  # noqa: PLC0415 -- imported only once the browser is known
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="croupier-chromium-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    seen: dict[str, dict[str, Any]] = {}
    try:
        for name, url in pages.items():
            browser.get(url)
            wait = WebDriverWait(browser, WAIT_S)
            body = browser.find_element(By.TAG_NAME, "body")
            wait.until(lambda _, page=body: page.get_attribute("data-ready") == "true")
            before = browser.find_element(By.ID, "balance").get_attribute("data-minor")
            browser.find_element(By.ID, "spin").click()
            wait.until(
                lambda _, page=body: (
                    page.get_attribute("data-rounds") == "1" or page.get_attribute("data-refused")
                )
            )
            wait.until(lambda _: browser.find_element(By.ID, "spin").is_enabled())
            cells = browser.find_elements(By.CSS_SELECTOR, "#reels .cell")
            seen[name] = {
                "before": before,
                "balance": browser.find_element(By.ID, "balance").get_attribute("data-minor"),
                "balance_text": browser.find_element(By.ID, "balance").text,
                "win": browser.find_element(By.ID, "win").get_attribute("data-minor"),
                "round_id": browser.find_element(By.ID, "reels").get_attribute("data-round-id"),
                "symbols": [cell.get_attribute("data-symbol") for cell in cells],
                "message": browser.find_element(By.ID, "message").text,
                "refused": body.get_attribute("data-refused"),
            }
            browser.save_screenshot(str(shots / f"{name}.png"))
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return seen


async def _token(house: House, balance_minor: int) -> tuple[str, str]:
    player = await house.player(balance_minor)
    return player.token, player.player_id


async def test_a_spin_on_the_page_shows_the_stored_round(fresh_db, fresh_redis, tmp_path: Path) -> None:
    """A click on Spin plays a round: the page shows the backend's balance and the stored reels."""
    chromium, chromedriver = executables()
    async with serve_house(fresh_db, fresh_redis) as house:
        rich, rich_id = await _token(house, OPENING)
        poor, poor_id = await _token(house, 10)
        base = str(house.client.make_url("/providers/house/slot")).rstrip("/")
        pages = {"spin": f"{base}?token={rich}", "refused": f"{base}?token={poor}"}
        seen = await asyncio.to_thread(_drive, chromium, chromedriver, pages, tmp_path)

        spin = seen["spin"]
        assert spin["before"] == str(OPENING)
        money = await house.money_of(rich_id)
        assert spin["balance"] == str(money), spin
        assert spin["balance_text"].endswith("EUR")
        assert spin["round_id"], "the page shows the round it played"
        stored = await house.stored(spin["round_id"])
        assert stored.status == "settled"
        assert str(stored.win_minor) == spin["win"]
        assert money == OPENING - stored.bet_minor + stored.win_minor
        # The reels shown are exactly the stored base window, row by row.
        window = [symbol for row in stored.state["base"]["window"] for symbol in row]
        assert spin["symbols"] == window

        refused = seen["refused"]
        assert refused["refused"] == "INSUFFICIENT_FUNDS"
        assert refused["balance"] == "10" == str(await house.money_of(poor_id))
        assert refused["symbols"] == [None] * 15, "a refused bet shows no outcome"
        assert not refused["round_id"]
        assert refused["message"] == "Not enough funds for this bet."
        rows = await house.pool.fetch(
            f"SELECT status FROM {store.SCHEMA}.rounds WHERE player_id = $1", poor_id
        )
        assert [r["status"] for r in rows] == ["refused"]
    assert (tmp_path / "spin.png").stat().st_size > 10_000
    assert uuid.UUID(spin["round_id"])
