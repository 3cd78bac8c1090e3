"""A durable store as it is, read beside botwarden: to show that what only reads
(a look, a refused open) changed nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import FILE_BACKENDS, Backend


def as_stored(backend: Backend) -> Any:
    """A file store's file, byte for byte; everything under a Redis prefix or in a
    PostgreSQL schema (empty if nothing is there, not even the schema)."""
    if backend.name in FILE_BACKENDS:
        return Path(backend.settings[backend.name]["path"]).read_bytes()
    if backend.name == "redis":
        return _redis_keys(backend.settings["redis"])
    return _postgres_schema(backend.settings["postgres"])


def _redis_keys(settings: dict[str, Any]) -> dict[str, Any]:
    """Each key's type, serialised value (DUMP: byte for byte) and time to live."""
    import redis

    client = redis.Redis.from_url(settings["url"])
    try:
        return {
            key: (client.type(key), client.dump(key), client.pttl(key))
            for key in client.scan_iter(match=f"{settings['key_prefix']}:*", count=1000)
        }
    finally:
        client.close()


def _postgres_schema(settings: dict[str, Any]) -> dict[str, Any]:
    """The schema, each table's columns (types, collations) and indexes, and each row
    with its `xmin` and `ctid`: a row rewritten with the same values shows too."""
    import psycopg

    schema = settings["schema"]
    found: dict[str, Any] = {}
    with psycopg.connect(settings["dsn"], autocommit=True) as conn:
        owner = conn.execute(
            "SELECT schema_owner FROM information_schema.schemata WHERE schema_name = %s",
            (schema,),
        ).fetchone()
        if owner is None:
            return found
        found["schema"] = owner[0]
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,),
        ).fetchall()
        for (table,) in tables:
            found[f"{table} columns"] = conn.execute(
                "SELECT column_name, data_type, collation_name, is_nullable, column_default"
                " FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (schema, table),
            ).fetchall()
            found[f"{table} indexes"] = conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s"
                " ORDER BY indexname",
                (schema, table),
            ).fetchall()
            found[f"{table} rows"] = sorted(
                conn.execute(
                    f'SELECT xmin::text, ctid::text, t::text FROM "{schema}"."{table}" t'
                ).fetchall()
            )
    return found
