"""The real campaign's full disk: a tmpfs of its own for the bot's state, filled to the
last byte, emptied, and unmounted with its files kept in the folder beneath."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from botwarden.torture.disks import SmallDisk, why_no_tmpfs
from tests.conftest import service_missing


def test_a_small_disk_fills_to_the_last_byte_and_keeps_its_files(tmp_path: Path) -> None:
    why = why_no_tmpfs()
    if why is not None:
        service_missing("a tmpfs", f"{why}: run the tests as root")
    disk = SmallDisk(tmp_path / "state", size="256k")
    disk.mount()
    try:
        (disk.where / "bot.db").write_bytes(b"the state")
        assert disk.fill() > 200 * 1024
        with pytest.raises(OSError, match="No space left") as refused:
            (disk.where / "bot.db-wal").write_bytes(b"\1" * 4096)
        assert refused.value.errno == errno.ENOSPC, "full: not one page more"
        disk.make_room()
        (disk.where / "bot.db-wal").write_bytes(b"\1" * 4096)
        assert disk.holds(disk.where / "bot.db")
        assert not disk.holds(tmp_path / "exchange.db"), "beside it, not on it"
    finally:
        disk.unmount()
    assert not os.path.ismount(tmp_path / "state")
    assert (tmp_path / "state" / "bot.db").read_bytes() == b"the state", "kept beneath"
    assert not (tmp_path / "state" / "filler").exists()
