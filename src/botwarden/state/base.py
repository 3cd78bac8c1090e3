"""The storage port: one protocol that every backend implements the same way.

A store holds, per bot (`flow_id`), a few named collections of JSON documents keyed
by id, and one fencing epoch. It knows nothing of positions or orders: the
`StateManager` turns domain objects into documents and back. Keeping the port this
small is what lets one conformance suite prove every backend.

Three guarantees every backend gives (promises I4 and I6):
- `apply` writes a whole `Change` or nothing, and durably before it returns;
- epochs are granted by the store alone (`claim_epoch`), each once: two instances
  claiming at the same moment, from two hosts, get two epochs;
- a change carrying an `epoch` other than the flow's stored one is refused
  (`FencedOut`) inside the same atomic write: a lower one is an instance that was
  taken over, a higher one was never granted. Only the newest claimant writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from botwarden.errors import StateError

SCHEMA_VERSION = 2
"""Layout version of what the stores hold. A store written by a newer version is refused.

1: every collection in one live set (terminal intents among the others).
2: live collections and history collections apart; terminal intents in `past_intents`.
A store of version 1 is upgraded when a writer first opens it, in one atomic step."""

LIVE: tuple[str, ...] = ("positions", "intents", "signals", "cooldowns", "meta")
"""What recovery and the loop need, loaded whole at open. `intents` holds the intents
not yet terminal; `meta` holds singletons (bot record, ledger, risk, last bar)."""

HISTORY: tuple[str, ...] = ("past_intents", "fills", "trades", "trade_days", "events")
"""What a bot did: never loaded at open, read by key (`get`) or by key range (`scan`).
Keys sort in the order things happened where it matters: trades and events."""

COLLECTIONS: tuple[str, ...] = LIVE + HISTORY
"""Every collection a flow may hold."""

Snapshot = dict[str, dict[str, str]]
"""collection -> key -> JSON text, with every collection of `LIVE` present."""


@dataclass(frozen=True, slots=True)
class Put:
    collection: str
    key: str
    value: Mapping[str, Any]
    """A JSON-able mapping; encoded by the backend inside its atomic write."""


@dataclass(frozen=True, slots=True)
class Delete:
    collection: str
    key: str


Op = Put | Delete


@dataclass(frozen=True, slots=True)
class Change:
    """Operations applied together, in order, as one atomic and durable write."""

    ops: Sequence[Op] = field(default_factory=tuple)
    epoch: int | None = None
    """The writer's fencing epoch, as the store granted it; None for tools that do not
    trade (export, import). A store that never granted one is at epoch 0."""

    def __post_init__(self) -> None:
        for op in self.ops:
            if op.collection not in COLLECTIONS:
                known = ", ".join(COLLECTIONS)
                raise ValueError(f"unknown collection {op.collection!r}; expected one of {known}")


def encode(value: Mapping[str, Any]) -> str:
    """The one JSON encoding of a document. NaN and infinity are refused: they are not
    JSON, and a NaN price in state is a bug to stop at the door, not to store."""
    if isinstance(value, Encoded):
        return value.text
    return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


class Encoded(Mapping[str, Any]):
    """A document whose JSON text is made already (a domain object's, by pydantic in
    one step: a third of the cost of building the dict and encoding it). It reads back
    as the dict `encode` would have encoded; the text may differ only in how a float
    is spelled (2.5e-7 for 2.5e-07). `encode` hands the text on; read as a mapping, it
    is parsed once, on first use."""

    __slots__ = ("_fields", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._fields: dict[str, Any] | None = None

    def _parsed(self) -> dict[str, Any]:
        if self._fields is None:
            self._fields = json.loads(self.text)
        return self._fields

    def __getitem__(self, key: str) -> Any:
        return self._parsed()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())

    def __repr__(self) -> str:
        return f"Encoded({self.text!r})"


def refuse_if_readonly(store: StateStore) -> None:
    """A store opened `readonly` (a command that only looks) writes nothing: one error."""
    if getattr(store, "readonly", False):
        raise StateError(f"{store.describe()}: opened read-only, not for writing")


def empty_snapshot() -> Snapshot:
    return {name: {} for name in LIVE}


@dataclass(frozen=True, slots=True)
class KeyRange:
    """Which records a scan reads: keys with `start <= key < stop` (no `stop`: to the
    end), in key order or `newest_first`, at most `limit` of them."""

    start: str = ""
    stop: str | None = None
    limit: int | None = None
    newest_first: bool = False

    def of(self, records: Mapping[str, str]) -> Records:
        """The range of records held in memory (the memory and file stores)."""
        keys = sorted(
            k for k in records if k >= self.start and (self.stop is None or k < self.stop)
        )
        if self.newest_first:
            keys.reverse()
        return [(key, records[key]) for key in keys[: self.limit]]


EVERY = KeyRange()

Records = list[tuple[str, str]]
"""(key, JSON text) pairs, in the order asked for."""


@runtime_checkable
class StateStore(Protocol):
    """What every backend provides. All methods are coroutines but `describe`."""

    durable: bool
    """False only for `memory`: nothing survives the process."""

    def describe(self) -> str:
        """Backend and location for messages, with any password removed."""
        ...

    async def open(self) -> None:
        """Connect, create the layout if new, refuse a newer schema, detect corruption."""
        ...

    async def close(self) -> None: ...

    async def load(self, flow_id: str) -> Snapshot:
        """One bot's live collections (`LIVE`), in one bulk read: never its history."""
        ...

    async def get(self, flow_id: str, collection: str, keys: Sequence[str]) -> dict[str, str]:
        """The records of `keys` that exist, from any collection: key -> JSON text."""
        ...

    async def scan(self, flow_id: str, collection: str, within: KeyRange = EVERY) -> Records:
        """(key, JSON text) of the records `within` the range, in its order."""
        ...

    async def apply(self, flow_id: str, change: Change) -> None:
        """Write `change` atomically and durably, or raise with nothing written."""
        ...

    async def count(self, flow_id: str, collection: str) -> int:
        """How many records the collection holds, counted in the store without sending
        them (a walk of the key range on SQL: it grows with the collection)."""
        ...

    async def flows(self) -> list[str]:
        """The bots that have state in this store, sorted."""
        ...

    async def epoch(self, flow_id: str) -> int:
        """The flow's fencing epoch (0 if it never had one)."""
        ...

    async def claim_epoch(self, flow_id: str, at_least: int = 0) -> int:
        """Grant a new fencing epoch, atomically: above every one granted before, and
        at least `at_least`. From then on only changes at that epoch are written. The
        flow is registered (`flows`) if it was not."""
        ...
