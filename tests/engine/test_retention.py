"""A bot that keeps its history for a while only (`state.history.keep`) trades, dies and
recovers exactly as one that keeps it all: the venue sees the same orders, the
all-time PnL is the same, and the history holds what the setting says."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from botwarden.engine.checks import check_promises
from botwarden.engine.runner import Runner
from botwarden.state.base import Change, KeyRange, Put
from botwarden.state.history import WholeState
from tests.conftest import whole
from tests.engine.harness import Exchange

BUSY = {"strategy": {"name": "coin_flip", "params": {"seed": 11}, "timeframe": "1h"}}
KEEP = {"state": {"history": {"keep": "2d"}}}


def venue_side(exchange: Exchange) -> list[tuple[str, str, str, str]]:
    """What the exchange did, whatever the bot keeps: its orders, as they ended."""
    return sorted(
        (o.client_order_id, o.state.value, str(o.filled_qty), o.updated_at.isoformat())
        for o in exchange.book.all_orders()
    )


async def lives(exchange: Exchange, **config: object) -> Runner:
    """Four days, a kill (the instance left as it was, its store not closed), four days
    more, a clean stop and a start."""
    first = await exchange.runner(**BUSY, **config)
    await exchange.hours(first, 24 * 4)
    killed = await exchange.runner(**BUSY, **config)
    await exchange.hours(killed, 24 * 4)
    await killed.stopped()
    last = await exchange.runner(**BUSY, **config)
    await exchange.hours(last, 3)
    return last


async def test_a_bot_keeping_two_days_recovers_as_one_keeping_everything(tmp_path: Path) -> None:
    keeping_exchange, forever_exchange = Exchange(tmp_path / "k"), Exchange(tmp_path / "f")
    keeping = await lives(keeping_exchange, **KEEP)
    forever = await lives(forever_exchange)

    # From the venue's side, the same bot: the same orders, ending the same way.
    assert venue_side(keeping_exchange) == venue_side(forever_exchange)
    assert len(venue_side(forever_exchange)) > 50, "eight days of coin flips"
    kept, every = await whole(keeping.state), await whole(forever.state)
    assert kept.positions == every.positions
    assert kept.pnl is not None and every.pnl is not None
    assert kept.pnl.total == every.pnl.total, "the all-time figures outlive the trades"
    said, said_too = _alerts(kept), _alerts(every)
    assert said <= said_too and not any("STATE LOST" in line for line in said)

    # The history holds what ended within the last two days (and what recovery needs:
    # the orders and fills of the position held, if one is).
    now = keeping_exchange.clock.now
    cutoff = now - timedelta(days=2 + 1)  # (a round runs once a day)
    held = {p.id.removeprefix("pos-") for p in kept.positions.values()}
    old = [f for f in kept.fills.values() if f.time < cutoff]
    assert all(f.client_order_id in held for f in old), old
    assert len(kept.fills) < len(every.fills) / 2
    assert min(e.time for e in kept.events.values()) >= cutoff
    trades = await keeping.state.history.trades()
    assert trades and min(t.exit_time for t in trades) >= cutoff
    assert len(trades) < kept.pnl.total.trades
    for runner in (keeping, forever):
        await runner.state.close()


def _alerts(state: WholeState) -> set[str]:
    return {e.message for e in state.events.values() if e.kind == "alert"}


class Quiet:
    """Decides nothing."""

    name = "quiet"
    bars_needed = 1

    def decide(self, symbol: str, bars: object, position: object) -> None:
        return None


async def test_a_bot_whose_whole_history_is_gone_is_no_new_bot(tmp_path: Path) -> None:
    """Every order and fill ended long ago and retention removed them: the next start
    is that of the same bot, not of a lost state to rebuild from the venue."""
    exchange = Exchange(tmp_path)
    busy = await exchange.runner(**BUSY, **KEEP)
    await exchange.hours(busy, 24 * 2)
    await busy.flatten()
    await busy.stopped()
    quiet = await exchange.runner(Quiet(), **KEEP)
    await exchange.hours(quiet, 24 * 4)
    gone = await whole(quiet.state)
    assert not gone.positions and not gone.intents and not gone.fills, "all of it removed"
    await quiet.stopped()

    orders_before = venue_side(exchange)
    again = await exchange.runner(Quiet(), **KEEP)
    await exchange.hours(again, 2)
    assert venue_side(exchange) == orders_before, "nothing adopted, replayed or sent"
    said = _alerts(await whole(again.state))
    assert not any("STATE LOST" in line for line in said), said
    assert again.ctx.ids.epoch == 3, "the next instance, not an epoch made from the time"
    await again.state.close()


async def test_a_record_retention_cannot_read_stops_retention_not_the_bot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A hand-edited old event: the bot says once that retention stopped there and goes
    on trading (and protecting) as before."""
    exchange = Exchange(tmp_path)
    runner = await exchange.runner(**BUSY, **KEEP)
    await exchange.hours(runner, 12)
    store, bot = runner.state.store, runner.ctx.bot_id
    [(key, text)] = await store.scan(bot, "events", KeyRange(limit=1))
    await store.apply(bot, Change([Put("events", key, {**json.loads(text), "time": "noon"})]))
    orders = len(venue_side(exchange))
    with caplog.at_level(logging.WARNING):
        for _ in range(24 * 4):  # (by hand: the checks would read the damaged event too)
            exchange.clock.now += timedelta(hours=1)
            await runner.tick()
            assert runner.pass_error is None
    said = [r.getMessage() for r in caplog.records if "retention stopped" in r.getMessage()]
    assert len(said) == 1 and f"events/{key} is invalid at time" in said[0], said
    assert len(venue_side(exchange)) > orders, "it trades on"
    live = WholeState.live_only(await runner.state.snapshot())
    assert check_promises(live, exchange.book, runner.ctx.ids, {"I2"}) == [], "protected"
    await runner.state.close()
