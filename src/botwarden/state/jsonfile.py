"""`jsonfile`: the whole state as one human-readable state.json.

Every change rewrites the file (temp file, fsync, rename, fsync the directory), so a
crash leaves the old file or the new one. Rewriting everything makes a change cost
grow with the state: choose it for small bots whose operators want to read (and
diff, and back up) their state as text; see docs/state.md.

Several processes may share one file (bots whose `path` has no `{flow_id}`): a change
takes an exclusive `flock` on `<file>.lock` and re-reads the file first if another
process replaced it. Replaced is normal here; deleted, or replaced by a file that no
longer holds a bot this store wrote, is `StateLost`.

Opened `readonly` (commands that only look), it takes no lock, creates nothing and
moves nothing: a rename makes every version of the file whole, so reading needs none.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botwarden.errors import (
    FencedOut,
    SchemaVersionError,
    StateCorruptError,
    StateError,
    StateLost,
    StoreUnavailable,
)
from botwarden.state.base import (
    COLLECTIONS,
    EVERY,
    LIVE,
    SCHEMA_VERSION,
    Change,
    KeyRange,
    Put,
    Records,
    Snapshot,
    encode,
    refuse_if_readonly,
)
from botwarden.state.files import atomic_write, quarantine, refuse_another_format
from botwarden.state.upgrade import past_intent_keys

_HEADER = "botwarden_state"


class _Corrupt(Exception):
    pass


class JsonFileStore:
    durable = True

    def __init__(self, path: Path | str, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._flows: dict[str, dict[str, Any]] = {}
        self._signature: tuple[int, int, int] | None = None
        # Bots this store found in the file or wrote to it: none ever leaves a file.
        self._seen: set[str] = set()
        self._version = SCHEMA_VERSION
        """The layout version of the file as last read (a new file is the current one)."""

    def describe(self) -> str:
        return f"jsonfile {self.path}"

    async def open(self) -> None:
        self._signature, self._seen = None, set()
        if self.path.exists():
            refuse_another_format(self.path, "jsonfile")  # before its lock file is made
        elif self.readonly:
            raise StateError(f"state file {self.path} does not exist")
        if self.readonly:
            self._refresh(on_open=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._refresh(on_open=True)
            if self._version < SCHEMA_VERSION:
                self._upgrade()

    def _upgrade(self) -> None:
        try:
            self._write(_upgraded(self._flows))
        except OSError as error:
            raise StoreUnavailable(f"{self.describe()}: cannot upgrade: {error}") from error

    async def close(self) -> None:
        self._flows = {}
        self._signature = None

    async def load(self, flow_id: str) -> Snapshot:
        return {name: self._records(flow_id, name) for name in LIVE}

    def _records(self, flow_id: str, collection: str) -> dict[str, str]:
        self._refresh()
        stored = self._flows.get(flow_id, {}).get(collection, {})
        return {key: encode(doc) for key, doc in stored.items()}

    async def get(self, flow_id: str, collection: str, keys: Sequence[str]) -> dict[str, str]:
        self._refresh()
        stored = self._flows.get(flow_id, {}).get(collection, {})
        return {key: encode(stored[key]) for key in keys if key in stored}

    async def scan(self, flow_id: str, collection: str, within: KeyRange = EVERY) -> Records:
        return within.of(self._records(flow_id, collection))

    async def apply(self, flow_id: str, change: Change) -> None:
        def changed(flow: dict[str, Any]) -> None:
            current = int(flow.get("epoch", 0))
            if change.epoch is not None and change.epoch != current:
                raise FencedOut(flow_id, change.epoch, current)
            flow["epoch"] = current
            touched: dict[str, dict[str, Any]] = {}
            for op in change.ops:
                records = touched.setdefault(op.collection, dict(flow.get(op.collection, {})))
                if isinstance(op, Put):
                    # Round-trip through the one encoding: refuses NaN, and the stored
                    # document can never alias the caller's mutable mapping.
                    records[op.key] = json.loads(encode(op.value))
                else:
                    records.pop(op.key, None)
            flow.update(touched)

        self._rewrite(flow_id, changed)

    async def claim_epoch(self, flow_id: str, at_least: int = 0) -> int:
        def claimed(flow: dict[str, Any]) -> None:
            flow["epoch"] = max(int(flow.get("epoch", 0)) + 1, at_least)

        return int(self._rewrite(flow_id, claimed)["epoch"])

    def _rewrite(self, flow_id: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """The file rewritten, under its lock, with the flow as `change` leaves a copy
        of it (raising writes nothing); the flow written."""
        refuse_if_readonly(self)
        with self._locked():
            self._refresh()
            if flow_id in self._seen and flow_id not in self._flows:
                raise StateLost(self.path, f"was replaced by a file without bot {flow_id}")
            if self._version < SCHEMA_VERSION:  # replaced meanwhile by an older botwarden
                self._flows = _upgraded(self._flows)
            flow = dict(self._flows.get(flow_id) or {})
            change(flow)
            flows = {**self._flows, flow_id: flow}
            try:
                self._write(flows)
            except OSError as error:  # a full disk, an I/O error: said like every store
                raise StoreUnavailable(f"{self.describe()}: {error}") from error
            self._flows = flows
            self._seen.add(flow_id)
            return flow

    async def count(self, flow_id: str, collection: str) -> int:
        self._refresh()
        return len(self._flows.get(flow_id, {}).get(collection, {}))

    async def flows(self) -> list[str]:
        self._refresh()
        return sorted(self._flows)

    async def epoch(self, flow_id: str) -> int:
        self._refresh()
        return int(self._flows.get(flow_id, {}).get("epoch", 0))

    # -- the file --------------------------------------------------------------------
    @contextmanager
    def _locked(self):
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _refresh(self, on_open: bool = False) -> None:
        """Re-read the file if it is not the one we last read or wrote."""
        signature = self._stat()
        if signature is not None and signature == self._signature and not on_open:
            return
        if signature is None:
            if self._signature is not None:  # it was here: the next write would start afresh
                raise StateLost(self.path, "was deleted")
            self._flows = {}
            return
        try:
            self._flows = self._parse(self.path.read_bytes())
            self._seen.update(self._flows)
        except _Corrupt as error:
            moved_to = None if self.readonly else quarantine(self.path)
            self._flows, self._signature = {}, None
            raise StateCorruptError(self.path, str(error), moved_to) from None
        self._signature = signature

    def _parse(self, raw: bytes) -> dict[str, dict[str, Any]]:
        if not raw.strip():
            raise _Corrupt("the file is empty")
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise _Corrupt(f"not valid JSON: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get(_HEADER), dict):
            raise _Corrupt(f"no {_HEADER!r} header")
        version = document[_HEADER].get("schema_version")
        if not isinstance(version, int):
            raise _Corrupt("no schema_version in the header")
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(self.describe(), version, SCHEMA_VERSION)
        self._version = version
        flows = document.get("flows")
        if not isinstance(flows, dict):
            raise _Corrupt("no 'flows' object")
        for flow_id, flow in flows.items():
            if not isinstance(flow, dict) or not isinstance(flow.get("epoch", 0), int):
                raise _Corrupt(f"flow {flow_id!r} is not an object with an integer epoch")
            for name, records in flow.items():
                if name != "epoch" and (name not in COLLECTIONS or not isinstance(records, dict)):
                    raise _Corrupt(f"flow {flow_id!r}: unexpected entry {name!r}")
        return flows

    def _write(self, flows: dict[str, dict[str, Any]]) -> None:
        document = {_HEADER: {"schema_version": SCHEMA_VERSION}, "flows": flows}
        text = json.dumps(document, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False)
        atomic_write(self.path, (text + "\n").encode())
        self._flows, self._version, self._signature = flows, SCHEMA_VERSION, self._stat()


def _upgraded(flows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Version 1 to 2: terminal intents move from `intents` to `past_intents`."""
    upgraded = {}
    for flow_id, flow in flows.items():
        intents = dict(flow.get("intents", {}))
        past = dict(flow.get("past_intents", {}))
        for key in past_intent_keys({key: encode(doc) for key, doc in intents.items()}):
            past[key] = intents.pop(key)
        upgraded[flow_id] = {**flow, "intents": intents, "past_intents": past}
    return upgraded
