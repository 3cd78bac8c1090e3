"""`postgres`: shared state in PostgreSQL (psycopg 3, async).

The layout of `sql.py`, with documents as `jsonb` so operators can query them. A
change is one transaction; claiming the flow row first locks it, so two writers of
the same bot are serialised and the fencing check cannot race. Durability is the
server's (`synchronous_commit = on`, the default).

Opened `readonly` (commands that only look), it creates no schema or table, writes no
version, upgrades nothing, and its session is read-only (`default_transaction_read_only`):
the server itself refuses a write. An older layout is read as it is (layout 1: one
`botwarden_records` table for all), and a schema without the layout holds no bots.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from botwarden.errors import SchemaVersionError, StateError, StoreUnavailable
from botwarden.redact import redact_url, scrub
from botwarden.state.base import EVERY, SCHEMA_VERSION, Change, KeyRange, Records, Snapshot, encode
from botwarden.state.sql import (
    HISTORY_TABLE,
    LEGACY_TABLE,
    LIVE_TABLE,
    Statements,
    fenced,
    scan_statement,
    snapshot_from_rows,
    split_ops,
    table_of,
    upgrade_moves,
)

log = logging.getLogger(__name__)

_STATEMENTS = Statements.for_dialect("%s", doc_in="{p}::jsonb", doc_out="doc::text")

_DDL = (
    "CREATE TABLE IF NOT EXISTS botwarden_schema ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS botwarden_flows ("
    " flow_id TEXT PRIMARY KEY, epoch BIGINT NOT NULL DEFAULT 0)",
    # Keys compare byte by byte (COLLATE "C"), as in every other backend: a history
    # scan is a range of the primary key, in the order the keys were made to sort,
    # whatever the database's own collation.
    *(
        f"CREATE TABLE IF NOT EXISTS {table} ("
        ' flow_id TEXT NOT NULL, collection TEXT NOT NULL, key TEXT COLLATE "C" NOT NULL,'
        " doc JSONB NOT NULL, PRIMARY KEY (flow_id, collection, key))"
        for table in (LIVE_TABLE, HISTORY_TABLE)
    ),
)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as error:  # pragma: no cover - depends on the install
        raise StoreUnavailable(
            "state backend 'postgres' needs psycopg: pip install 'botwarden[postgres]'"
        ) from error
    return psycopg


class PostgresStore:
    durable = True

    def __init__(
        self, dsn: str, schema: str = "public", timeout: float = 10.0, readonly: bool = False
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._timeout = timeout
        self.readonly = readonly
        self._legacy = False
        """Opened read-only on layout 1: every record in its one table."""
        self._laid_out = True
        """False: opened read-only on a schema without the layout, so nothing stored."""
        self._conn: Any = None

    def describe(self) -> str:
        return f"postgres {redact_url(self._dsn)} (schema {self._schema!r})"

    async def open(self) -> None:
        try:
            with self._errors("cannot open"):
                await self._connect()
                if self.readonly:
                    await self._read_layout()
                else:
                    await self._prepare_layout()
        except BaseException:
            await self.close()
            raise

    async def _connect(self) -> Any:
        psycopg = _psycopg()
        self._conn = await psycopg.AsyncConnection.connect(
            self._dsn,
            autocommit=True,
            connect_timeout=int(self._timeout),
            # How operators find it in pg_stat_activity: botwarden, and whose schema.
            application_name=f"botwarden:{self._schema}"[:63],
        )
        # Session-level, so it holds for every later transaction on this connection.
        schema = psycopg.sql.Identifier(self._schema)
        if self.readonly:
            await self._conn.execute("SET default_transaction_read_only TO on")
        else:
            await self._conn.execute(
                psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema)
            )
        # (a schema that does not exist is no error here: a reader finds no layout in it)
        await self._conn.execute(psycopg.sql.SQL("SET search_path TO {}").format(schema))
        return self._conn

    async def _connection(self) -> Any:
        """The open connection, or a new one if the server dropped the last (a restart,
        a failover): a bot outlives its database's hiccups."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            return await self._connect()
        return self._conn

    @contextmanager
    def _errors(self, doing: str = "lost") -> Iterator[None]:
        """psycopg's errors as the store's, first line only. psycopg may echo a part of
        the DSN it could not parse, so the DSN's secrets are scrubbed from the text."""
        psycopg = _psycopg()
        try:
            yield
        except psycopg.OperationalError as error:
            reason = scrub(_first_line(error), self._dsn)
            raise StoreUnavailable(f"{self.describe()}: {doing}: {reason}") from None
        except psycopg.Error as error:
            raise StateError(f"{self.describe()}: {scrub(_first_line(error), self._dsn)}") from None

    async def _prepare_layout(self) -> None:
        async with self._conn.transaction():
            # Many bots may start at once against a fresh database: one creates the layout.
            await self._conn.execute("SELECT pg_advisory_xact_lock(hashtext('botwarden_layout'))")
            cursor = await self._conn.execute("SELECT to_regclass('botwarden_schema')")
            if (await cursor.fetchone())[0] is not None:
                cursor = await self._conn.execute(_STATEMENTS.read_version)
                row = await cursor.fetchone()
                if row is not None and row[0] > SCHEMA_VERSION:
                    raise SchemaVersionError(self.describe(), row[0], SCHEMA_VERSION)
                if row is not None and row[0] < SCHEMA_VERSION:
                    await self._upgrade()
            for statement in _DDL:
                await self._conn.execute(statement)
            await self._conn.execute(_STATEMENTS.write_version, (SCHEMA_VERSION,))

    async def _read_layout(self) -> None:
        """A reader's `_prepare_layout`: the version, refused if newer, nothing written.
        No lock: a writer lays out or upgrades in one transaction, seen whole or not."""
        cursor = await self._conn.execute("SELECT to_regclass('botwarden_schema')")
        self._laid_out = (await cursor.fetchone())[0] is not None
        if not self._laid_out:
            return
        cursor = await self._conn.execute(_STATEMENTS.read_version)
        row = await cursor.fetchone()
        found = SCHEMA_VERSION if row is None else row[0]
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(self.describe(), found, SCHEMA_VERSION)
        self._legacy = found < SCHEMA_VERSION

    def _table(self, collection: str) -> str:
        # Layout 1's keys sort by the database's collation, not byte by byte: the only
        # history of it read by range, its events, has keys of digits alone.
        return LEGACY_TABLE if self._legacy else table_of(collection)

    async def _upgrade(self) -> None:
        """Version 1 to 2, inside the layout's transaction (under its advisory lock, so
        one of many bots starting at once does it): the history table made, fills and
        events moved into it, and terminal intents moved there as `past_intents`."""
        await self._conn.execute(f"ALTER TABLE {LEGACY_TABLE} RENAME TO {LIVE_TABLE}")
        await self._conn.execute(f'ALTER TABLE {LIVE_TABLE} ALTER COLUMN key TYPE TEXT COLLATE "C"')
        for statement in (*_DDL, *_STATEMENTS.move_history):
            await self._conn.execute(statement)
        cursor = await self._conn.execute(_STATEMENTS.intents_of_every_flow)
        moves = upgrade_moves(await cursor.fetchall())
        async with self._conn.cursor() as batch:
            if moves:
                await batch.executemany(
                    _STATEMENTS.upsert[HISTORY_TABLE],
                    [(flow, "past_intents", key, doc) for flow, key, doc in moves],
                )
                await batch.executemany(
                    _STATEMENTS.delete[LIVE_TABLE],
                    [(flow, "intents", key) for flow, key, _ in moves],
                )
        await self._conn.execute(_STATEMENTS.upgrade_version, (SCHEMA_VERSION,))
        log.info("%s: upgraded to layout version %d", self.describe(), SCHEMA_VERSION)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _query(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not self._laid_out:
            return []
        with self._errors():
            conn = await self._connection()
            cursor = await conn.execute(statement, params)
            return await cursor.fetchall()

    async def load(self, flow_id: str) -> Snapshot:
        statement = _STATEMENTS.load[LEGACY_TABLE if self._legacy else LIVE_TABLE]
        return snapshot_from_rows(await self._query(statement, (flow_id,)))

    async def get(self, flow_id: str, collection: str, keys: Sequence[str]) -> dict[str, str]:
        if not keys:
            return {}
        rows = await self._query(
            f"SELECT key, doc::text FROM {self._table(collection)}"
            " WHERE flow_id = %s AND collection = %s AND key = ANY(%s)",
            (flow_id, collection, list(keys)),
        )
        return dict(rows)

    async def scan(self, flow_id: str, collection: str, within: KeyRange = EVERY) -> Records:
        statement, more = scan_statement(_STATEMENTS, "%s", self._table(collection), within)
        rows = await self._query(statement, (flow_id, collection, *more))
        return [(key, doc) for key, doc in rows]

    async def apply(self, flow_id: str, change: Change) -> None:
        if self.readonly:
            raise StateError(f"{self.describe()}: opened read-only, not for writing")
        upserts, deletes = split_ops(flow_id, change)
        with self._errors("lost during a write, which may or may not have committed"):
            conn = await self._connection()
            async with conn.transaction():
                cursor = await conn.execute(_STATEMENTS.claim_flow, (flow_id, change.epoch or 0))
                if error := fenced(flow_id, change, (await cursor.fetchone())[0]):
                    raise error
                async with conn.cursor() as batch:
                    for table in (LIVE_TABLE, HISTORY_TABLE):
                        mine = [row for row in upserts if table_of(row[1]) == table]
                        if mine:
                            # Encoded as the rows are sent: a value that cannot be
                            # encoded aborts the transaction halfway, and nothing of it
                            # commits.
                            await batch.executemany(
                                _STATEMENTS.upsert[table],
                                ((*row[:3], encode(row[3])) for row in mine),
                            )
                        gone = [row for row in deletes if table_of(row[1]) == table]
                        if gone:
                            await batch.executemany(_STATEMENTS.delete[table], gone)

    async def count(self, flow_id: str, collection: str) -> int:
        rows = await self._query(_STATEMENTS.count[self._table(collection)], (flow_id, collection))
        return int(rows[0][0]) if rows else 0

    async def flows(self) -> list[str]:
        return [row[0] for row in await self._query(_STATEMENTS.flows)]

    async def epoch(self, flow_id: str) -> int:
        rows = await self._query(_STATEMENTS.epoch, (flow_id,))
        return int(rows[0][0]) if rows else 0


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
