"""The strategy protocol, and how a strategy is named in a bot's config.

A strategy sees the completed bars of one symbol and what the bot holds in it, and
answers with a `Signal` or nothing. It never sends orders or reads a clock; what it
must remember across restarts it keeps with the position (a signal's `state`, read
back as `position.custom`). The engine decides whether a signal is acted on (risk
guards, cooldowns, an unresolved order, a size that cannot be met), and a signal's id
(strategy, symbol, action, bar time) makes sure it is acted on once, ever.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from botwarden.domain.markets import TimeInForce
from botwarden.domain.models import Bar, Position, Stop, TakeProfit, decimal_of
from botwarden.domain.sizing import Size

P = TypeVar("P", bound=BaseModel)


class Action(StrEnum):
    ENTER_LONG = "enter_long"
    ENTER_SHORT = "enter_short"
    ADD = "add"
    """Scale in: more of the position held, in its direction."""
    EXIT = "exit"
    """Close the position, or a part of it (`fraction`, `qty`)."""
    UPDATE = "update"
    """No order: a new stop for the position held, or its custom state."""

    @property
    def enters(self) -> bool:
        return self in (Action.ENTER_LONG, Action.ENTER_SHORT, Action.ADD)


Number = Decimal | int | str | float


@dataclass(frozen=True)
class Signal:
    """What a strategy wants done in one symbol, on the bar it decided at.

    Made with `Signal.long(symbol, bar, ...)`, `.short`, `.add`, `.exit` or `.update`;
    the engine stamps the strategy's name on it (`strategy` is left empty). What it
    leaves out comes from the config: the size from `order:`, the stop from `stop:`.
    A signal that cannot be met as asked (a size below the market's minimum, more
    than the buying power) is skipped with its reason, never sent smaller."""

    strategy: str
    symbol: str
    action: Action
    bar_time: datetime
    reason: str = ""
    size: Size | None = None
    """An entry's size: `Size.units(10)`, `.notional(1000)`, `.equity_pct(5)`,
    `.risk_pct(1)` (the loss at the stop, as a percentage of equity)."""
    limit: Decimal | None = None
    """An entry at this price or better (a limit order); None: at market."""
    time_in_force: TimeInForce | None = None
    """A limit entry's: gtc (the default), day, ioc or fok, where the venue has it."""
    expires_after: timedelta | None = None
    """A limit entry not filled this long after it is sent is canceled."""
    stop: Stop | None = None
    """The position's own stop (`Stop.price(95)`, `Stop.percent(2, trailing=True)`)."""
    take_profit: TakeProfit | None = None
    """The position's take-profit, on the venue beside the stop (`TakeProfit.multiple(2)`)."""
    state: Mapping[str, Any] | None = None
    """Kept with the position (merged into `position.custom`), durable across restarts."""
    fraction: Decimal | None = None
    """An exit of this part of the position (0.5: half); None: all of it."""
    qty: Decimal | None = None
    """An exit of this quantity."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: the checked values replace the given ones
        try:
            action = Action(self.action)
        except ValueError:
            raise ValueError(
                f"signal action {self.action!r} is not one of {', '.join(Action)}"
            ) from None
        set_(self, "action", action)
        if not isinstance(self.bar_time, datetime) or self.bar_time.tzinfo is None:
            raise ValueError(f"signal bar_time {self.bar_time!r} is not a timezone-aware datetime")
        if self.size is not None and not isinstance(self.size, Size):
            raise ValueError(f"size: {self.size!r} is not a Size; write Size.units(10) or kin")
        if self.stop is not None and not isinstance(self.stop, Stop):
            raise ValueError(f"stop: {self.stop!r} is not a Stop; write Stop.percent(2) or kin")
        if self.take_profit is not None and not isinstance(self.take_profit, TakeProfit):
            raise ValueError(
                f"take_profit: {self.take_profit!r} is not a TakeProfit; write"
                " TakeProfit.percent(4) or kin"
            )
        for name in ("limit", "fraction", "qty"):
            if getattr(self, name) is not None:
                set_(self, name, _positive(name, getattr(self, name)))
        if self.time_in_force is not None:
            set_(self, "time_in_force", TimeInForce(self.time_in_force))
        if self.state is not None:
            set_(self, "state", _json_object(self.state))
        only = {
            "size": action.enters,
            "limit": action.enters,
            "time_in_force": action.enters,
            "expires_after": self.limit is not None,
            "stop": action.enters or action is Action.UPDATE,
            "take_profit": action.enters or action is Action.UPDATE,
            "state": action.enters or action is Action.UPDATE,
            "fraction": action is Action.EXIT,
            "qty": action is Action.EXIT and self.fraction is None,
        }
        for name, allowed in only.items():
            if getattr(self, name) is not None and not allowed:
                raise ValueError(f"{name} has no meaning for a signal to {action}" + (
                    " without a limit price" if name == "expires_after" else ""
                ))  # fmt: skip
        if self.fraction is not None and self.fraction > 1:
            raise ValueError(f"fraction: {self.fraction} is more than all of it (1)")
        if self.expires_after is not None and self.expires_after <= timedelta(0):
            raise ValueError(f"expires_after: {self.expires_after} is not a length of time")

    @classmethod
    def long(
        cls,
        symbol: str,
        at: Bar | datetime,
        reason: str = "",
        *,
        size: Size | None = None,
        limit: Number | None = None,
        time_in_force: TimeInForce | str | None = None,
        expires_after: timedelta | None = None,
        stop: Stop | None = None,
        take_profit: TakeProfit | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> Signal:
        """Enter long in `symbol`, decided on the bar `at` (a `Bar`, or its time)."""
        return cls(
            "", symbol, Action.ENTER_LONG, _time_of(at), reason, size, limit,
            time_in_force, expires_after, stop, take_profit, state,
        )  # fmt: skip

    @classmethod
    def short(
        cls,
        symbol: str,
        at: Bar | datetime,
        reason: str = "",
        *,
        size: Size | None = None,
        limit: Number | None = None,
        time_in_force: TimeInForce | str | None = None,
        expires_after: timedelta | None = None,
        stop: Stop | None = None,
        take_profit: TakeProfit | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> Signal:
        """Enter short in `symbol` (skipped, saying why, where it cannot be shorted)."""
        return cls(
            "", symbol, Action.ENTER_SHORT, _time_of(at), reason, size, limit,
            time_in_force, expires_after, stop, take_profit, state,
        )  # fmt: skip

    @classmethod
    def add(
        cls,
        symbol: str,
        at: Bar | datetime,
        reason: str = "",
        *,
        size: Size | None = None,
        limit: Number | None = None,
        time_in_force: TimeInForce | str | None = None,
        expires_after: timedelta | None = None,
        stop: Stop | None = None,
        take_profit: TakeProfit | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> Signal:
        """Scale in: more of the position held in `symbol`, in its direction; its
        stop is resized to cover all of it."""
        return cls(
            "", symbol, Action.ADD, _time_of(at), reason, size, limit,
            time_in_force, expires_after, stop, take_profit, state,
        )  # fmt: skip

    @classmethod
    def exit(
        cls,
        symbol: str,
        at: Bar | datetime,
        reason: str = "",
        *,
        fraction: Number | None = None,
        qty: Number | None = None,
    ) -> Signal:
        """Close what the bot holds in `symbol`: all of it, or a `fraction` or a `qty`
        of it (its stop is resized to what is left)."""
        return cls("", symbol, Action.EXIT, _time_of(at), reason, fraction=fraction, qty=qty)

    @classmethod
    def update(
        cls,
        symbol: str,
        at: Bar | datetime,
        reason: str = "",
        *,
        stop: Stop | None = None,
        take_profit: TakeProfit | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> Signal:
        """No order: the position held in `symbol` gets a new stop rule (a stop only
        ever tightens), a new take-profit, and/or more custom state."""
        return cls(
            "", symbol, Action.UPDATE, _time_of(at), reason,
            stop=stop, take_profit=take_profit, state=state,
        )  # fmt: skip

    @property
    def id(self) -> str:
        """Acted on once, ever: the same strategy, symbol, action and bar is the same
        signal, however often it is decided again (after a restart, say)."""
        return f"{self.strategy}:{self.symbol}:{self.action}:{self.bar_time.isoformat()}"


def _time_of(at: Bar | datetime) -> datetime:
    return at.time if isinstance(at, Bar) else at


def _positive(name: str, value: Any) -> Decimal:
    try:
        number = decimal_of(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not a number") from None
    if isinstance(value, bool) or not number.is_finite() or number <= 0:
        raise ValueError(f"{name}: {value!r} must be a number above 0")
    return number


MAX_STATE_BYTES = 64 * 1024
"""A position's custom state is a few notes (a stage, a level), written with every
change of the position: a strategy storing its history there would slow every write."""


def _json_object(state: Mapping[str, Any]) -> dict[str, Any]:
    """A strategy's custom state, as the store will keep it: a JSON object with string
    keys, of at most MAX_STATE_BYTES."""
    if not isinstance(state, Mapping):
        raise ValueError(f"state: {state!r} is not a mapping")
    for key in state:
        if not isinstance(key, str):
            raise ValueError(f"state: key {key!r} is not a string (JSON keys are)")
    try:
        text = json.dumps(dict(state), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"state: cannot be kept as JSON ({error}): use str() or float() for a Decimal,"
            " .isoformat() for a datetime"
        ) from None
    if len(text) > MAX_STATE_BYTES:
        raise ValueError(
            f"state: {len(text)} bytes as JSON, more than {MAX_STATE_BYTES}: keep a few notes"
            " with a position, not its history"
        )
    return json.loads(text)


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
