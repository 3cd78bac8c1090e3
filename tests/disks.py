"""Real disks for the tests that need one to fail: a tmpfs of a few hundred KiB to
fill, or one mounted read-only. Mounting needs root; under CI a failure to mount
fails the test, elsewhere it is skipped, saying why."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "512k", readonly: bool = False) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if readonly else "")
    _mount(["-t", "tmpfs", "-o", options, "tmpfs", str(where)], "a tmpfs")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """`folder`, as it is, made read-only (for root too) until the block ends."""
    _mount(["--bind", str(folder), str(folder)], "a bind mount")
    try:
        _mount(["-o", "remount,bind,ro", str(folder)], "a read-only bind mount")
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _mount(arguments: list[str], what: str) -> None:
    mounted = subprocess.run(["mount", *arguments], capture_output=True, text=True)
    if mounted.returncode != 0:
        message = f"cannot mount {what} ({mounted.stderr.strip()}): run the tests as root"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
