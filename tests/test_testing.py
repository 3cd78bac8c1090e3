"""`botwarden.testing`, the helpers a user's strategy tests use: bars as a venue gives
them, a held position, the strategy loaded as a config names it (the engine's checks
included), and a replay that asks it as the engine does, bar by bar."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from botwarden import Action, Bar, Position, Signal, StrategyFailed, StrategyLoadError
from botwarden.testing import START, bars, load, position, replay

pytestmark = pytest.mark.usefixtures("forget_imports")

RECORDER = '''
from botwarden import Signal


class Recorder:
    """Enters when flat, exits when holding, and notes what it was shown."""

    name = "recorder"

    def __init__(self, needed: int = 3) -> None:
        self.bars_needed = needed
        self.seen = []

    def decide(self, symbol, bars, position):
        self.seen.append((len(bars), bars[0].time, position))
        if position is None:
            return Signal.long(symbol, bars[-1], "flat")
        return Signal.exit(symbol, bars[-1], "held")
'''


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_bars_from_closes_open_at_the_previous_close_one_timeframe_apart() -> None:
    made = bars([100, 102, 101.5], timeframe="15m")
    assert [b.time for b in made] == [START + timedelta(minutes=15 * n) for n in range(3)]
    assert [(b.open, b.high, b.low, b.close) for b in made] == [
        (Decimal(100), Decimal(100), Decimal(100), Decimal(100)),
        (Decimal(100), Decimal(102), Decimal(100), Decimal(102)),
        (Decimal(102), Decimal(102), Decimal("101.5"), Decimal("101.5")),
    ]
    assert all(isinstance(b, Bar) for b in made)


def test_bars_take_whole_candles_and_a_start_of_their_own() -> None:
    start = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
    (bar,) = bars([(10, 12, 9, 11)], start=start, timeframe="1d")
    assert (bar.time, bar.open, bar.high, bar.low, bar.close) == (start, 10, 12, 9, 11)
    assert bars([1, 2], timeframe="1w")[1].time == START + timedelta(weeks=1)


@pytest.mark.parametrize(
    ("prices", "options", "said"),
    [
        ([(10, 9, 8, 11)], {}, r"bar 0: \(10, 9, 8, 11\) is not \(open, high, low, close\)"),
        ([1], {"timeframe": "2h"}, r"timeframe '2h': use one of 1m, 5m, 15m, 1h, 4h, 1d, 1w"),
        ([1], {"start": datetime(2026, 1, 5)}, r"start must carry a timezone"),
    ],
)
def test_bars_that_no_venue_would_give_are_refused(prices: list, options: dict, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        bars(prices, **options)


def test_a_position_is_what_decide_is_given() -> None:
    held = position("BTC/USDT", side="short", size=0.5, entry_price=60000.5)
    assert isinstance(held, Position)
    assert (held.symbol, held.side, held.size, held.entry_price, held.entry_time) == (
        "BTC/USDT", "short", Decimal("0.5"), Decimal("60000.5"), START,
    )  # fmt: skip


def test_a_strategy_is_loaded_by_file_or_by_name_as_a_config_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write(tmp_path / "recorder.py", RECORDER)
    assert load(file, needed=4).bars_needed == 4
    assert load(f"{file}:Recorder").origin.where == str(file)
    monkeypatch.chdir(tmp_path)
    assert load("recorder.py").origin.kind == "file"  # relative: from the working directory
    assert load("recorder:Recorder").origin.kind == "module"
    builtin = load("golden_cross", fast=2, slow=3)
    assert (builtin.name, builtin.bars_needed, str(builtin.origin)) == (
        "golden_cross", 4, "builtin: botwarden",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "params", "said"),
    [
        ("recorder.py", {"needed": 3, "speed": 2}, r"strategy\.params: recorder\.py: .*'speed'"),
        ("nope.py", {}, r"strategy\.path: nope\.py: no such file"),
        ("death_cross", {}, r"unknown strategy 'death_cross'"),
        ("pkg.mod:", {}, r"strategy: name: 'pkg\.mod:' is not an importable class"),
        ("recorder.py", {"needed": 0}, r"bars_needed is 0; it must be a whole number"),
    ],
)
def test_what_a_bot_would_refuse_to_load_is_refused_in_the_same_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str, params: dict, said: str
) -> None:
    write(tmp_path / "recorder.py", RECORDER)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StrategyLoadError, match=said) as refused:
        load(spec, **params)
    assert "\n" not in str(refused.value)


def test_an_answer_the_engine_would_refuse_fails_the_test(tmp_path: Path) -> None:
    buys = RECORDER.replace('Signal.long(symbol, bars[-1], "flat")', '"buy"')
    file = write(tmp_path / "recorder.py", buys)
    with pytest.raises(StrategyFailed, match=r"returned str 'buy'; return a Signal or None"):
        load(file).decide("SPY", bars([1, 2, 3]), None)


def test_replay_asks_as_the_engine_does_bar_by_bar_holding_what_it_entered(
    tmp_path: Path,
) -> None:
    strategy = load(write(tmp_path / "recorder.py", RECORDER), needed=3)
    history = bars([10, 11, 12, 13, 14])
    signals = replay(strategy, history, symbol="QQQ")
    assert all(isinstance(s, Signal) and s.symbol == "QQQ" for s in signals)
    assert [(s.action, s.bar_time) for s in signals] == [
        (Action.ENTER_LONG, history[2].time),
        (Action.EXIT, history[3].time),
        (Action.ENTER_LONG, history[4].time),
    ]
    seen = strategy.strategy.seen
    assert [(count, first) for count, first, _ in seen] == [
        (3, history[0].time), (3, history[1].time), (3, history[2].time),
    ], "the last bars_needed bars, from the first time there are that many"  # fmt: skip
    held = seen[1][2]
    assert (held.side, held.entry_price, held.entry_time) == ("long", 12, history[3].time)
    assert seen[0][2] is None and seen[2][2] is None


def test_replay_holds_what_was_entered_until_an_exit() -> None:
    always = load("coin_flip", enter=1, exit=0)
    signals = replay(always, bars([1, 2, 3, 4]))
    assert [s.action for s in signals] == [Action.ENTER_LONG]


DAILY_TREND = '''
from botwarden import Signal


class DailyTrend:
    """Hourly entries only while the last closed day closed up."""

    name = "daily_trend"
    bars_needed = 1
    timeframes = {"1d": 2}

    def __init__(self) -> None:
        self.days_seen = []

    def decide(self, symbol, bars, position):
        days = bars.of("1d")
        self.days_seen.append([day.time for day in days])
        if position is None and len(days) >= 2 and days[-1].close > days[-2].close:
            return Signal.long(symbol, bars[-1], "the day closed up")
        return None
'''


def test_a_strategy_with_other_timeframes_is_tested_with_them(tmp_path: Path) -> None:
    """`bars(..., others=...)` gives decide its other timeframes; `replay` hands it,
    at each hour, only the days closed by then. Both used to end in a KeyError."""
    strategy = load(write(tmp_path / "trend.py", DAILY_TREND))
    daily = bars([100, 101, 103], timeframe="1d", start=START - timedelta(days=3))
    hourly = bars([103, 104, 105], start=START, others=[daily])
    assert strategy.decide("SPY", hourly, None).action is Action.ENTER_LONG
    assert strategy.decide("SPY", hourly, position(stop_price=95, custom={"n": 1})) is None

    later = bars([103] * 30, start=START - timedelta(days=1), others=[daily])
    signals = replay(strategy, later)
    seen = strategy.strategy.days_seen[2:]  # (the two direct calls above)
    assert seen[0] == [daily[0].time, daily[1].time], "day 3 not closed at the first hour"
    assert seen[-1] == [daily[1].time, daily[2].time], "and closed a day later"
    assert [s.bar_time for s in signals] == [later[0].time], "entered once, then held"
    with pytest.raises(ValueError, match="bars of 1d: give them with bars"):
        replay(strategy, bars([1, 2, 3]))


def test_a_position_carries_its_stop_take_profit_and_custom_state() -> None:
    held = position("QQQ", "short", 2, 300, stop_price=310, take_profit=280, custom={"k": 1})
    assert (held.stop_price, held.take_profit, held.custom) == (310, 280, {"k": 1})
