"""Coin flip: enters and exits at random, for exercising the runtime, not for money.

The torture simulator trades with it (every bar is a chance to enter or exit, so a
simulated day holds many orders). The coin is a hash of (seed, symbol, bar time): the
same bar always gives the same answer, so a bot restarted mid-bar decides the same
thing again, as a real strategy would, and its signal is de-duplicated like any other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from botwarden.domain.models import Bar, Position, Side, Stop, TakeProfit
from botwarden.domain.sizing import Size
from botwarden.strategies.base import Action, Signal, parse_params

T = TypeVar("T")


class CoinFlipParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    enter: float = Field(default=0.3, ge=0, le=1)
    """The chance, each bar, of entering when flat."""
    exit: float = Field(default=0.3, ge=0, le=1)
    """The chance, each bar, of exiting when holding."""
    short: bool = False
    """Half the entries go short (on a venue that allows it)."""
    orders: float = Field(default=0, ge=0, le=1)
    """The chance that a signal uses the richer order model: an entry sized its own way
    (units, notional, a share of equity, the risk at the stop), as a limit that
    expires, with its own stop; when holding, an add, a part out, or an update of the
    stop and the custom state instead of a plain exit. 0: plain entries and exits."""


class CoinFlip:
    """Enters and exits at random (seeded), to exercise the runtime: not for money."""

    name = "coin_flip"
    bars_needed = 1

    def __init__(self, params: CoinFlipParams | None = None) -> None:
        self.params = params or CoinFlipParams()

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> CoinFlip:
        return cls(parse_params(CoinFlipParams, params))

    def _coin(self, symbol: str, bar: Bar, salt: str = "") -> float:
        key = f"{self.params.seed}:{symbol}:{bar.time.isoformat()}{salt}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2.0**64

    def decide(self, symbol: str, bars: Sequence[Bar], position: Position | None) -> Signal | None:
        if not bars:
            return None
        bar, coin = bars[-1], self._coin(symbol, bars[-1])
        rich = self._coin(symbol, bar, ":orders") < self.params.orders
        if position is not None:
            if rich:
                return self._while_holding(symbol, bar, position, coin)
            if coin < self.params.exit:
                return Signal(self.name, symbol, Action.EXIT, bar.time, f"coin {coin:.2f}")
            return None
        if coin >= self.params.enter:
            return None
        short = self.params.short and coin < self.params.enter / 2
        action = Action.ENTER_SHORT if short else Action.ENTER_LONG
        if rich:
            return self._entry(symbol, bar, action, coin)
        return Signal(self.name, symbol, action, bar.time, f"coin {coin:.2f}")

    def _pick(self, symbol: str, bar: Bar, salt: str, choices: Sequence[T]) -> T:
        return choices[int(self._coin(symbol, bar, salt) * len(choices))]

    def _entry(self, symbol: str, bar: Bar, action: Action, coin: float) -> Signal:
        side = Side.LONG if action is Action.ENTER_LONG else Side.SHORT
        size = self._pick(
            symbol, bar, ":size",
            [Size.units(1), Size.notional(1500), Size.equity_pct(2), Size.risk_pct("0.5")],
        )  # fmt: skip
        stop = self._pick(
            symbol, bar, ":stop",
            [None, Stop.percent("1.5"), Stop.distance(bar.close / 50, trailing=True),
             Stop.price(Stop.percent(3).price_from(bar.close, side))],
        )  # fmt: skip
        take_profit = self._pick(
            symbol, bar, ":take_profit",
            [None, TakeProfit.multiple(2), TakeProfit.percent("1.5"),
             TakeProfit.distance(bar.close / 40)],
        )  # fmt: skip
        limit = None
        if self._coin(symbol, bar, ":limit") < 0.5:  # a limit a little away, for 3 bars
            away = Decimal("0.998") if side is Side.LONG else Decimal("1.002")
            limit = (bar.close * away).quantize(Decimal("0.01"))
        return Signal(
            self.name, symbol, action, bar.time, f"coin {coin:.2f} (own size, stop, limit)",
            size=size, limit=limit, expires_after=timedelta(hours=3) if limit else None,
            stop=stop, take_profit=take_profit, state={"entered_on": bar.time.isoformat()},
        )  # fmt: skip

    def _while_holding(
        self, symbol: str, bar: Bar, position: Position, coin: float
    ) -> Signal | None:
        why = f"coin {coin:.2f}"
        if coin < self.params.exit / 3:
            return Signal.exit(symbol, bar, why + " (a part)", fraction=Decimal("0.5"))
        if coin < self.params.exit * 2 / 3:
            return Signal.add(symbol, bar, why, size=Size.notional(500))
        if coin < self.params.exit:
            stage = int(position.custom.get("stage", 0)) + 1
            tighter = Stop.percent("0.8", trailing=True)
            target = TakeProfit.multiple(3) if stage % 2 else None
            return Signal.update(
                symbol, bar, why, stop=tighter, take_profit=target, state={"stage": stage}
            )
        return None
