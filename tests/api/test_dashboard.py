"""The dashboard in a real browser (Debian's Chromium, driven by Playwright): open it,
start the bot, see it turn green and a position appear with its stop, stop it, see it
turn grey, all without reloading the page. A screenshot is kept as an artifact."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def _near(pixels: Any, color: str, within: int = 40) -> Any:
    """Where an RGB image (an array) is `color`, give or take antialiasing."""
    import numpy as np

    rgb = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
    return np.abs(pixels.astype(int) - rgb).sum(axis=-1) <= within


def test_the_price_chart_shows_candles_trades_and_the_stop(
    browser, botwarden_home: Path, tmp_path: Path
) -> None:
    """The bot's price chart in real Chromium, read off a screenshot: green and red
    candles, the entries marked, and the stop's line across the chart at the height
    of the stop resting on the venue (what the positions table says)."""
    import io

    import numpy as np
    from PIL import Image
    from playwright.sync_api import expect

    server = Server(botwarden_home)
    try:
        slower = bot_config(tmp_path)  # (an hour in half a second: trades every few)
        slower.write_text(slower.read_text().replace("speed: 36000", "speed: 7200"))
        server.client.post("/api/v1/bots", json={"config": str(slower)})
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{server.url}/#token={server.token}")
        card = page.locator(f'[data-bot="{BOT}"]')

        def holding() -> bool:
            return bool(server.client.get(f"/api/v1/bots/{BOT}/positions").json())

        def closed() -> int:
            return server.client.get(f"/api/v1/bots/{BOT}").json()["report"]["trades_total"]

        # Stopped, the bot keeps its position and the stop it placed: a still picture.
        # (Stopped between two trades, it holds nothing: it is started again.)
        for _ in range(5):
            card.locator('[data-action="start"]').click()
            expect(card).to_have_attribute("data-status", "running", timeout=30_000)
            deadline = time.monotonic() + 90
            while closed() < 2 or not holding():
                assert time.monotonic() < deadline, "two trades closed and a position held"
                time.sleep(0.1)
            server.client.post(f"/api/v1/bots/{BOT}/stop", params={"timeout": 30})
            expect(card).to_have_attribute("data-status", "stopped", timeout=60_000)
            if holding():
                break
        assert holding(), "stopped holding a position"
        chart = card.locator('[data-chart="golden_spy/SPY"]')
        expect(chart).to_have_attribute("aria-label", re.compile("stop at"), timeout=30_000)
        page.wait_for_timeout(500)  # (plotly's drawing done)

        drawn = chart.evaluate(
            """(div) => ({
                stop: div.layout.shapes[0].y0,
                y: div._fullLayout.yaxis.l2p(Number(div.layout.shapes[0].y0))
                   + div._fullLayout._size.t,
                left: div._fullLayout._size.l, width: div._fullLayout._size.w,
                candles: div.data[0].x.length, entries: div.data[1].x.length,
                exits: div.data[2].x.length,
                points: div.querySelectorAll(".scatterlayer path.point").length,
            })"""
        )
        row = card.locator('[data-position="SPY"] td')
        assert float(drawn["stop"]) == float(row.nth(6).inner_text()), "the table's stop"
        assert drawn["candles"] >= 100 and drawn["exits"] >= 2 and drawn["entries"] >= 3
        assert drawn["points"] >= drawn["entries"] + drawn["exits"] - 4, "markers drawn"

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = chart.screenshot(path=str(ARTIFACTS / "dashboard-chart.png"))
        image = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))
        up, down = _near(image, "#1a7f37").sum(), _near(image, "#cf222e").sum()
        entries = _near(image, "#0969da").sum()
        assert up > 300 and down > 300, f"green and red candles ({up}, {down} pixels)"
        assert entries > 30, f"the entries marked ({entries} pixels)"
        scale = image.shape[1] / chart.bounding_box()["width"]
        y = round(drawn["y"] * scale)
        left, right = round(drawn["left"] * scale), round((drawn["left"] + drawn["width"]) * scale)
        orange = _near(image[:, left:right], "#e16f24").sum(axis=1)  # by row
        on_line = orange[y - 1 : y + 2].max()
        assert on_line > 0.4 * (right - left), f"the stop's line across at y={y} ({on_line} px)"
        assert orange[: y - 3].max() < 0.05 * (right - left), "and no other line above it"
        assert problems == []
    finally:
        server.client.post(f"/api/v1/bots/{BOT}/stop", params={"timeout": 5})
        server.close()


def test_a_backtest_report_opens_from_the_dashboard(
    browser, botwarden_home: Path, tmp_path: Path
) -> None:
    """A backtest written with --out is listed on the dashboard; its report opens there
    with its charts drawn by the plotly botwarden serves, its scripts kept from the
    dashboard's token."""
    from playwright.sync_api import expect

    from tests.backtest.test_command import config
    from tests.test_cli import botwarden

    ran = botwarden("backtest", str(config(tmp_path)), "--out", "report", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    server = Server(botwarden_home)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{server.url}/#token={server.token}")
        row = page.locator("#backtests [data-backtest]")
        expect(row).to_have_count(1)
        expect(row).to_contain_text(f"{summary['total_return_pct']:.2f}%")
        row.locator('[data-action="report"]').click()
        frame = page.frame_locator("#report-frame")
        expect(frame.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
        expect(frame.locator("body")).to_contain_text("buy and hold")
        assert frame.locator(".js-plotly-plot .boxlayer .trace").count() >= 2, "candles drawn"
        kept_away = page.frame(url="about:srcdoc").evaluate(
            "() => { try { return localStorage.getItem('botwarden-token'); }"
            " catch (error) { return 'refused'; } }"
        )
        assert kept_away == "refused", "the report's scripts cannot read the token"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-backtest.png"))
        page.locator("#report button").click()
        expect(page.locator("#report")).to_be_hidden()
        assert problems == []
    finally:
        server.close()
