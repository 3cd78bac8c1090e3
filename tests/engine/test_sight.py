"""What a watched bot hands its sight (the dashboard's charts), and what watching costs
its venue: a chart's worth of bars once, then only what the strategy asks for; a chart
as long as the venue's bars, with no bar missing; a sight that fails costs no pass."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from botwarden.engine.sight import CHART_BARS, Seen
from tests.engine.harness import Exchange


class Watching:
    def __init__(self) -> None:
        self.seen: list[Seen] = []

    def saw(self, seen: Seen) -> None:
        self.seen.append(seen)


class Broken:
    def saw(self, seen: Seen) -> None:
        raise RuntimeError("a bug of the sight's own")


async def test_a_watched_bot_asks_for_a_chart_once_then_for_what_its_strategy_needs(
    tmp_path: Path,
) -> None:
    exchange = Exchange(tmp_path)
    runner = await exchange.runner()
    asked: list[int] = []
    venue_bars = runner.venue.bars

    async def counted(symbol: str, timeframe: str, limit: int) -> object:
        asked.append(limit)
        return await venue_bars(symbol, timeframe, limit)

    runner.venue.bars = counted  # type: ignore[method-assign]
    sight = runner.sight = Watching()
    await exchange.hours(runner, 5)
    needed = runner.strategy.bars_needed
    assert asked == [CHART_BARS] + [needed] * 4, "a chart's worth once, then the strategy's"
    chart = sight.seen[-1].bars["SPY"]
    expected = await venue_bars("SPY", "1h", CHART_BARS)
    assert chart == list(expected), "the venue's newest bars, none missing, none twice"
    assert sight.seen[-1].prices["SPY"] == (await runner.venue.last_prices(["SPY"]))["SPY"]
    assert sight.seen[-1].balance is not None and sight.seen[-1].markets["SPY"].price_tick

    # Passes further apart than the strategy's bars reach: the gap is filled at once.
    asked.clear()
    exchange.clock.now += timedelta(hours=needed + 5)
    await exchange.hours(runner, 1)
    assert asked == [CHART_BARS]
    assert sight.seen[-1].bars["SPY"] == list(await venue_bars("SPY", "1h", CHART_BARS))
    await exchange.hours(runner, 1)
    assert asked == [CHART_BARS, needed]
    await runner.state.close()


async def test_a_sight_that_fails_costs_the_bot_nothing(tmp_path: Path) -> None:
    exchange = Exchange(tmp_path)
    runner = await exchange.runner()
    runner.sight = Broken()
    await exchange.hours(runner, 30)  # (every promise checked each hour)
    assert runner.pass_error is None
    state = await runner.state.snapshot()
    assert state.bot.heartbeat_at == exchange.clock.now
    await runner.state.close()
