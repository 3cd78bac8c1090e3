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
    """What a strategy wants done in one symbol, on the bar it decided at.

    Made with `Signal.long(symbol, bar)`, `Signal.short(...)` or `Signal.exit(...)`;
    the engine stamps the strategy's name on it (`strategy` is left empty)."""

    strategy: str
    symbol: str
    action: Action
    bar_time: datetime
    reason: str = ""

    @classmethod
    def long(cls, symbol: str, at: Bar | datetime, reason: str = "") -> Signal:
        """Enter long in `symbol`, decided on the bar `at` (a `Bar`, or its time)."""
        return cls("", symbol, Action.ENTER_LONG, _time_of(at), reason)

    @classmethod
    def short(cls, symbol: str, at: Bar | datetime, reason: str = "") -> Signal:
        """Enter short in `symbol` (skipped, saying why, where it cannot be shorted)."""
        return cls("", symbol, Action.ENTER_SHORT, _time_of(at), reason)

    @classmethod
    def exit(cls, symbol: str, at: Bar | datetime, reason: str = "") -> Signal:
        """Close what the bot holds in `symbol`."""
        return cls("", symbol, Action.EXIT, _time_of(at), reason)

    @property
    def id(self) -> str:
        """Acted on once, ever: the same strategy, symbol, action and bar is the same
        signal, however often it is decided again (after a restart, say)."""
        return f"{self.strategy}:{self.symbol}:{self.action}:{self.bar_time.isoformat()}"


def _time_of(at: Bar | datetime) -> datetime:
    return at.time if isinstance(at, Bar) else at


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
