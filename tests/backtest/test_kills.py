"""Crashes cost a backtest nothing: the run killed with SIGKILL at random moments and
started again each time trades exactly as the run never killed, checked on both
paper books (the exchange's side) with every promise, for many seeds. (A kill
between writing a stop and take-profit and sending them may cost one more order, a
lone stop sent again then replaced by the pair: never a fill.) `BOTWARDEN_KILL_SEEDS` sets how
many (`make backtest-kills` runs 50)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path

import pytest

from botwarden.backtest.kills import run_killed
from botwarden.backtest.results import Results, read_results
from botwarden.backtest.run import STATE, Plan, run
from botwarden.backtest.session import differences
from botwarden.engine.checks import check_promises
from botwarden.engine.ids import ClientIds
from botwarden.state.manager import StateManager
from botwarden.state.sqlite import SqliteStore
from tests.conftest import whole

DATA = Path(__file__).parents[2] / "examples" / "data"
SEEDS = int(os.environ.get("BOTWARDEN_KILL_SEEDS", "6"))
KILLS = 4
CONFIG = """\
bot_id: killed
symbols: [AAPL, MSFT]
order: {qty: 10}
strategy: {name: golden_cross, params: {fast: 5, slow: 15}, timeframe: 1d}
stop: {kind: percent, distance: 3, trailing: true}
take_profit: {percent: 6}
backtest: {fee_rate: 0.0005, slippage: 0.0002}
"""
SPAN = ("2010-01-04", "2011-03-31")


def argv(config: Path) -> list[str]:
    return [str(config), str(DATA), *SPAN]


@pytest.fixture(scope="module")
def never_killed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Plan, Results]:
    root = tmp_path_factory.mktemp("never-killed")
    config = root / "bot.yaml"
    config.write_text(CONFIG)
    plan = Plan.read(config, DATA, *SPAN)
    folder = root / "run"
    folder.mkdir()
    asyncio.run(run(plan, folder, plan.config.load_strategy()))
    return config, plan, asyncio.run(read_results(plan, folder))


def filled(results: Results) -> Counter:
    """The orders the exchange filled, all but ids and times."""
    return Counter(
        (o.symbol, o.side, o.type, o.qty, o.limit_price, o.stop_price, o.avg_price)
        for o in results.orders
        if o.filled_qty
    )


async def promises(plan: Plan, folder: Path) -> list[str]:
    """I1 to I6, checked against the paper book the killed run traded on."""
    state = StateManager(plan.config.bot_id, SqliteStore(folder / STATE, readonly=True))
    await state.open()
    try:
        held = await whole(state)
    finally:
        await state.close()
    book = plan.book(folder, readonly=True)
    try:
        assert held.bot.instance is not None
        ids = ClientIds(plan.config.bot_id, held.bot.instance.epoch)
        return [str(v) for v in check_promises(held, book, ids)]
    finally:
        book.close()


@pytest.mark.parametrize("seed", range(SEEDS))
def test_a_backtest_killed_at_random_moments_trades_as_one_never_killed(
    tmp_path: Path, never_killed: tuple[Path, Plan, Results], seed: int
) -> None:
    config, plan, clean = never_killed
    record = run_killed(plan, argv(config), tmp_path, KILLS, seed)
    assert len(record.done) == KILLS and record.starts == KILLS + 1
    killed = asyncio.run(read_results(plan, tmp_path))
    assert differences(clean, killed) == []
    assert len(clean.trades) >= 15
    assert [f.model_dump(exclude={"trade_id", "client_order_id", "venue_order_id"})
            for f in killed.fills] == [
        f.model_dump(exclude={"trade_id", "client_order_id", "venue_order_id"})
        for f in clean.fills
    ]  # fmt: skip
    assert filled(killed) == filled(clean)
    assert killed.summary == clean.summary
    assert asyncio.run(promises(plan, tmp_path)) == []
