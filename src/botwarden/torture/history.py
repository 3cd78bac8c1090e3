"""The history of a simulated run, in the spirit of Jepsen: every venue call the bot
made, as `invoke` then `ok` (it answered), `fail` (it definitely did not happen) or
`info` (it may or may not have happened: a timeout, a 5xx, a crash in between), and
between them what the simulator did (crashes, restarts, faults, checks).

The bot's venue is wrapped in `RecordingVenue`, which writes the history and gives
the simulator's `Crasher` its chance before and after every call. Entries keep the
call's arguments and results as objects and are only turned into text when written
or compared: a passing seed pays for a list append per call, not for formatting.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from botwarden.domain.models import Bar
from botwarden.engine.crash import SimulatedCrash
from botwarden.venues.base import (
    Ambiguous,
    Balance,
    FillPage,
    OrderRequest,
    VenueError,
    VenueOrder,
    VenuePosition,
)

CALLS = frozenset(
    {
        "balance",
        "positions",
        "open_orders",
        "order",
        "fills",
        "submit",
        "submit_oco",
        "cancel",
        "last_price",
        "last_prices",
        "bars",
        "market",
    }
)
"""The venue's calls that reach the exchange (and can fail, or be crashed around)."""


@dataclass(frozen=True, slots=True)
class Entry:
    time: datetime
    instance: int
    kind: str
    """invoke, ok, fail, info (an uncertain outcome), or note (the simulator's own)."""
    what: str
    detail: Any


class History:
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.entries: list[Entry] = []
        self.instance = 0

    def add(self, kind: str, what: str, detail: Any = None) -> None:
        self.entries.append(Entry(self.clock(), self.instance, kind, what, detail))

    def note(self, what: str, detail: Any = None) -> None:
        self.add("note", what, detail)

    def lines(self) -> Iterator[str]:
        for number, e in enumerate(self.entries):
            detail = "" if e.detail is None else " " + show(e.detail)
            yield f"{number:6d} {e.time:%Y-%m-%dT%H:%M:%S} i{e.instance} {e.kind} {e.what}{detail}"

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines())

    def digest(self) -> str:
        return hashlib.sha256(self.text().encode()).hexdigest()

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.text(), encoding="utf-8")
        return path


def show(value: Any) -> str:
    """A record as one short, stable line of text."""
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, OrderRequest):
        stop = f" stop {value.stop_price}" if value.stop_price is not None else ""
        return f"{value.client_order_id} {value.side} {value.qty} {value.symbol} {value.type}{stop}"
    if isinstance(value, VenueOrder):
        return (
            f"{value.client_order_id}/{value.venue_order_id} {value.state}"
            f" {value.filled_qty}/{value.qty}"
        )
    if isinstance(value, VenuePosition):
        return f"{value.symbol} {value.side} {value.qty}"
    if isinstance(value, FillPage):
        return f"fills [{' '.join(f.trade_id for f in value.fills)}] cursor {value.cursor}"
    if isinstance(value, Balance):
        return f"equity {value.equity} cash {value.cash}"
    if isinstance(value, Bar):
        return f"bar {value.time:%Y-%m-%dT%H:%M} close {value.close}"
    if isinstance(value, list | tuple):
        if value and isinstance(value[0], Bar):
            return f"{len(value)} bars, last {show(value[-1])}"
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%dT%H:%M:%S}"
    if isinstance(value, Decimal | str | int | float | bool) or value is None:
        return str(value)
    if is_dataclass(value):
        return " ".join(show(getattr(value, f.name)) for f in fields(value))
    return type(value).__name__


class Crasher:
    """Kills the bot (raises `SimulatedCrash`) at an armed operation: the n-th venue
    call or store write from now, just before it or just after it took effect."""

    def __init__(self) -> None:
        self.count = 0
        self._at: int | None = None
        self._after = False

    def arm(self, operations_from_now: int, after: bool) -> None:
        self._at = self.count + operations_from_now
        self._after = after

    def disarm(self) -> None:
        self._at = None

    def before(self, what: str) -> None:
        self.count += 1
        if self.count == self._at and not self._after:
            self._at = None
            raise SimulatedCrash(f"before {what}")

    def after(self, what: str) -> None:
        if self.count == self._at and self._after:
            self._at = None
            raise SimulatedCrash(f"after {what}")


class RecordingVenue:
    """A venue whose every call goes into the history, with the crasher consulted."""

    def __init__(self, venue: Any, history: History, crasher: Crasher) -> None:
        self._venue = venue
        self._history = history
        self._crasher = crasher

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._venue, name)
        if name not in CALLS:
            return attribute
        history, crasher = self._history, self._crasher

        async def call(*args: Any, **kwargs: Any) -> Any:
            history.add("invoke", name, _arguments(args, kwargs))
            crasher.before(f"venue {name}")
            try:
                result = await attribute(*args, **kwargs)
            except Ambiguous as error:
                history.add("info", name, error)
                raise
            except VenueError as error:
                history.add("fail", name, error)
                raise
            except SimulatedCrash:
                history.add("info", name, "crashed")
                raise
            history.add("ok", name, result)
            crasher.after(f"venue {name}")
            return result

        return call


def _arguments(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    if kwargs:
        return [*args, kwargs]
    return args[0] if len(args) == 1 else list(args) or None
