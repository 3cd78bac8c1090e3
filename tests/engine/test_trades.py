"""The trades history: every closed trade kept as its own record, in the write of the
fill that closed it, equal to what the bot's fills imply; added up per trading day
and for all time without reading the history."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from botwarden.domain.models import PnlSum
from botwarden.domain.positions import Trade, apply_fill
from botwarden.state.base import Change, Delete
from tests.conftest import whole
from tests.engine.harness import Exchange

BUSY = {"strategy": {"name": "coin_flip", "params": {"seed": 5}, "timeframe": "1h"}}


def implied(fills: list, bot_id: str) -> list[Trade]:
    """The trades the fills imply, replayed from nothing, market by market."""
    held: dict[str, object] = {}
    trades = []
    for fill in sorted(fills, key=lambda f: (f.time, f.trade_id)):
        outcome = apply_fill(
            held.get(fill.symbol),
            fill,
            bot_id=bot_id,
            new_position_id=f"pos-{fill.client_order_id}",
        )
        held[fill.symbol] = outcome.position
        if outcome.trade is not None:
            trades.append(outcome.trade)
    return trades


async def test_the_trades_history_is_what_the_fills_imply(tmp_path: Path) -> None:
    exchange = Exchange(tmp_path, fee_rate=Decimal("0.001"))  # fees to share out
    runner = await exchange.runner(**BUSY)
    await exchange.hours(runner, 24 * 5)
    await runner.stopped()
    again = await exchange.runner(**BUSY)  # a restart in between
    await exchange.hours(again, 24 * 5)
    history = again.state.history
    recorded = await history.trades()
    assert len(recorded) >= 10, "ten days of coin flips"
    assert recorded == implied(await again.state.get_fills(), again.ctx.bot_id)
    assert [t.exit_time for t in recorded] == sorted(t.exit_time for t in recorded)
    assert any(t.fees > 0 for t in recorded)

    book = (await again.state.snapshot()).pnl
    assert book is not None
    assert book.total.trades == len(recorded)
    assert book.total.pnl == sum((t.pnl for t in recorded), Decimal(0))
    assert book.total.wins == sum(t.pnl > 0 for t in recorded)
    limits = again.ctx.limits
    by_day: dict = {}
    for t in recorded:
        day = limits.trading_day(t.exit_time)
        by_day[day] = by_day.get(day, PnlSum()).plus(t.pnl, t.fees)
    assert await history.days() == by_day
    assert book.day == max(by_day) and book.today == by_day[book.day]
    # A time range is a key range: the last day's trades alone.
    last = max(t.exit_time for t in recorded)
    recent = await history.trades(since=last.replace(hour=0, minute=0, second=0, microsecond=0))
    assert recent and all(t.exit_time.date() == last.date() for t in recent)
    state = await whole(again.state)
    told = [e for e in state.events.values() if e.kind == "trade"]
    assert len(told) == len(recorded), "each told once in the log too"
    await again.state.close()


async def test_a_state_without_a_trades_history_books_its_logged_trades_once(
    tmp_path: Path,
) -> None:
    """A state of layout 1 kept its trades only as `trade` events: its next start books
    them, once."""
    exchange = Exchange(tmp_path)
    runner = await exchange.runner(**BUSY)
    await exchange.hours(runner, 24 * 3)
    recorded = await runner.state.history.trades()
    assert recorded
    # As layout 1 left it: the trades history and its sums gone, the events kept.
    store = runner.state.store

    ops = [Delete("trades", key) for key, _ in await store.scan(runner.ctx.bot_id, "trades")]
    ops += [
        Delete("trade_days", key) for key, _ in await store.scan(runner.ctx.bot_id, "trade_days")
    ]
    ops.append(Delete("meta", "pnl"))
    await store.apply(runner.ctx.bot_id, Change(ops))
    await runner.state.reload()
    await runner.stopped()

    again = await exchange.runner(**BUSY)
    booked = await again.state.history.trades()
    assert [(t.position_id, t.pnl, t.exit_time) for t in booked] == [
        (t.position_id, t.pnl, t.exit_time) for t in recorded
    ]
    assert (await again.state.snapshot()).pnl.total.trades == len(recorded)
    assert await again.state.book_past_trades(again.ctx.limits.trading_day) == 0, "once"
    await again.state.close()
