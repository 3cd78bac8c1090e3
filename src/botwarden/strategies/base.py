"""The strategy protocol, and how a strategy is named in a bot's config.

A strategy sees the completed bars of one symbol and what the bot holds in it, and
answers with a `Signal` or nothing. It never sends orders, reads a clock or keeps
state between calls that is not in the bars: the engine decides whether a signal is
acted on (risk guards, cooldowns, an unresolved order), and a signal's id (strategy,
symbol, action, bar time) makes sure it is acted on once, ever, across restarts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from botwarden.domain.models import Bar, Position

P = TypeVar("P", bound=BaseModel)


class Action(StrEnum):
    ENTER_LONG = "enter_long"
    ENTER_SHORT = "enter_short"
    EXIT = "exit"


@dataclass(frozen=True)
class Signal:
    strategy: str
    symbol: str
    action: Action
    bar_time: datetime
    reason: str

    @property
    def id(self) -> str:
        return f"{self.strategy}:{self.symbol}:{self.action}:{self.bar_time.isoformat()}"


class Strategy(Protocol):
    name: str

    @property
    def bars_needed(self) -> int:
        """How many completed bars `decide` needs to say anything."""
        ...

    def decide(
        self, symbol: str, bars: Sequence[Bar], position: Position | None
    ) -> Signal | None: ...


def parse_params(model: type[P], params: dict[str, Any]) -> P:
    """A strategy's parameters, checked: `ValueError` naming the first bad field."""
    try:
        return model.model_validate(params)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{where + ': ' if where else ''}{message}") from None


def build_strategy(name: str, params: dict[str, Any]) -> Strategy:
    """The strategy a config names, with its parameters checked (`ValueError` if not)."""
    from botwarden.strategies.coin_flip import CoinFlip
    from botwarden.strategies.golden_cross import GoldenCross

    known = {"golden_cross": GoldenCross, "coin_flip": CoinFlip}
    if name not in known:
        raise ValueError(f"unknown strategy {name!r}; available: {', '.join(sorted(known))}")
    return known[name].from_params(params)
