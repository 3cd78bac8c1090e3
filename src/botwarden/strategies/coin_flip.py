"""Coin flip: enters and exits at random, for exercising the runtime, not for money.

The torture simulator trades with it (every bar is a chance to enter or exit, so a
simulated day holds many orders). The coin is a hash of (seed, symbol, bar time): the
same bar always gives the same answer, so a bot restarted mid-bar decides the same
thing again, as a real strategy would, and its signal is de-duplicated like any other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from botwarden.domain.models import Bar, Position
from botwarden.strategies.base import Action, Signal, parse_params


class CoinFlipParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    enter: float = Field(default=0.3, ge=0, le=1)
    """The chance, each bar, of entering when flat."""
    exit: float = Field(default=0.3, ge=0, le=1)
    """The chance, each bar, of exiting when holding."""
    short: bool = False
    """Half the entries go short (on a venue that allows it)."""


class CoinFlip:
    """Enters and exits at random (seeded), to exercise the runtime: not for money."""

    name = "coin_flip"
    bars_needed = 1

    def __init__(self, params: CoinFlipParams | None = None) -> None:
        self.params = params or CoinFlipParams()

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> CoinFlip:
        return cls(parse_params(CoinFlipParams, params))

    def _coin(self, symbol: str, bar: Bar) -> float:
        key = f"{self.params.seed}:{symbol}:{bar.time.isoformat()}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2.0**64

    def decide(self, symbol: str, bars: Sequence[Bar], position: Position | None) -> Signal | None:
        if not bars:
            return None
        bar, coin = bars[-1], self._coin(symbol, bars[-1])
        if position is not None:
            if coin < self.params.exit:
                return Signal(self.name, symbol, Action.EXIT, bar.time, f"coin {coin:.2f}")
            return None
        if coin >= self.params.enter:
            return None
        short = self.params.short and coin < self.params.enter / 2
        action = Action.ENTER_SHORT if short else Action.ENTER_LONG
        return Signal(self.name, symbol, action, bar.time, f"coin {coin:.2f}")
