"""`memory`: the whole store in a dict. For tests and throwaway runs: nothing survives
the process, and the store says so when it opens."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from botwarden.errors import FencedOut
from botwarden.state.base import (
    COLLECTIONS,
    EVERY,
    LIVE,
    Change,
    KeyRange,
    Put,
    Records,
    Snapshot,
    encode,
)

log = logging.getLogger(__name__)


class MemoryStore:
    durable = False

    def __init__(self) -> None:
        self._flows: dict[str, dict[str, dict[str, str]]] = {}
        """flow -> collection (every one of `COLLECTIONS`) -> key -> JSON text."""
        self._epochs: dict[str, int] = {}

    def describe(self) -> str:
        return "memory (nothing survives a restart)"

    async def open(self) -> None:
        log.warning("state backend 'memory': nothing survives a restart of this process")

    async def close(self) -> None:
        pass

    def _records(self, flow_id: str, collection: str) -> dict[str, str]:
        return self._flows.get(flow_id, {}).get(collection, {})

    async def load(self, flow_id: str) -> Snapshot:
        return {name: dict(self._records(flow_id, name)) for name in LIVE}

    async def get(self, flow_id: str, collection: str, keys: Sequence[str]) -> dict[str, str]:
        records = self._records(flow_id, collection)
        return {key: records[key] for key in keys if key in records}

    async def scan(self, flow_id: str, collection: str, within: KeyRange = EVERY) -> Records:
        return within.of(self._records(flow_id, collection))

    async def apply(self, flow_id: str, change: Change) -> None:
        current = self._epochs.get(flow_id, 0)
        if change.epoch is not None and change.epoch != current:
            raise FencedOut(flow_id, change.epoch, current)
        # Encode everything first (the only step that can fail), then write: a change
        # that fails halfway leaves nothing applied.
        staged = [
            (op.collection, op.key, encode(op.value) if isinstance(op, Put) else None)
            for op in change.ops
        ]
        stored = self._flow(flow_id)
        for collection, key, text in staged:
            if text is None:
                stored[collection].pop(key, None)
            else:
                stored[collection][key] = text

    def _flow(self, flow_id: str) -> dict[str, dict[str, str]]:
        return self._flows.setdefault(flow_id, {name: {} for name in COLLECTIONS})

    async def count(self, flow_id: str, collection: str) -> int:
        return len(self._records(flow_id, collection))

    async def flows(self) -> list[str]:
        return sorted(self._flows)

    async def epoch(self, flow_id: str) -> int:
        return self._epochs.get(flow_id, 0)

    async def claim_epoch(self, flow_id: str, at_least: int = 0) -> int:
        self._flow(flow_id)
        self._epochs[flow_id] = max(self._epochs.get(flow_id, 0) + 1, at_least)
        return self._epochs[flow_id]
