"""Helpers for testing a strategy with pytest: bars, a position, and the strategy
loaded as a bot's config names it (docs/strategies.md, "Testing it").

    from botwarden.testing import bars, load, position, replay

    strategy = load("strategies/rsi.py:Rsi", length=5)      # as `strategy: {path: ...}`
    history = bars([100, 101, 100, 99, 97, 98, 100, 102])   # hourly, from START
    strategy.decide("SPY", history, None)                    # flat: a Signal or None
    strategy.decide("SPY", history, position("SPY"))         # holding 1 SPY at 100
    replay(strategy, history)                                # every signal, bar by bar
    daily = bars([100, 104, 103], timeframe="1d")            # another timeframe:
    strategy.decide("SPY", bars([101, 102], others=[daily]), None)  # bars.of("1d")

`load` goes through the engine's own loader: the checks a bot applies when it starts
(params, `bars_needed`) and on every answer (a Signal for the symbol asked about, or
None) apply here too, with the same one-line errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from botwarden.domain.models import Bar, Position, Side
from botwarden.domain.timeframes import TIMEFRAMES
from botwarden.strategies.bars import Bars
from botwarden.strategies.base import Action, Signal
from botwarden.strategies.loading import LoadedStrategy, StrategyLoadError, load_strategy
from botwarden.strategies.settings import StrategySettings, split_path

__all__ = ["START", "bars", "load", "position", "replay"]

START = datetime(2026, 3, 2, tzinfo=UTC)
"""When the first bar of `bars` opens, unless told otherwise (a Monday, 00:00 UTC)."""

Number = int | float | Decimal | str


def bars(
    prices: Iterable[Number | tuple[Number, Number, Number, Number]],
    *,
    start: datetime = START,
    timeframe: str = "1h",
    volume: Number = 0,
    others: Iterable[Bars] = (),
) -> Bars:
    """Completed bars, oldest first, one `timeframe` apart from `start` (a `Bars`: a
    list, `.frame()`, and `.of(timeframe)` for each of `others`: bars of another
    timeframe, made by this function too).

    Each price is a close (the bar opens at the previous close, its high and low are
    the larger and smaller of the two) or an `(open, high, low, close)` tuple."""
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"timeframe {timeframe!r}: use one of {', '.join(TIMEFRAMES)}")
    if start.tzinfo is None:
        raise ValueError("start must carry a timezone: datetime(2026, 3, 2, tzinfo=UTC)")
    width = TIMEFRAMES[timeframe]
    made: list[Bar] = []
    for n, price in enumerate(prices):
        if isinstance(price, tuple):
            open_, high, low, close = (_decimal(p) for p in price)
            if not (high >= max(open_, close) and low <= min(open_, close)):
                raise ValueError(f"bar {n}: {price} is not (open, high, low, close)")
        else:
            close = _decimal(price)
            open_ = made[-1].close if made else close
            high, low = max(open_, close), min(open_, close)
        made.append(
            Bar(
                time=start + n * width, open=open_, high=high, low=low, close=close,
                volume=_decimal(volume),
            )
        )  # fmt: skip
    return Bars(made, timeframe, {other.timeframe: list(other) for other in others})


def position(
    symbol: str = "SPY",
    side: str = "long",
    size: Number = 1,
    entry_price: Number = 100,
    entry_time: datetime = START,
    *,
    stop_price: Number | None = None,
    take_profit: Number | None = None,
    custom: Mapping[str, Any] | None = None,
) -> Position:
    """What a bot holds in `symbol`, as `decide` is given it: with its stop and its
    take-profit where they rest, and the custom state its signals gave it."""
    return Position(
        id=f"test-{symbol}", bot_id="test", symbol=symbol, side=Side(side),
        size=_decimal(size), entry_price=_decimal(entry_price), entry_time=entry_time,
        stop_price=None if stop_price is None else _decimal(stop_price),
        take_profit=None if take_profit is None else _decimal(take_profit),
        custom=dict(custom or {}),
    )  # fmt: skip


def load(strategy: str | Path, /, **params: Any) -> LoadedStrategy:
    """The strategy a config would name, built with `params`, exactly as a bot loads it.

    A file (a `Path`, or text ending `.py`, with `:Class` when it holds several;
    relative to the current directory) as `strategy: {path: ...}`; anything else as
    `strategy: {name: ...}`: one of botwarden's, a package's entry point, or
    `package.module:Class`. `StrategyLoadError` (the line `botwarden run` would print)
    when it cannot be found or built. What it returns calls your strategy as the
    engine does: `decide`, `bars_needed`, `name`; your own object is `.strategy`."""
    text = str(strategy)
    is_file = isinstance(strategy, Path) or split_path(text)[0].endswith(".py")
    try:
        settings = StrategySettings.model_validate(
            {"path" if is_file else "name": text, "params": params}
        )
    except ValidationError as error:
        problem = error.errors()[0]["msg"].removeprefix("Value error, ")
        raise StrategyLoadError(f"strategy: {problem}") from None
    return load_strategy(settings, Path.cwd())


def replay(strategy: LoadedStrategy, history: Sequence[Bar], symbol: str = "SPY") -> list[Signal]:
    """Every signal `strategy` gives while `history` unfolds, bar by bar, as the engine
    asks: once each bar has closed (from the first with `bars_needed` bars before it),
    `decide(symbol, the last bars_needed bars, what is held)`. An entry while flat
    opens a position at that bar's close (with the signal's custom state), an exit of
    all of it closes it, an update merges its state. What a real bot adds (sizes, risk
    guards, cooldowns, stops, fills at other prices) is not simulated: a backtest on
    the engine itself is what tells that. Bars of the strategy's other timeframes come
    from `history`'s own (`bars(..., others=[...])`): at each step, those closed by
    then, as many as the strategy names."""
    signals: list[Signal] = []
    held: Position | None = None
    needed = strategy.bars_needed
    timeframe = getattr(history, "timeframe", "1h")
    others = strategy.timeframes
    missing = [tf for tf in others if tf != timeframe and not _has(history, tf)]
    if missing:
        raise ValueError(
            f"the strategy asks for bars of {', '.join(missing)}: give them with"
            f" bars(..., others=[bars([...], timeframe={missing[0]!r})])"
        )
    for n in range(needed, len(history) + 1):
        now = history[n].time if n < len(history) else _end_of(history)
        closed = {
            tf: [b for b in history.of(tf) if b.time + TIMEFRAMES[tf] <= now][-count:]
            for tf, count in others.items()
            if tf != timeframe
        }
        seen = Bars(history[n - needed : n], timeframe, closed)
        signal = strategy.decide(symbol, seen, held)
        if signal is None:
            continue
        signals.append(signal)
        whole = signal.fraction is None and signal.qty is None
        if signal.action is Action.EXIT and whole:
            held = None
        elif held is None and signal.action in (Action.ENTER_LONG, Action.ENTER_SHORT):
            side = "short" if signal.action is Action.ENTER_SHORT else "long"
            held = position(symbol, side, entry_price=seen[-1].close, entry_time=now)
        if held is not None and signal.state:
            held = held.evolve(custom={**held.custom, **signal.state})
    return signals


def _has(history: Sequence[Bar], timeframe: str) -> bool:
    try:
        history.of(timeframe)  # type: ignore[attr-defined]
    except (AttributeError, KeyError):
        return False
    return True


def _end_of(history: Sequence[Bar]) -> datetime:
    """When the last bar closed: one bar's width after it opened."""
    width = history[-1].time - history[-2].time if len(history) > 1 else timedelta(0)
    return history[-1].time + width


def _decimal(value: Number) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))
