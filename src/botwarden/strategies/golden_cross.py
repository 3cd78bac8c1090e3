"""The golden cross, the classic tutorial strategy: buy when the fast simple moving
average crosses above the slow one, sell (exit) when it crosses back below.
Long only; SMA 40 / 100 by default, on whatever bars the bot is given."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from botwarden.domain.models import Bar, Position
from botwarden.strategies.base import Action, Signal, parse_params


class GoldenCrossParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fast: int = Field(default=40, ge=1)
    slow: int = Field(default=100, ge=2)

    @model_validator(mode="after")
    def _fast_is_faster(self) -> Self:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        return self


def sma(values: Sequence[Decimal], length: int) -> Decimal:
    return sum(values[-length:], Decimal(0)) / length


class GoldenCross:
    """Buys when the fast SMA crosses above the slow one, exits when it crosses below."""

    name = "golden_cross"

    def __init__(self, params: GoldenCrossParams | None = None) -> None:
        self.params = params or GoldenCrossParams()

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> GoldenCross:
        return cls(parse_params(GoldenCrossParams, params))

    @property
    def bars_needed(self) -> int:
        return self.params.slow + 1

    def decide(self, symbol: str, bars: Sequence[Bar], position: Position | None) -> Signal | None:
        if len(bars) < self.bars_needed:
            return None
        closes = [b.close for b in bars]
        fast, slow = self.params.fast, self.params.slow
        now_fast, now_slow = sma(closes, fast), sma(closes, slow)
        was_fast, was_slow = sma(closes[:-1], fast), sma(closes[:-1], slow)
        crossed_up = was_fast <= was_slow and now_fast > now_slow
        crossed_down = was_fast >= was_slow and now_fast < now_slow
        last = bars[-1].time
        if crossed_up and position is None:
            why = f"SMA{fast} {now_fast:.2f} crossed above SMA{slow} {now_slow:.2f}"
            return Signal(self.name, symbol, Action.ENTER_LONG, last, why)
        if crossed_down and position is not None:
            why = f"SMA{fast} {now_fast:.2f} crossed below SMA{slow} {now_slow:.2f}"
            return Signal(self.name, symbol, Action.EXIT, last, why)
        return None
