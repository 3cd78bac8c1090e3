"""Bars, a held position and strategies built as a bot's config would name them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from botwarden.domain.models import Bar, Position
from botwarden.strategies.base import Signal
from botwarden.strategies.loading import LoadedStrategy, load_strategy
from botwarden.strategies.settings import StrategySettings

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def bars(closes: list[float]) -> list[Bar]:
    """Hourly bars from T0 whose open, high, low and close are each close."""
    return [
        Bar(time=T0 + timedelta(hours=n), open=Decimal(str(c)), high=Decimal(str(c)),
            low=Decimal(str(c)), close=Decimal(str(c)), volume=Decimal(0))
        for n, c in enumerate(closes)
    ]  # fmt: skip


HELD = Position(
    id="p", bot_id="b", symbol="SPY", side="long", size=Decimal(1),
    entry_price=Decimal(100), entry_time=T0,
)  # fmt: skip


def build(name: str, params: dict[str, Any], base_dir: Path | None = None) -> LoadedStrategy:
    """The strategy `strategy: {name: NAME, params: PARAMS}` names."""
    return load_strategy(StrategySettings(name=name, params=params), base_dir or Path.cwd())


class OnceLong:
    """Enters long on its first pass, with what it is given; nothing after."""

    name = "once"
    bars_needed = 1

    def __init__(self, **entry: object) -> None:
        self.entry, self.done = entry, False

    def decide(self, symbol: str, bars: list[Bar], position: Position | None) -> Signal | None:
        if self.done or position is not None:
            return None
        self.done = True
        return Signal.long(symbol, bars[-1], "once", **self.entry)
