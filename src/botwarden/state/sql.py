"""The relational layout shared by sqlite, duckdb and postgres, and the embedded
(sqlite, duckdb) store built on it.

Four tables: `botwarden_schema` (one row: the layout version), `botwarden_flows`
(one row per bot: its fencing epoch), `botwarden_live` (one row per document of the
live state) and `botwarden_history` (one per document of the history). Layout 1 had
one `botwarden_records` for both: the upgrade renames it, so a process of layout 1
still running on the store fails on its next write instead of writing where nobody
reads.
A change is one transaction: claim the flow row (its epoch, which must be the
change's; in PostgreSQL this locks the row), then the puts and deletes, then commit.
An epoch is granted by one statement (or transaction) that raises the row's.

The embedded stores run their statements on the event loop's thread. A durable commit
costs about as much as one fsync (~0.2 ms here) and the caller must wait for it anyway
(write-ahead); handing it to a worker thread was measured to cost more than the
commit itself.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
    EVERY,
    HISTORY,
    LIVE,
    SCHEMA_VERSION,
    Change,
    KeyRange,
    Put,
    Records,
    Snapshot,
    empty_snapshot,
    encode,
    refuse_if_readonly,
)
from botwarden.state.files import FileId, file_id, fsync_dir, quarantine, refuse_another_format
from botwarden.state.upgrade import past_intent_keys

log = logging.getLogger(__name__)


LIVE_TABLE, HISTORY_TABLE = "botwarden_live", "botwarden_history"
"""Live records and history apart: loading the live state, and checking its table at
open, cost what the bot holds now, never what it has done."""
LEGACY_TABLE = "botwarden_records"
"""Layout 1's one table, read as it is by a reader (a writer renames it `LIVE_TABLE`)."""


def table_of(collection: str) -> str:
    return LIVE_TABLE if collection in LIVE else HISTORY_TABLE


@dataclass(frozen=True)
class Statements:
    """The DML every SQL backend runs, in its own parameter style. The per-record
    statements come by table (`table_of`)."""

    claim_flow: str
    flows: str
    epoch: str
    claim_epoch: str
    read_version: str
    write_version: str
    upgrade_version: str
    intents_of_every_flow: str
    move_history: tuple[str, ...]
    load: dict[str, str]
    upsert: dict[str, str]
    delete: dict[str, str]
    get: dict[str, str]
    scan: dict[str, str]
    count: dict[str, str]

    @classmethod
    def for_dialect(cls, p: str, doc_in: str = "{p}", doc_out: str = "doc") -> Statements:
        doc = doc_in.format(p=p)
        tables = (LIVE_TABLE, HISTORY_TABLE, LEGACY_TABLE)
        where = f"WHERE flow_id = {p} AND collection = {p}"
        return cls(
            # The flow row is the change's fence: claimed (and so locked, on a server)
            # unchanged, and the caller compares the epoch returned with its own before
            # committing.
            claim_flow=(
                f"INSERT INTO botwarden_flows (flow_id, epoch) VALUES ({p}, 0) "
                "ON CONFLICT (flow_id) DO UPDATE SET epoch = botwarden_flows.epoch"
                " RETURNING epoch"
            ),
            # A new epoch, above every one granted and at least the one asked for.
            claim_epoch=(
                f"INSERT INTO botwarden_flows (flow_id, epoch) VALUES ({p}, {p}) "
                "ON CONFLICT (flow_id) DO UPDATE SET epoch = CASE "
                "WHEN excluded.epoch > botwarden_flows.epoch THEN excluded.epoch "
                "ELSE botwarden_flows.epoch + 1 END RETURNING epoch"
            ),
            flows="SELECT flow_id FROM botwarden_flows ORDER BY flow_id",
            epoch=f"SELECT epoch FROM botwarden_flows WHERE flow_id = {p}",
            read_version="SELECT version FROM botwarden_schema WHERE id = 1",
            write_version=(
                f"INSERT INTO botwarden_schema (id, version) VALUES (1, {p}) "
                "ON CONFLICT (id) DO NOTHING"
            ),
            upgrade_version=f"UPDATE botwarden_schema SET version = {p} WHERE id = 1",
            intents_of_every_flow=(
                f"SELECT flow_id, key, {doc_out} FROM {LIVE_TABLE} WHERE collection = 'intents'"
            ),
            # Version 1 kept fills and events with the live records (same rows, same
            # columns): moved over whole.
            move_history=(
                f"INSERT INTO {HISTORY_TABLE} SELECT * FROM {LIVE_TABLE}"
                " WHERE collection IN ('fills', 'events')",
                f"DELETE FROM {LIVE_TABLE} WHERE collection IN ('fills', 'events')",
            ),
            load={
                t: f"SELECT collection, key, {doc_out} FROM {t} WHERE flow_id = {p}" for t in tables
            },
            upsert={
                t: f"INSERT INTO {t} (flow_id, collection, key, doc) "
                f"VALUES ({p}, {p}, {p}, {doc}) "
                "ON CONFLICT (flow_id, collection, key) DO UPDATE SET doc = excluded.doc"
                for t in tables
            },
            delete={t: f"DELETE FROM {t} {where} AND key = {p}" for t in tables},
            get={t: f"SELECT key, {doc_out} FROM {t} {where} AND key = {p}" for t in tables},
            scan={t: f"SELECT key, {doc_out} FROM {t} {where} AND key >= {p}" for t in tables},
            count={t: f"SELECT count(*) FROM {t} {where}" for t in tables},
        )


def scan_statement(
    statements: Statements, p: str, table: str, within: KeyRange
) -> tuple[str, tuple[Any, ...]]:
    """The scan statement for this range, and its parameters after (flow, collection):
    clauses appended, so every backend keeps one statement per shape."""
    statement, params = statements.scan[table], (within.start,)
    if within.stop is not None:
        statement, params = f"{statement} AND key < {p}", (*params, within.stop)
    statement += " ORDER BY key DESC" if within.newest_first else " ORDER BY key"
    if within.limit is not None:
        statement, params = f"{statement} LIMIT {p}", (*params, within.limit)
    return statement, params


def upgrade_moves(rows: Iterable[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
    """Version 1 to 2, from (flow, key, intent) rows: those of the intents that move to
    `past_intents`."""
    by_flow: dict[str, dict[str, Any]] = {}
    for flow_id, key, doc in rows:
        by_flow.setdefault(flow_id, {})[key] = doc
    return [
        (flow, key, intents[key])
        for flow, intents in by_flow.items()
        for key in past_intent_keys(intents)
    ]


def split_ops(flow_id: str, change: Change) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows for the upsert and delete statements, in the change's order per kind.

    A Put followed by a Delete of the same key (or the reverse) within one change is
    resolved here, so running all upserts then all deletes means the same as running
    the ops in order.
    """
    last: dict[tuple[str, str], Put | None] = {}
    for op in change.ops:
        last[(op.collection, op.key)] = op if isinstance(op, Put) else None
    upserts, deletes = [], []
    for (collection, key), op in last.items():
        if op is None:
            deletes.append((flow_id, collection, key))
        else:
            upserts.append((flow_id, collection, key, op.value))
    return upserts, deletes


def fenced(flow_id: str, change: Change, stored_epoch: int) -> FencedOut | None:
    """The error to raise if the change is not at the flow's epoch, else None."""
    if change.epoch is not None and stored_epoch != change.epoch:
        return FencedOut(flow_id, change.epoch, stored_epoch)
    return None


def snapshot_from_rows(rows: Iterable[tuple[str, str, str]]) -> Snapshot:
    snapshot = empty_snapshot()
    for collection, key, doc in rows:
        if collection in snapshot:
            snapshot[collection][key] = doc
        elif collection not in HISTORY:  # (history in the live table: layout 1, read)
            log.warning("ignoring record in unknown collection %r", collection)
    return snapshot


class CorruptionFound(Exception):
    """Raised by an integrity check that found damage without the driver raising."""


class EmbeddedSqlStore:
    """A DB-API (sqlite3, duckdb) store in one file, shared by the two embedded backends.

    Subclasses say how to connect, which DDL to run, and which of their driver's
    errors mean "this file is corrupt" as opposed to "busy" or "locked".

    `readonly` is for commands that only look (`state show`, `status`): such a store
    never creates, lays out, upgrades or moves a file, and refuses every write. With
    `check=False` as well (a look at every bot, again and again: `status`, the API),
    it runs no integrity check at open either; damage in what it reads is reported by
    that read, the file left as it is. The bot's own open checks, and moves a damaged
    file aside.
    """

    durable = True
    backend = ""
    companions: tuple[str, ...] = ()
    statements = Statements.for_dialect("?")
    ddl: tuple[str, ...] = ()
    steady_companions: tuple[str, ...] = ()
    """Companions that stay the same file while the store is open (SQLite's -wal, where
    a commit lands first): one deleted or replaced loses the writes as surely as the
    main file would."""

    def __init__(self, path: Path, readonly: bool = False, check: bool = True) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.check = check or not readonly  # (a writer always checks)
        self._legacy = False
        """Opened read-only on layout 1: its history is still in the live table."""
        self._conn: Any = None
        self._watched = [
            self.path.with_name(self.path.name + suffix) for suffix in ("", *self.steady_companions)
        ]
        self._open_files: dict[Path, FileId] = {}

    def describe(self) -> str:
        return f"{self.backend} {self.path}"

    # -- what subclasses provide ---------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    driver_errors: tuple[type[Exception], ...] = ()
    """The driver's own exceptions: anything else escaping `open` is a bug, not a message."""

    def _corruption(self, error: Exception) -> str | None:
        """Why `error` means the file is corrupt, or None if it means something else."""
        raise NotImplementedError

    def _check_integrity(self) -> None:
        """A cheap whole-file check run at open; raises `CorruptionFound` if damaged."""

    # -- lifecycle -----------------------------------------------------------------
    async def open(self) -> None:
        created = not self.path.exists()
        if created and self.readonly:
            raise StateError(f"state file {self.path} does not exist")
        if created:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif refuse_another_format(self.path, self.backend) == "empty" and self.readonly:
            # A writer takes an empty file for a new database; a reader says what it saw.
            raise StateCorruptError(
                self.path,
                "the file is empty: a bot started on it looks for its history at the venue"
                " and, finding it, rebuilds its state from there",
                None,
            )
        try:
            self._conn = self._connect()
            if self.check:
                self._check_integrity()
            self._prepare_layout()
        except StateError:
            self._close_quietly()
            raise
        except (CorruptionFound, *self.driver_errors) as error:
            self._close_quietly()
            reason = str(error) if isinstance(error, CorruptionFound) else self._corruption(error)
            if reason is None:
                raise StoreUnavailable(f"{self.describe()}: cannot open: {error}") from error
            moved_to = None if self.readonly else quarantine(self.path, self.companions)
            raise StateCorruptError(self.path, reason, moved_to) from error
        except BaseException:
            self._close_quietly()  # an upgrade cut short: the file stays free to open
            raise
        if created:
            fsync_dir(self.path.parent)
        self._open_files = {}
        self._check_files()

    def _check_files(self) -> None:
        """Raise `StateLost` if the file, or a steady companion, is no longer the one
        open: deleted or replaced, a write would land where nobody reads it again.
        One stat per file."""
        for path in self._watched:
            now, known = file_id(path), self._open_files.get(path)
            if known is None:
                if now is not None:  # first seen (a WAL made by the first write)
                    self._open_files[path] = now
            elif now != known:
                what = "was deleted" if now is None else "was replaced by another file"
                raise StateLost(path, what)

    def _prepare_layout(self) -> None:
        found = self._stored_version()
        if found is not None and found > SCHEMA_VERSION:
            raise SchemaVersionError(self.describe(), found, SCHEMA_VERSION)
        if found is None and self.readonly:
            raise StateError(
                f"{self.describe()}: holds no botwarden state (no botwarden_schema table);"
                " left as it is"
            )
        if found is None:
            cursor = self._conn.cursor()
            cursor.execute("BEGIN")
            for statement in self.ddl:
                cursor.execute(statement)
            cursor.execute(self.statements.write_version, (SCHEMA_VERSION,))
            cursor.execute("COMMIT")
        elif found < SCHEMA_VERSION and not self.readonly:
            self._upgrade()
        # Read as it is: a reader never upgrades, and layout 1 has no history table.
        self._legacy = found is not None and found < SCHEMA_VERSION and self.readonly

    def _upgrade(self) -> None:
        """Version 1 to 2 in one transaction: the live table renamed (see the module's
        doc), the history table made, fills and events moved into it, and terminal
        intents moved there as `past_intents`."""
        with self._transaction() as cursor:
            cursor.execute(f"ALTER TABLE {LEGACY_TABLE} RENAME TO {LIVE_TABLE}")
            for statement in self.ddl:  # (IF NOT EXISTS: the history table is new)
                cursor.execute(statement)
            for statement in self.statements.move_history:
                cursor.execute(statement)
            rows = cursor.execute(self.statements.intents_of_every_flow).fetchall()
            for flow_id, key, doc in upgrade_moves(rows):
                self._upsert(cursor, (flow_id, "past_intents", key, doc))
                self._delete(cursor, (flow_id, "intents", key))
            cursor.execute(self.statements.upgrade_version, (SCHEMA_VERSION,))
        log.info("%s: upgraded to layout version %d", self.describe(), SCHEMA_VERSION)

    def _table(self, collection: str) -> str:
        return LEGACY_TABLE if self._legacy else table_of(collection)

    def _stored_version(self) -> int | None:
        if not self._has_table("botwarden_schema"):
            return None
        row = self._conn.execute(self.statements.read_version).fetchone()
        return None if row is None else int(row[0])

    def _has_table(self, name: str) -> bool:
        raise NotImplementedError

    def _close_quietly(self) -> None:
        if self._conn is not None:
            # Already failing or closing: the first error is the one that matters.
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    async def close(self) -> None:
        self._close_quietly()

    # -- reads and writes ------------------------------------------------------------
    @contextmanager
    def _errors(self) -> Iterator[None]:
        """The driver's errors as the store's, in one line naming the file (a full disk,
        a file another process holds locked)."""
        try:
            yield
        except self.driver_errors as error:
            reason = self._corruption(error) if self.readonly else None
            if reason is not None:  # (a writer's read says what it met: its open checked)
                raise StateCorruptError(self.path, reason, None) from error
            raise StoreUnavailable(f"{self.describe()}: {error}") from error

    async def load(self, flow_id: str) -> Snapshot:
        with self._errors():
            table = LEGACY_TABLE if self._legacy else LIVE_TABLE
            rows = self._conn.execute(self.statements.load[table], (flow_id,)).fetchall()
        return snapshot_from_rows(rows)

    async def get(self, flow_id: str, collection: str, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        statement = self.statements.get[self._table(collection)]
        with self._errors():
            for key in keys:
                row = self._conn.execute(statement, (flow_id, collection, key)).fetchone()
                if row is not None:
                    found[row[0]] = row[1]
        return found

    async def scan(self, flow_id: str, collection: str, within: KeyRange = EVERY) -> Records:
        statement, more = scan_statement(self.statements, "?", self._table(collection), within)
        with self._errors():
            rows = self._conn.execute(statement, (flow_id, collection, *more)).fetchall()
        return [(key, doc) for key, doc in rows]

    async def apply(self, flow_id: str, change: Change) -> None:
        refuse_if_readonly(self)
        with self._errors():
            self._apply(flow_id, change)
        # After the commit, not before: a file lost between a check and the commit
        # would take this write with it, and the caller would count it as durable.
        self._check_files()

    def _apply(self, flow_id: str, change: Change) -> None:
        upserts, deletes = split_ops(flow_id, change)
        with self._transaction() as cursor:
            if error := fenced(flow_id, change, self._claim_flow(cursor, flow_id)):
                raise error
            # Encoding happens here, inside the transaction: a value that cannot be
            # encoded aborts the whole change.
            for row in upserts:
                self._upsert(cursor, (*row[:3], encode(row[3])))
            for row in deletes:
                self._delete(cursor, row)

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A cursor inside one write transaction: committed if the block ends cleanly,
        rolled back if it raises."""
        cursor = self._conn.cursor()
        cursor.execute(self._begin)
        try:
            yield cursor
            cursor.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (a full disk) may have rolled back already; the error
            # that matters is the first one.
            with contextlib.suppress(*self.driver_errors):
                cursor.execute("ROLLBACK")
            raise

    _begin = "BEGIN"

    def _claim_flow(self, cursor: Any, flow_id: str) -> int:
        """Register the flow if new; its stored epoch.

        Read, not upserted: an upsert rewrote the flow's row (one more page in SQLite's
        WAL to sync, and twice an UPDATE's CPU in DuckDB) at every change. Race-free:
        the transaction holds the file's write lock (SQLite's BEGIN IMMEDIATE; one
        DuckDB process)."""
        row = cursor.execute(self.statements.epoch, (flow_id,)).fetchone()
        if row is None:
            cursor.execute("INSERT INTO botwarden_flows (flow_id, epoch) VALUES (?, 0)", (flow_id,))
            return 0
        return int(row[0])

    def _upsert(self, cursor: Any, row: tuple[str, str, str, str]) -> None:
        cursor.execute(self.statements.upsert[table_of(row[1])], row)

    def _delete(self, cursor: Any, row: tuple[str, str, str]) -> None:
        cursor.execute(self.statements.delete[table_of(row[1])], row)

    async def count(self, flow_id: str, collection: str) -> int:
        with self._errors():
            statement = self.statements.count[self._table(collection)]
            row = self._conn.execute(statement, (flow_id, collection)).fetchone()
        return int(row[0])

    async def flows(self) -> list[str]:
        with self._errors():
            return [row[0] for row in self._conn.execute(self.statements.flows).fetchall()]

    async def epoch(self, flow_id: str) -> int:
        with self._errors():
            row = self._conn.execute(self.statements.epoch, (flow_id,)).fetchone()
        return 0 if row is None else int(row[0])

    async def claim_epoch(self, flow_id: str, at_least: int = 0) -> int:
        refuse_if_readonly(self)
        with self._errors(), self._transaction() as cursor:
            epoch = max(self._claim_flow(cursor, flow_id) + 1, at_least)
            cursor.execute(
                "UPDATE botwarden_flows SET epoch = ? WHERE flow_id = ?", (epoch, flow_id)
            )
        self._check_files()
        return epoch
