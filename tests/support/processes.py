"""Bots run as real processes on the paper exchange: a config, waiting, and the check
that every promise holds, from the exchange's own book."""

from __future__ import annotations

import time
from pathlib import Path

from botwarden.config import load_config
from botwarden.engine.checks import check_promises
from botwarden.engine.ids import ClientIds
from botwarden.state.history import WholeState
from botwarden.state.settings import resolve_path
from botwarden.state.sqlite import SqliteStore
from botwarden.venues.factory import open_paper_venue
from tests.conftest import whole_of

CONFIG = """\
bot_id: golden_spy
symbols: [SPY]
order: {qty: 10}
strategy: {name: golden_cross, params: {fast: 3, slow: 8}, timeframe: 1h}
venue: {type: paper, speed: 36000, start: 2026-03-02T14:30:00Z}
engine: {check_interval: 1h, unknown_order_grace: 15s}
"""


def wait_for(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


async def promises_hold(config_path: Path, epoch_at_least: int = 1) -> WholeState:
    """The bot's state, once every promise is checked against its paper exchange's book."""
    config = load_config(config_path)
    bot = config.bot_id
    store = SqliteStore(resolve_path(config.state.sqlite.path, bot, config.base_dir))
    await store.open()
    state = await whole_of(store, bot)
    await store.close()
    venue = open_paper_venue(config.venue, bot, config.base_dir)
    epoch = state.bot.instance.epoch
    assert epoch >= epoch_at_least
    violations = check_promises(state, venue.book, ClientIds(bot, epoch))
    venue.book.close()
    assert violations == [], "\n".join(map(str, violations))
    return state
