"""Several processes writing different bots to one store lose nothing.

Four writer processes run at once, each applying 150 numbered changes to its own bot,
against one Redis, one PostgreSQL schema, and (for the file backends that allow
several bots in one file) one shared file.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Backend, make_backend
from tests.state.writer import last_number, make_store

WRITER = Path(__file__).with_name("writer.py")
PROCESSES, CHANGES = 4, 150


def location_of(backend: Backend) -> tuple[str, str]:
    """(location, prefix) for writer.py."""
    settings = backend.settings[backend.name]
    if backend.name == "redis":
        return settings["url"], settings["key_prefix"]
    if backend.name == "postgres":
        return settings["dsn"], settings["schema"]
    return settings["path"], "bw"


@pytest.mark.parametrize("name", ["redis", "postgres", "sqlite", "jsonfile"])
def test_concurrent_writers_of_different_bots_lose_nothing(name: str, tmp_path: Path) -> None:
    for backend in make_backend(name, tmp_path):
        location, prefix = location_of(backend)
        # Create the layout first, so the writers race on data, not on setup.
        asyncio.run(_touch(name, location, prefix))
        common = [sys.executable, str(WRITER), name, location, "--prefix", prefix]
        writers = [
            subprocess.Popen(
                [*common, "--flow", f"bot{i}", "--count", str(CHANGES)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for i in range(PROCESSES)
        ]
        for writer in writers:
            out, err = writer.communicate(timeout=120)
            assert writer.returncode == 0, err.decode()[-2000:]
            assert out.split() == [str(n).encode() for n in range(1, CHANGES + 1)]
        asyncio.run(_check_every_bot(name, location, prefix))


async def _touch(name: str, location: str, prefix: str) -> None:
    store = make_store(name, location, prefix)
    await store.open()
    await store.close()


async def _check_every_bot(name: str, location: str, prefix: str) -> None:
    store = make_store(name, location, prefix)
    await store.open()
    try:
        assert await store.flows() == [f"bot{i}" for i in range(PROCESSES)]
        for i in range(PROCESSES):
            snapshot = await store.load(f"bot{i}")
            assert last_number(snapshot) == CHANGES
            assert len(snapshot["positions"]) == CHANGES
            assert len(snapshot["intents"]) == CHANGES
    finally:
        await store.close()
