"""Reading a bot's log: its last lines, and following it as it grows."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

POLL = 0.25
"""Seconds between looks at a followed log."""


def last_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of `path` (none if it does not exist yet)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return list(deque(file, maxlen=count))
    except FileNotFoundError:
        return []


def follow_log(path: Path, poll: float = POLL) -> Iterator[str]:
    """Every line added to `path` from now on, forever (the caller stops it). A log
    that appears, is replaced (rotated) or is truncated is read from its start."""
    try:
        stat = os.stat(path)
        inode, position = stat.st_ino, stat.st_size
    except FileNotFoundError:
        inode, position = None, 0
    pending = b""
    while True:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            time.sleep(poll)
            continue
        if stat.st_ino != inode or stat.st_size < position:
            inode, position, pending = stat.st_ino, 0, b""
        if stat.st_size == position:
            time.sleep(poll)
            continue
        with open(path, "rb") as file:
            file.seek(position)
            chunk = file.read()
        position += len(chunk)
        *complete, pending = (pending + chunk).split(b"\n")
        for line in complete:
            yield line.decode("utf-8", errors="replace") + "\n"
