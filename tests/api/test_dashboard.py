"""The dashboard in a real browser (Debian's Chromium, driven by Playwright): open it,
start the bot, see it turn green and a position appear with its stop, stop it, see it
turn grey, all without reloading the page. A screenshot is kept as an artifact."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.server import Server, bot_config
from tests.conftest import service_missing

CHROMIUM = Path(os.environ.get("BOTWARDEN_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("BOTWARDEN_TEST_ARTIFACTS", "test-artifacts"))
BOT = "golden_spy"


@pytest.fixture
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        service_missing(
            f"Chromium ({CHROMIUM})",
            "Install it: sudo apt-get install chromium (`.ci/run` does), or point"
            " BOTWARDEN_TEST_CHROMIUM at one.",
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox"],  # root in a container
        )
        yield browser
        browser.close()


def test_the_dashboard_shows_a_live_bot(browser, botwarden_home: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    server = Server(botwarden_home)
    try:
        server.client.post("/api/v1/bots", json={"config": str(bot_config(tmp_path))})
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{server.url}/#token={server.token}")
        card = page.locator(f'[data-bot="{BOT}"]')
        expect(card).to_have_attribute("data-status", "stopped")
        expect(page.locator("#live")).to_have_attribute("data-live", "yes")
        assert "token" not in page.url, "the token is taken off the address bar"
        page.evaluate("window.sameDocument = true")

        card.locator('[data-action="start"]').click()
        expect(card).to_have_attribute("data-status", "running", timeout=30_000)
        stop = card.locator('[data-position="SPY"] [data-stop-live="true"]')
        expect(stop).to_be_visible(timeout=60_000)
        expect(card.locator('[data-position="SPY"]')).to_contain_text("stop live")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        card.locator('[data-action="stop"]').click()
        expect(card).to_have_attribute("data-status", "stopped", timeout=60_000)
        expect(card.locator(".status")).to_have_css("background-color", "rgb(110, 119, 129)")
        assert page.evaluate("window.sameDocument") is True, "no reload along the way"
        assert problems == []
    finally:
        server.client.post(f"/api/v1/bots/{BOT}/stop", params={"timeout": 5})
        server.close()


def test_a_wrong_token_asks_for_the_right_one(browser, botwarden_home: Path) -> None:
    from playwright.sync_api import expect

    server = Server(botwarden_home)
    try:
        page = browser.new_page()
        page.goto(f"{server.url}/#token=wrong")
        expect(page.locator("#login")).to_be_visible()
        expect(page.locator("#message")).to_contain_text("The token was refused")
        page.fill("#token", server.token)
        page.click("#login button")
        expect(page.locator("#login")).to_be_hidden()
        expect(page.locator("#bots")).to_contain_text("No bots yet")
    finally:
        server.close()


OWN_STRATEGY = """\
from botwarden import Signal, Stop, TakeProfit


class FirstBar:
    name = "first_bar"
    bars_needed = 1

    def decide(self, symbol, bars, position):
        if position is None:
            target = TakeProfit.percent(20)
            return Signal.long(symbol, bars[-1], "in", stop=Stop.percent(20), take_profit=target)
        return None
"""
OWN_CONFIG = """\
bot_id: mine
symbols: [SPY]
order: {qty: 3}
strategy: {path: strategies/first_bar.py}
venue: {type: paper, speed: 3600, start: 2026-03-02T14:30:00Z}
engine: {check_interval: 1h}
"""


def test_a_users_strategy_file_shows_with_its_bracket(
    browser, botwarden_home: Path, tmp_path: Path
) -> None:
    """A strategy of the user's, from a file outside the package, started from the
    dashboard: its position shows with the stop and the take-profit resting beside it."""
    from playwright.sync_api import expect

    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "first_bar.py").write_text(OWN_STRATEGY)
    (tmp_path / "bot.yaml").write_text(OWN_CONFIG)
    server = Server(botwarden_home)
    try:
        server.client.post("/api/v1/bots", json={"config": str(tmp_path / "bot.yaml")})
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{server.url}/#token={server.token}")
        card = page.locator('[data-bot="mine"]')
        expect(card).to_contain_text("strategies/first_bar.py")
        card.locator('[data-action="start"]').click()
        position = card.locator('[data-position="SPY"]')
        expect(position.locator('[data-stop-live="true"]')).to_be_visible(timeout=60_000)
        target = position.locator("[data-take-profit]")
        expect(target).not_to_have_attribute("data-take-profit", "", timeout=30_000)
        entry = float(position.locator("td").nth(3).inner_text())
        assert float(target.get_attribute("data-take-profit")) > entry, "above a long's entry"
    finally:
        server.client.post("/api/v1/bots/mine/stop", params={"timeout": 5})
        server.close()
