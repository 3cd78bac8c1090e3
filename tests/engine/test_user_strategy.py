"""A user's own strategy file under the engine: it trades like botwarden's own, and when
it raises, the bot says so (an event, the error status, the line in the user's file),
takes no entries, and every position keeps its stop on the venue; once it decides
again, the bot runs again. No crash, no restart loop."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from datetime import timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest

from botwarden.config import BotConfig
from botwarden.domain.models import BotStatus
from botwarden.domain.orders import OrderType
from botwarden.strategies.base import Signal
from botwarden.venues.paper.venue import PaperVenue
from tests.conftest import whole
from tests.engine.harness import CONFIG, Exchange, started

STRATEGY = '''
from pathlib import Path

import pytest

from botwarden.strategies.base import Action, Signal

FAIL = Path(__file__).with_name("fail")


class Breakable:
    """Enters whenever flat; raises while a file named `fail` lies beside it."""

    name = "breakable"
    bars_needed = 2

    def decide(self, symbol, bars, position):
        if FAIL.exists() and symbol in FAIL.read_text().split():
            raise RuntimeError(f"no indicator for {symbol}")
        if position is None:
            return Signal(self.name, symbol, Action.ENTER_LONG, bars[-1].time, "flat")
        return None
'''


def user_strategy(tmp_path: Path) -> Path:
    file = tmp_path / "strategies" / "breakable.py"
    file.parent.mkdir()
    file.write_text(textwrap.dedent(STRATEGY))
    return file


async def test_a_failing_strategy_is_an_error_with_every_position_still_protected(
    exchange: Exchange, tmp_path: Path
) -> None:
    file = user_strategy(tmp_path)
    runner = await exchange.runner(strategy={"path": str(file)})
    await exchange.hours(runner, 2)
    held = list((await whole(runner.state)).positions.values())
    assert [p.symbol for p in held] == ["SPY"], "the user's strategy entered"

    file.with_name("fail").write_text("SPY")
    await exchange.hours(runner, 3)  # every promise checked after each hour
    state = await whole(runner.state)
    line = next(
        n for n, t in enumerate(file.read_text().splitlines(), 1) if "raise RuntimeError" in t
    )
    assert state.bot.status is BotStatus.ERROR
    assert state.bot.last_error == (
        f"strategy breakable: decide(SPY) failed at breakable.py:{line} in decide:"
        " RuntimeError: no indicator for SPY"
    )
    alerts = [e for e in state.events.values() if "decide(SPY) failed" in e.message]
    assert len(alerts) == 1, "told once, not every pass"
    assert alerts[0].kind == "alert" and "every position stays protected" in alerts[0].message
    # From the exchange's side: the position's stop rests, for all of it.
    stops = [
        o
        for o in await runner.venue.open_orders()
        if o.symbol == "SPY" and o.type is OrderType.STOP
    ]
    assert sum((o.qty for o in stops), Decimal(0)) == held[0].size

    file.with_name("fail").unlink()
    await exchange.hours(runner, 1)
    state = await whole(runner.state)
    assert state.bot.status is BotStatus.RUNNING and state.bot.last_error is None
    assert any(e.message == "strategy breakable decides again" for e in state.events.values())
    await runner.state.close()


async def test_no_entry_is_taken_while_the_strategy_fails_for_any_symbol(
    exchange: Exchange, tmp_path: Path
) -> None:
    file = user_strategy(tmp_path)
    file.with_name("fail").write_text("SPY")
    runner = await exchange.runner(strategy={"path": str(file)}, symbols=["SPY", "BTC/USDT"])
    await exchange.hours(runner, 3)
    state = await whole(runner.state)
    assert not state.positions and not state.intents, "BTC/USDT's entry signal was not taken"
    skipped = [e.message for e in state.events.values() if e.kind == "signal"]
    assert skipped and all("the strategy is failing" in m for m in skipped)
    assert not exchange.book.all_orders(), "nothing reached the exchange"
    assert state.bot.status is BotStatus.ERROR
    await runner.state.close()


async def test_a_new_instance_tells_again_of_a_strategy_still_failing(
    exchange: Exchange, tmp_path: Path
) -> None:
    file = user_strategy(tmp_path)
    file.with_name("fail").write_text("SPY")
    first = await exchange.runner(strategy={"path": str(file)})
    await exchange.hours(first, 2)
    await first.state.close()  # killed: no stop recorded
    second = await exchange.runner(strategy={"path": str(file)})
    await exchange.hours(second, 2)
    state = await whole(second.state)
    told = [e for e in state.events.values() if "decide(SPY) failed" in e.message]
    assert len(told) == 2 and state.bot.status is BotStatus.ERROR
    await second.state.close()


class Recorder:
    """Remembers the bars it was shown."""

    name = "recorder"
    bars_needed = 3

    def __init__(self) -> None:
        self.seen: list[list] = []

    def decide(self, symbol, bars, position):
        self.seen.append(list(bars))


@pytest.mark.parametrize(
    ("timeframe", "width"), [("4h", timedelta(hours=4)), ("1w", timedelta(weeks=1))]
)
async def test_a_strategy_sees_completed_bars_of_its_timeframe(
    exchange: Exchange, timeframe: str, width: timedelta
) -> None:
    recorder = Recorder()
    runner = await exchange.runner(recorder, strategy={"timeframe": timeframe})
    await exchange.hours(runner, 1)
    bars = recorder.seen[-1]
    assert len(bars) == 3
    assert all(b.time + width == later.time for b, later in pairwise(bars))
    assert bars[-1].time + width <= exchange.clock.now, "completed bars only"
    assert exchange.clock.now < bars[-1].time + 2 * width, "the newest completed one"
    if timeframe == "1w":
        assert {b.time.weekday() for b in bars} == {0} and {b.time.hour for b in bars} == {0}
    await runner.state.close()


class Listener:
    """Enters when flat and exits the next pass; remembers what its hooks were told,
    and the daily bars beside its hourly ones."""

    name = "listener"
    bars_needed = 2
    timeframes = {"1d": 5}  # noqa: RUF012 (a strategy's declaration)

    def __init__(self) -> None:
        self.told: list[tuple] = []
        self.daily: list = []

    def on_start(self, positions):
        self.told.append(("start", sorted(positions)))

    def on_fill(self, fill, position):
        self.told.append(("fill", fill.side.value, position.size if position else None))

    def on_close(self, trade):
        self.told.append(("close", trade.symbol, trade.qty))

    def decide(self, symbol, bars, position):
        self.daily = bars.of("1d")
        if position is None:
            return Signal.long(symbol, bars[-1])
        return Signal.exit(symbol, bars[-1])


async def test_hooks_are_told_of_the_start_every_fill_and_every_closed_trade(
    exchange: Exchange,
) -> None:
    listener = Listener()
    runner = await exchange.runner(listener, order={"qty": 2})
    await exchange.hours(runner, 2)
    assert listener.told == [
        ("start", []),
        ("fill", "buy", Decimal(2)),
        ("fill", "sell", None),
        ("close", "SPY", Decimal(2)),
    ]
    assert len(listener.daily) == 5 and listener.daily.timeframe == "1d"
    assert all(b.time.hour == 0 for b in listener.daily)
    await runner.state.close()
    again = Listener()
    second = await exchange.runner(again, order={"qty": 2})
    await exchange.hours(second, 1)
    assert again.told[0] == ("start", []), "a new instance starts told of what it holds"
    await second.state.close()


async def test_a_hook_that_raises_is_a_strategy_failure_not_a_crash(exchange: Exchange) -> None:
    class Broken(Listener):
        def on_fill(self, fill, position):
            raise ValueError("bookkeeping bug")

    runner = await exchange.runner(Broken(), order={"qty": 2})
    await exchange.hours(runner, 2)  # every promise holds after each pass
    state = await whole(runner.state)
    told = [e.message for e in state.events.values() if "on_fill() failed" in e.message]
    assert told and "ValueError: bookkeeping bug" in told[0]
    await runner.state.close()


class Stuck:
    """Enters when flat; hangs in `decide` (a request without a timeout) while told to."""

    name = "stuck"
    bars_needed = 1

    def __init__(self) -> None:
        self.hang = threading.Event()
        self.free = threading.Event()

    def decide(self, symbol, bars, position):
        if self.hang.is_set():
            self.free.wait(60)
        return Signal.long(symbol, bars[-1], "flat") if position is None else None


async def test_a_strategy_that_hangs_stops_nothing_but_its_own_entries(
    exchange: Exchange,
) -> None:
    """A `decide` that never returned used to hang the whole bot: no fills read, no
    stop moved, no heartbeat. Past `strategy.time_limit` it is a failure like a raise,
    and it is not called again until the stuck call returns."""
    stuck = Stuck()
    limited = {"name": "golden_cross", "timeframe": "1h", "time_limit": "0.2s"}
    runner = await exchange.runner(stuck, strategy=limited, order={"qty": 2})
    await exchange.hours(runner, 1)
    [position] = (await whole(runner.state)).positions.values()
    stuck.hang.set()
    beat = (await whole(runner.state)).bot.heartbeat_at
    await exchange.hours(runner, 2)  # every promise holds after each pass
    state = await whole(runner.state)
    assert state.bot.status is BotStatus.ERROR and state.bot.heartbeat_at > beat
    told = [e.message for e in state.events.values() if e.kind == "alert"]
    assert any("decide failed: took more than 0.2s (strategy.time_limit)" in t for t in told)
    assert any("has not returned yet" in t for t in told), "never called twice at once"
    assert position.stop_client_order_id in {o.client_order_id for o in exchange.book.open_orders()}
    stuck.hang.clear()
    stuck.free.set()  # the request returns at last
    await asyncio.sleep(0.1)
    await exchange.hours(runner, 1)
    assert (await whole(runner.state)).bot.status is BotStatus.RUNNING, "decides again"
    await runner.state.close()


def test_bars_are_a_list_and_a_data_frame() -> None:
    from botwarden.strategies.bars import Bars
    from tests.support.strategies import bars

    shown = Bars(bars([1.0, 2.0, 3.0]), "1h")
    assert isinstance(shown, list) and shown[-1].close == Decimal("3.0")
    frame = shown.frame()
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame["close"].tolist() == [1.0, 2.0, 3.0]
    assert str(frame.index.tz) == "UTC" and frame.index[0] == shown[0].time
    with pytest.raises(
        KeyError, match=r"bars of '1d' were not asked for.*timeframes = \{'1d': 50\}"
    ):
        shown.of("1d")


class ShortHistory(PaperVenue):
    """A venue that serves only its last three bars (a market just listed)."""

    async def bars(self, symbol: str, timeframe: str, limit: int):
        return (await super().bars(symbol, timeframe, limit))[-3:]


class Counting:
    name = "counting"
    bars_needed = 5

    def __init__(self) -> None:
        self.asked: list[int] = []

    def decide(self, symbol, bars, position):
        self.asked.append(len(bars))
        if position is None:
            return Signal.long(symbol, bars[-1], "in")
        return None


async def test_short_history_waits_for_an_entry_but_never_for_an_exit(tmp_path: Path) -> None:
    """With fewer bars than it needs the strategy is not asked while nothing is held; a
    position held, it is asked with the bars there are: its exit never waits."""
    exchange = Exchange(tmp_path)
    config = BotConfig.model_validate(CONFIG)
    flat = Counting()
    short = ShortHistory(exchange.book, exchange.clock)
    runner = await started(config, exchange.state_path, short, exchange.clock, flat)
    await exchange.hours(runner, 3)
    assert flat.asked == [] and exchange.book.positions() == []
    await runner.state.close()
    holding = Counting()
    runner = await started(config, exchange.state_path, PaperVenue(exchange.book, exchange.clock),
                           exchange.clock, holding)  # fmt: skip
    await exchange.hours(runner, 1)
    assert [p.qty for p in exchange.book.positions()] == [Decimal(10)]
    await runner.state.close()
    held = Counting()
    runner = await started(config, exchange.state_path, short, exchange.clock, held)
    await exchange.hours(runner, 2)
    assert held.asked == [3, 3], "asked with the three bars there are"
    await runner.state.close()
    exchange.book.close()
