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

import contextlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from botwarden.errors import SchemaVersionError, StateError, StoreUnavailable
from botwarden.redact import redact_url, scrub
from botwarden.state.base import (
    EVERY,
    SCHEMA_VERSION,
    Change,
    KeyRange,
    Records,
    Snapshot,
    encode,
    refuse_if_readonly,
)
from botwarden.state.lease import Holder, LeaseHeld, LeaseLost, LeaseRecord
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
    # A bot's lease (state/lease.py): its holder and times, by the server's clock.
    "CREATE TABLE IF NOT EXISTS botwarden_leases ("
    " flow_id TEXT PRIMARY KEY, epoch BIGINT NOT NULL, host TEXT NOT NULL,"
    " pid INTEGER NOT NULL, token TEXT NOT NULL, acquired_at TIMESTAMPTZ NOT NULL,"
    " renewed_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL,"
    " released BOOLEAN NOT NULL DEFAULT false)",
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
        refuse_if_readonly(self)
        upserts, deletes = split_ops(flow_id, change)
        with self._errors("lost during a write, which may or may not have committed"):
            conn = await self._connection()
            async with conn.transaction():
                cursor = await conn.execute(_STATEMENTS.claim_flow, (flow_id,))
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

    async def claim_epoch(self, flow_id: str, at_least: int = 0) -> int:
        refuse_if_readonly(self)
        with self._errors("lost while granting an epoch, which may or may not have committed"):
            conn = await self._connection()
            cursor = await conn.execute(_STATEMENTS.claim_epoch, (flow_id, max(at_least, 1)))
            return int((await cursor.fetchone())[0])


_LEASE = (
    "SELECT epoch, host, pid, token, acquired_at, renewed_at, expires_at, released,"
    " clock_timestamp() FROM botwarden_leases WHERE flow_id = %s"
)


class PostgresLeases:
    """Bots' leases in PostgreSQL, in `botwarden_leases` beside their state. Acquiring
    locks the bot's flow row first (as every change of its state does), so a grant,
    a renewal and a write of the state are serialised; every time is the server's
    `clock_timestamp()`.

    On its own store object (its own connection): a renewal never runs inside, nor
    waits for, a transaction of the bot's."""

    shared = True

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def describe(self) -> str:
        return self.store.describe()

    async def open(self) -> None:
        await self.store.open()

    async def close(self) -> None:
        await self.store.close()

    async def acquire(
        self, bot_id: str, holder: Holder, ttl: float, *, takeover: bool = False, at_least: int = 0
    ) -> int:
        store = self.store
        refuse_if_readonly(store)
        with store._errors("lost while acquiring the lease, which may or may not have committed"):
            conn = await store._connection()
            async with conn.transaction():
                cursor = await conn.execute(_STATEMENTS.claim_flow, (bot_id,))
                stored = (await cursor.fetchone())[0]
                # FOR UPDATE: a renewal committing after this read would be overwritten
                # by the grant below, and its holder told it still holds the bot.
                lease = await conn.execute(_LEASE + " FOR UPDATE", (bot_id,))
                held = _record(bot_id, await lease.fetchone())
                theirs = held is not None and held.live and held.holder.token != holder.token
                if theirs and not takeover:
                    raise LeaseHeld(held)
                epoch = max(stored + 1, at_least)
                await conn.execute(
                    "UPDATE botwarden_flows SET epoch = %s WHERE flow_id = %s", (epoch, bot_id)
                )
                # (acquired again by its live holder: held since it was first acquired)
                keeps = held is not None and held.live and held.holder.token == holder.token
                await conn.execute(
                    "INSERT INTO botwarden_leases (flow_id, epoch, host, pid, token, acquired_at,"
                    " renewed_at, expires_at) VALUES (%s, %s, %s, %s, %s, clock_timestamp(),"
                    " clock_timestamp(), clock_timestamp() + make_interval(secs => %s))"
                    " ON CONFLICT (flow_id) DO UPDATE SET epoch = excluded.epoch,"
                    " host = excluded.host, pid = excluded.pid, token = excluded.token,"
                    " acquired_at = CASE WHEN %s THEN botwarden_leases.acquired_at"
                    " ELSE excluded.acquired_at END, renewed_at = excluded.renewed_at,"
                    " expires_at = excluded.expires_at, released = false",
                    (bot_id, epoch, holder.host, holder.pid, holder.token, ttl, keeps),
                )
        return epoch

    async def renew(self, bot_id: str, holder: Holder, epoch: int, ttl: float) -> None:
        await self._renew(bot_id, holder, epoch, ttl)

    async def release(self, bot_id: str, holder: Holder, epoch: int) -> None:
        with contextlib.suppress(LeaseLost):  # (someone else's by now: nothing to let go)
            await self._renew(bot_id, holder, epoch, None)

    async def _renew(self, bot_id: str, holder: Holder, epoch: int, ttl: float | None) -> None:
        """Renewed for `ttl` seconds, or let go (None), if still `holder`'s at `epoch`."""
        change = (
            "released = true, expires_at = clock_timestamp()"
            if ttl is None
            else "renewed_at = clock_timestamp(),"
            " expires_at = clock_timestamp() + make_interval(secs => %s)"
        )
        rows = await self.store._query(
            f"UPDATE botwarden_leases AS lease SET {change} FROM botwarden_flows AS flow"
            " WHERE lease.flow_id = %s AND lease.token = %s AND lease.epoch = %s"
            " AND NOT lease.released AND flow.flow_id = lease.flow_id AND flow.epoch = %s"
            " RETURNING lease.epoch",
            (*(() if ttl is None else (ttl,)), bot_id, holder.token, epoch, epoch),
        )
        if not rows:
            raise LeaseLost(bot_id, epoch, await self.read(bot_id))

    async def read(self, bot_id: str) -> LeaseRecord | None:
        if not await self._has_leases():
            return None
        rows = await self.store._query(_LEASE, (bot_id,))
        return _record(bot_id, rows[0]) if rows else None

    async def every(self) -> list[LeaseRecord]:
        if not await self._has_leases():
            return []
        rows = await self.store._query(
            "SELECT flow_id, epoch, host, pid, token, acquired_at, renewed_at, expires_at,"
            " released, clock_timestamp() FROM botwarden_leases ORDER BY flow_id"
        )
        return [record for row in rows if (record := _record(row[0], row[1:])) is not None]

    async def _has_leases(self) -> bool:
        """False on a layout written before leases (read-only opens create nothing)."""
        rows = await self.store._query("SELECT to_regclass('botwarden_leases') IS NOT NULL")
        return bool(rows and rows[0][0])


def _record(bot_id: str, row: Sequence[Any] | None) -> LeaseRecord | None:
    if row is None:
        return None
    epoch, host, pid, token, acquired, renewed, expires, released, now = row
    return LeaseRecord(
        bot_id=bot_id,
        epoch=int(epoch),
        holder=Holder(host, int(pid), token),
        acquired_at=acquired,
        renewed_at=renewed,
        expires_at=expires,
        read_at=now,
        released=bool(released),
    )


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
