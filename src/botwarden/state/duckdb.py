"""`duckdb`: the embedded analytical engine. One process at a time may open the file."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botwarden.state.sql import (
    HISTORY_TABLE,
    LEGACY_TABLE,
    LIVE_TABLE,
    EmbeddedSqlStore,
    table_of,
)


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError as error:  # pragma: no cover - depends on the install
        from botwarden.errors import StoreUnavailable

        raise StoreUnavailable(
            "state backend 'duckdb' needs the duckdb package: pip install 'botwarden[duckdb]'"
        ) from error
    return duckdb


LOCK_PATIENCE = 5.0
"""Seconds an open waits for another process to let go of the file."""

_CORRUPTION_SIGNS = (
    "not a valid DuckDB database file",  # a damaged header
    "Corrupt database file",  # a block whose checksum does not match
    "Could not read enough bytes",  # a truncated file
)


def _record_id(flow_id: str, collection: str, key: str) -> str:
    # Unambiguous: neither a bot id nor a collection name can contain "/".
    return f"{flow_id}/{collection}/{key}"


class DuckdbStore(EmbeddedSqlStore):
    backend = "duckdb"
    companions = (".wal",)
    # No steady companion: DuckDB removes its .wal at every checkpoint and makes a new one.
    _begin = "BEGIN TRANSACTION"
    ddl = (
        "CREATE TABLE IF NOT EXISTS botwarden_schema ("
        " id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS botwarden_flows ("
        " flow_id VARCHAR PRIMARY KEY, epoch BIGINT NOT NULL DEFAULT 0)",
        # A one-column key: DuckDB looks a row up through its index only for an equality
        # on a single column; with the three-column key every update scanned the table.
        *(
            f"CREATE TABLE IF NOT EXISTS {table} ("
            " id VARCHAR PRIMARY KEY, flow_id VARCHAR NOT NULL, collection VARCHAR NOT NULL,"
            " key VARCHAR NOT NULL, doc VARCHAR NOT NULL)"
            for table in (LIVE_TABLE, HISTORY_TABLE)
        ),
    )

    def __init__(self, path: Path | str, readonly: bool = False, check: bool = True) -> None:
        super().__init__(Path(path), readonly, check)
        self._driver = _duckdb()
        self.driver_errors = (self._driver.Error,)

    def _connect(self) -> Any:
        # Another process may hold the file for a moment (`botwarden status` reading a
        # stopped bot's state): wait it out rather than fail a start.
        deadline = time.monotonic() + LOCK_PATIENCE
        while True:
            try:
                return self._driver.connect(str(self.path), read_only=self.readonly)
            except self._driver.Error as error:
                if "Could not set lock" not in str(error) or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    # DuckDB's `INSERT ... ON CONFLICT DO UPDATE` costs ~2 ms of CPU per row here, twice
    # a plain UPDATE; a change usually updates records that exist.
    def _upsert(self, cursor: Any, row: tuple[str, str, str, str]) -> None:
        flow_id, collection, key, doc = row
        record_id = _record_id(flow_id, collection, key)
        # DuckDB answers an UPDATE with the count of rows it changed (cheaper than RETURNING).
        table = table_of(collection)
        (updated,) = cursor.execute(
            f"UPDATE {table} SET doc = ? WHERE id = ?", (doc, record_id)
        ).fetchone()
        if not updated:
            cursor.execute(
                f"INSERT INTO {table} (id, flow_id, collection, key, doc) VALUES (?, ?, ?, ?, ?)",
                (record_id, *row),
            )

    def _delete(self, cursor: Any, row: tuple[str, str, str]) -> None:
        cursor.execute(f"DELETE FROM {table_of(row[1])} WHERE id = ?", (_record_id(*row),))

    async def get(self, flow_id: str, collection: str, keys: Sequence[str]) -> dict[str, str]:
        # By the one-column key, the only lookup DuckDB answers from its index.
        found: dict[str, str] = {}
        with self._errors():
            for key in keys:
                row = self._conn.execute(
                    f"SELECT doc FROM {self._table(collection)} WHERE id = ?",
                    (_record_id(flow_id, collection, key),),
                ).fetchone()
                if row is not None:
                    found[key] = row[0]
        return found

    def _check_integrity(self) -> None:
        # DuckDB reads blocks lazily and opens a truncated file without complaint; a
        # scan of every stored byte makes it verify each block (and its checksum) now.
        # The live tables only, as SQLite's check: a start costs what the bot holds.
        for table, columns in (
            ("botwarden_flows", "length(flow_id) + epoch"),
            *(
                (table, "length(flow_id) + length(collection) + length(key) + length(doc)")
                for table in (LIVE_TABLE, LEGACY_TABLE)
            ),
        ):
            if self._has_table(table):
                self._conn.execute(f"SELECT sum({columns}) FROM {table}").fetchall()

    def _corruption(self, error: Exception) -> str | None:
        # Only what DuckDB says of a damaged file: every other I/O error (a lock held by
        # another process, too many open files, a full disk) leaves the file alone.
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        if any(sign in message for sign in _CORRUPTION_SIGNS):
            return message
        return None

    def _has_table(self, name: str) -> bool:
        row = self._conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", (name,)
        ).fetchone()
        return bool(row[0])
