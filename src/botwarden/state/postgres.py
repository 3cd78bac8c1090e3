"""`postgres`: shared state in PostgreSQL (psycopg 3, async).

The layout of `sql.py`, with documents as `jsonb` so operators can query them. A
change is one transaction; claiming the flow row first locks it, so two writers of
the same bot are serialised and the fencing check cannot race. Durability is the
server's (`synchronous_commit = on`, the default).
"""

from __future__ import annotations

import logging
from typing import Any

from botwarden.errors import SchemaVersionError, StoreUnavailable
from botwarden.redact import redact_url
from botwarden.state.base import SCHEMA_VERSION, Change, Snapshot, encode
from botwarden.state.sql import Statements, fenced, snapshot_from_rows, split_ops

log = logging.getLogger(__name__)

_STATEMENTS = Statements.for_dialect("%s", doc_in="{p}::jsonb", doc_out="doc::text")

_DDL = (
    "CREATE TABLE IF NOT EXISTS botwarden_schema ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS botwarden_flows ("
    " flow_id TEXT PRIMARY KEY, epoch BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS botwarden_records ("
    " flow_id TEXT NOT NULL, collection TEXT NOT NULL, key TEXT NOT NULL,"
    " doc JSONB NOT NULL, PRIMARY KEY (flow_id, collection, key))",
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

    def __init__(self, dsn: str, schema: str = "public", timeout: float = 10.0) -> None:
        self._dsn = dsn
        self._schema = schema
        self._timeout = timeout
        self._conn: Any = None

    def describe(self) -> str:
        return f"postgres {redact_url(self._dsn)} (schema {self._schema!r})"

    async def open(self) -> None:
        psycopg = _psycopg()
        try:
            self._conn = await psycopg.AsyncConnection.connect(
                self._dsn, autocommit=True, connect_timeout=int(self._timeout)
            )
            await self._prepare_layout(psycopg)
        except psycopg.Error as error:
            await self.close()
            # psycopg's message names host, port and user, never the password.
            reason = (
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            )
            raise StoreUnavailable(f"{self.describe()}: cannot open: {reason}") from None
        except SchemaVersionError:
            await self.close()
            raise

    async def _prepare_layout(self, psycopg: Any) -> None:
        schema = psycopg.sql.Identifier(self._schema)
        async with self._conn.transaction():
            # Many bots may start at once against a fresh database: one creates the layout.
            await self._conn.execute("SELECT pg_advisory_xact_lock(hashtext('botwarden_layout'))")
            await self._conn.execute(
                psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema)
            )
            # A session-level SET (not LOCAL): it outlives this transaction.
            await self._conn.execute(psycopg.sql.SQL("SET search_path TO {}").format(schema))
            cursor = await self._conn.execute("SELECT to_regclass('botwarden_schema')")
            exists = (await cursor.fetchone())[0] is not None
            if exists:
                cursor = await self._conn.execute(_STATEMENTS.read_version)
                row = await cursor.fetchone()
                if row is not None and row[0] > SCHEMA_VERSION:
                    raise SchemaVersionError(self.describe(), row[0], SCHEMA_VERSION)
            for statement in _DDL:
                await self._conn.execute(statement)
            await self._conn.execute(_STATEMENTS.write_version, (SCHEMA_VERSION,))

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def load(self, flow_id: str) -> Snapshot:
        cursor = await self._conn.execute(_STATEMENTS.load, (flow_id,))
        return snapshot_from_rows(await cursor.fetchall())

    async def apply(self, flow_id: str, change: Change) -> None:
        upserts, deletes = split_ops(flow_id, change)
        async with self._conn.transaction():
            cursor = await self._conn.execute(_STATEMENTS.claim_flow, (flow_id, change.epoch or 0))
            if error := fenced(flow_id, change, (await cursor.fetchone())[0]):
                raise error
            async with self._conn.cursor() as batch:
                if upserts:
                    # Encoded as the rows are sent: a value that cannot be encoded
                    # aborts the transaction halfway, and nothing of it commits.
                    await batch.executemany(
                        _STATEMENTS.upsert, ((*row[:3], encode(row[3])) for row in upserts)
                    )
                if deletes:
                    await batch.executemany(_STATEMENTS.delete, deletes)

    async def flows(self) -> list[str]:
        cursor = await self._conn.execute(_STATEMENTS.flows)
        return [row[0] for row in await cursor.fetchall()]

    async def epoch(self, flow_id: str) -> int:
        cursor = await self._conn.execute(_STATEMENTS.epoch, (flow_id,))
        row = await cursor.fetchone()
        return 0 if row is None else int(row[0])
