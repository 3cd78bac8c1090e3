"""What the dashboard's charts are drawn from (`GET /api/v1/bots/{id}/market`), checked
against the paper exchange's own book, not the bot's state: the bars are the venue's
bars, the stop drawn is the stop resting on the venue, the unrealized PnL is what the
book's fill and the last price make, the cash is the book's."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from botwarden.config import load_config
from botwarden.venues.factory import open_paper_venue
from tests.api.server import Server
from tests.api.test_dashboard import OWN_STRATEGY

CONFIG = """\
bot_id: charted
symbols: [SPY, QQQ]
order: {qty: 3}
strategy: {path: first_bar.py, timeframe: 1h}
venue: {type: paper, speed: 3600, start: 2026-03-02T14:30:00Z}
engine: {check_interval: 1h}
"""


def test_the_market_view_is_the_venues(botwarden_home: Path, tmp_path: Path) -> None:
    (tmp_path / "first_bar.py").write_text(OWN_STRATEGY)  # (enters at once)
    config = tmp_path / "bot.yaml"
    config.write_text(CONFIG)
    env = {**os.environ, "BOTWARDEN_HOME": str(botwarden_home)}
    run = [sys.executable, "-m", "botwarden", "run", str(config), "--ticks", "4"]
    done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (botwarden_home / "bots" / "charted" / "market.json").is_file()

    server = Server(botwarden_home)
    try:
        shown = server.client.get("/api/v1/bots/charted/market").json()
    finally:
        server.close()
    loaded = load_config(config)
    venue = open_paper_venue(loaded.venue, loaded.bot_id, loaded.base_dir)

    async def the_venues() -> tuple:
        await venue.connect()
        try:
            books = {}
            for m in shown["symbols"]:
                times = [datetime.fromisoformat(t) for t in m["bars"]["time"]]
                end = times[-1] + timedelta(hours=1)
                books[m["symbol"]] = await venue.history(m["symbol"], "1h", times[0], end)
            fills = [fill for _, fill in venue.book.fills()]
            return books, await venue.open_orders(), await venue.balance(), fills
        finally:
            await venue.close()

    bars, resting, balance, fills = asyncio.run(the_venues())
    assert [m["symbol"] for m in shown["symbols"]] == ["SPY", "QQQ"]
    for m in shown["symbols"]:
        symbol, position = m["symbol"], m["position"]
        venue_bars = bars[symbol]
        assert len(m["bars"]["time"]) >= 100, "a chart's worth, not the strategy's one bar"
        assert m["bars"]["time"] == [b.time.isoformat() for b in venue_bars]
        for column in ("open", "high", "low", "close"):
            assert [Decimal(v) for v in m["bars"][column]] == [
                getattr(b, column) for b in venue_bars
            ]
        assert m["price_places"] == 2, "the paper exchange's tick is a cent"

        stop = next(o for o in resting if o.symbol == symbol and o.stop_price is not None)
        assert Decimal(position["stop_price"]) == stop.stop_price, "the stop resting on the venue"
        target = next(
            o for o in resting if o.symbol == symbol and o.stop_price is None and o.limit_price
        )
        assert Decimal(position["take_profit"]) == target.limit_price
        assert position["stop_live"] is True
        entry = next(f for f in fills if f.symbol == symbol)
        made = (Decimal(m["price"]) - entry.price) * entry.qty - entry.fee
        assert Decimal(position["unrealized_pnl"]) == made
    assert shown["balance"]["cash"] == str(balance.cash), "nothing filled since the last pass"
    total = sum(Decimal(m["position"]["unrealized_pnl"]) for m in shown["symbols"])
    assert Decimal(shown["unrealized_pnl"]) == total
    assert shown["speed"] == 3600 and shown["timeframe"] == "1h"
