"""signalflow's positions as botwarden's, for a loop moving over (docs/porting-signalflow.md).

    from botwarden.compat.signalflow import from_signalflow

    position = from_signalflow(sf_position, bot_id="my_bot")   # a botwarden Position
    await state.save_position(position)

signalflow's `StateManager` (`signalflow.strategy.state`, parked by later versions in
`signalflow.strategy.live.state`) stores a `Position` dataclass of its own: `id, pair,
side, size, entry_price, entry_ts, sl, tp, metadata`. Its notes say it is to move to
`signalflow.core.Position`: `id, pair, position_type, qty, entry_price, entry_time,
meta`, plus running figures. Either one converts, as the object or as its dict (its
`to_dict()`, or a record read from signalflow's DuckDB or Redis state), under `FIELDS`.

The result is botwarden's own `Position`, so what is stored keeps botwarden's names
(`symbol`, `size`, `entry_time`, ...): other code and older states read those. Where
signalflow is loose, this is strict, with one `ValueError` naming the signalflow
field, its value and what is accepted: a closed position, an unknown field, two fields
for one thing (`size` and `qty`), a time without a zone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

from pydantic import ValidationError

from botwarden.domain.models import Position, Side

FIELDS: dict[str, str | None] = {
    # signalflow's StateManager position (signalflow.strategy.state.Position)
    "id": "id",
    "pair": "symbol",
    "side": "side",
    "size": "size",
    "entry_price": "entry_price",
    "entry_ts": "entry_time",
    "sl": "stop_price",
    "tp": "take_profit",
    "metadata": "custom",
    # signalflow.core.Position, the model signalflow's state is to move to
    "position_type": "side",
    "qty": "size",
    "entry_time": "entry_time",
    "meta": "custom",
    "is_closed": None,
    "signal_strength": None,
    "last_time": None,
    "last_price": None,
    "fees_paid": None,
    "realized_pnl": None,
}
"""signalflow's field -> botwarden's `Position` field; None: read, not carried over.

signalflow's `metadata` is the strategy's own data, which botwarden keeps in `custom`
(botwarden's `metadata` is the engine's notes). `sl` becomes the stop price the stop
guarantee protects the position at. `is_closed` must be false: botwarden's state holds
open positions, a closed one is a trade. The running figures of `core.Position`
(`last_price`, `last_time`, `signal_strength`, `fees_paid`, `realized_pnl`) are not
carried: botwarden works PnL and fees out of its own fills."""


def from_signalflow(position: Any, *, bot_id: str, naive_tz: tzinfo | None = None) -> Position:
    """botwarden's `Position` for a signalflow one (the dataclass, or its dict).

    `bot_id` is the bot that holds it (signalflow's `flow_id`). signalflow's own times
    are naive (`datetime.utcnow()`, `datetime.now()`); a naive entry time is refused
    unless `naive_tz` says which zone it is in (`naive_tz=UTC` for signalflow's own).
    Floats are taken as they print (0.1 is 0.1, as pydantic reads them)."""
    given = _fields_of(position)
    label = f"signalflow position {given.get('id', '(no id)')!r}"
    unknown = sorted(set(given) - FIELDS.keys())
    if unknown:
        raise ValueError(
            f"{label}: unknown field(s) {', '.join(unknown)}; a signalflow position has"
            f" {', '.join(FIELDS)}"
        )
    if given.get("is_closed"):
        raise ValueError(
            f"{label}: is_closed is {given['is_closed']!r}; only an open position converts"
            " (botwarden's state holds what is held, a closed position is a trade)"
        )
    fields: dict[str, Any] = {"bot_id": bot_id}
    source: dict[str, str] = {}
    for name, value in given.items():
        target = FIELDS[name]
        if target is None or value is None:
            continue
        if target in source:
            raise ValueError(
                f"{label}: gives both {source[target]} and {name}, which are both"
                f" botwarden's {target}; give one"
            )
        source[target] = name
        fields[target] = _converted(target, value, f"{label}: {name}", naive_tz)
    try:
        return Position.model_validate(fields)
    except ValidationError as error:
        problem = error.errors()[0]
        target = str(problem["loc"][0]) if problem["loc"] else ""
        named = source.get(target) or " or ".join(
            name for name, field in FIELDS.items() if field == target
        )
        if problem["type"] == "missing":
            raise ValueError(f"{label}: {named or target} is missing") from None
        shown = f" {given[source[target]]!r}" if target in source else ""
        raise ValueError(f"{label}: {named or target}{shown}: {problem['msg']}") from None


def _fields_of(position: Any) -> dict[str, Any]:
    if isinstance(position, Mapping):
        return dict(position)
    if dataclasses.is_dataclass(position) and not isinstance(position, type):
        return {f.name: getattr(position, f.name) for f in dataclasses.fields(position)}
    raise ValueError(
        f"not a signalflow position: {position!r}; give signalflow's Position (the"
        " dataclass) or its dict"
    )


def _converted(target: str, value: Any, what: str, naive_tz: tzinfo | None) -> Any:
    if target == "side":
        side = getattr(value, "value", value)  # signalflow's PositionType is an enum
        if not isinstance(side, str) or side not in {s.value for s in Side}:
            raise ValueError(f"{what} {value!r} is not a position side: use 'long' or 'short'")
        return Side(side)
    if target == "symbol" and (not isinstance(value, str) or not value.strip()):
        raise ValueError(f"{what} {value!r} is not a market: give one like 'BTC/USDT'")
    if target == "entry_time":
        return _aware(value, what, naive_tz)
    if target == "custom":
        if not isinstance(value, Mapping):
            raise ValueError(f"{what} {value!r} is not a mapping")
        return dict(value)
    return value


def _aware(value: Any, what: str, naive_tz: tzinfo | None) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{what} {value!r} is not an ISO 8601 time") from None
    if not isinstance(value, datetime):
        raise ValueError(f"{what} {value!r} is not a time")
    if value.utcoffset() is None:
        if naive_tz is None:
            raise ValueError(
                f"{what} {value.isoformat()} has no timezone: signalflow's times are naive;"
                " say which zone they are in, from_signalflow(..., naive_tz=UTC)"
            )
        value = value.replace(tzinfo=naive_tz)
    return value
