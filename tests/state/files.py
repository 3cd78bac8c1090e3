"""State files to damage, replace and compare, for the tests of the file backends."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from botwarden.state.base import Change, Put, StateStore
from botwarden.state.factory import open_store
from botwarden.state.settings import StateSettings
from tests.conftest import Backend


def file_backend_at(name: str, path: Path) -> Backend:
    return Backend(name, {"backend": name, name: {"path": str(path)}}, path.parent)


def state_file(backend: Backend) -> Path:
    return Path(backend.settings[backend.name]["path"])


def read_only_store(backend: Backend) -> StateStore:
    settings = StateSettings.model_validate(backend.settings)
    return open_store(settings, "bot", backend.base_dir, readonly=True)


async def write_some_state(backend: Backend, flow_id: str = "bot") -> None:
    store = backend.store()
    await store.open()
    ops = [Put("positions", f"p{i}", {"i": i, "pad": "x" * 500}) for i in range(200)]
    await store.apply(flow_id, Change(ops))
    await store.close()


def fold_wal(backend: Backend) -> None:
    """Fold the WAL into the main file, so damage to the file hits the real database."""
    path = state_file(backend)
    if backend.name == "sqlite":
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if backend.name == "duckdb":
        import duckdb

        with duckdb.connect(str(path)) as conn:
            conn.execute("CHECKPOINT")


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def set_aside_copies(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.corrupt-*"))


# -- damage, each keeping the file where it is ---------------------------------------
def garble(path: Path) -> None:
    """Junk in every 4 KiB page past the first, keeping the size: a bad disk or copy."""
    raw = bytearray(path.read_bytes())
    for offset in range(4096, len(raw) - 64, 4096):
        raw[offset : offset + 64] = b"\xde\xad\xbe\xef" * 16
    path.write_bytes(bytes(raw))


def zero_header(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[:100] = b"\0" * 100
    path.write_bytes(bytes(raw))


def truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")
