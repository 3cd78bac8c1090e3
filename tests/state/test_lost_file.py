"""A state file deleted or replaced while the bot has it open: the next write says so.

Unnoticed, the bot wrote on into a file no path named any more, and its next start was
a new bot. Now the write raises `StateLost` naming the file, and keeps raising.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from botwarden.errors import StateLost
from botwarden.state.base import Change, Put, StateStore
from botwarden.state.files import file_id
from tests.conftest import Backend
from tests.state.files import file_backend_at, state_file, write_some_state


async def deleted(path: Path) -> None:
    os.unlink(path)


async def replaced_by_a_copy(path: Path) -> None:
    """`mv backup path`: what was in the file, in another file."""
    copy = path.with_name("copy")
    shutil.copyfile(path, copy)
    copy.replace(path)


async def replaced_by_another_bots_state(path: Path) -> None:
    other = file_backend_at(path.suffix.lstrip("."), path.with_name(f"other{path.suffix}"))
    await write_some_state(other, flow_id="somebody_else")
    state_file(other).replace(path)


async def opened(backend: Backend) -> StateStore:
    store = backend.store()
    await store.open()
    await store.claim_epoch("bot")  # (the changes below are epoch 1's)
    await store.apply("bot", change(1))
    return store


def change(size: int) -> Change:
    return Change([Put("positions", "p1", {"size": size})], epoch=1)


@pytest.mark.parametrize(
    "lose", [deleted, replaced_by_a_copy, replaced_by_another_bots_state], ids=lambda f: f.__name__
)
async def test_a_state_file_lost_under_the_store_fails_every_write_after(
    file_backend: Backend, lose: Callable[[Path], Awaitable[None]]
) -> None:
    path = state_file(file_backend)
    store = await opened(file_backend)
    try:
        await lose(path)
        if file_backend.name == "jsonfile" and lose is replaced_by_a_copy:
            # jsonfile reads a replaced file again before it writes (several bots may
            # share it): the write lands in the file at the path, nothing is lost.
            await store.apply("bot", change(2))
            assert '"size": 2' in path.read_text()
            return
        with pytest.raises(StateLost, match=rf"state file {path} was"):
            await store.apply("bot", change(2))
        with pytest.raises(StateLost):  # and every write after
            await store.apply("bot", change(3))
    finally:
        await store.close()


async def test_a_deleted_sqlite_wal_fails_the_next_write(tmp_path: Path) -> None:
    """SQLite commits into its -wal first: a deleted WAL takes those commits with it."""
    backend = file_backend_at("sqlite", tmp_path / "state.db")
    store = await opened(backend)
    wal = tmp_path / "state.db-wal"
    try:
        wal.unlink()
        with pytest.raises(StateLost, match=rf"state file {wal} was deleted"):
            await store.apply("bot", change(2))
    finally:
        await store.close()


async def test_a_store_that_keeps_its_file_never_calls_it_lost(file_backend: Backend) -> None:
    """SQLite's checkpoints (its WAL rewound) and jsonfile's rename on every write are
    the stores' own business, not a lost file."""
    store = await opened(file_backend)
    try:
        # 2.4 MB: SQLite checkpoints every 100 pages (400 KB).
        for round_ in range(30):
            big = [Put("fills", f"t{round_}-{i}", {"pad": "x" * 2000}) for i in range(40)]
            await store.apply("bot", Change(big, epoch=1))
        assert len(await store.scan("bot", "fills")) == 30 * 40
    finally:
        await store.close()


def test_a_file_is_told_as_stat_tells_it(tmp_path: Path) -> None:
    """`file_id` reads no file times (see files.py): it still names the file as a stat
    does, tells a replaced file apart, and says None where nothing is."""
    path = tmp_path / "state.db"
    path.write_bytes(b"one")
    first = os.stat(path)
    assert file_id(path) == (first.st_dev, first.st_ino)
    replaced_by = tmp_path / "other"
    replaced_by.write_bytes(b"two")
    replaced_by.replace(path)
    now = os.stat(path)
    assert file_id(path) == (now.st_dev, now.st_ino) != (first.st_dev, first.st_ino)
    with pytest.raises(NotADirectoryError):  # an error other than "no such file"
        file_id(path / "below")
    path.unlink()
    assert file_id(path) is None


def test_files_are_told_apart_by_threads_asking_at_once(tmp_path: Path) -> None:
    """Stores in several threads (the real trials seed theirs side by side) ask at the
    same time: each is told its own file, never another thread's."""
    paths = [tmp_path / f"state-{n}.db" for n in range(8)]
    for path in paths:
        path.write_bytes(b"x")
    expected = {path: (os.stat(path).st_dev, os.stat(path).st_ino) for path in paths}

    def ask(path: Path) -> list[tuple[int, int] | None]:
        return [file_id(path) for _ in range(3000)]

    with ThreadPoolExecutor(len(paths)) as pool:
        answers = dict(zip(paths, pool.map(ask, paths), strict=True))
    for path, told in answers.items():
        assert set(told) == {expected[path]}, path
