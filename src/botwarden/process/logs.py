"""A bot's log: written (rotating, text or JSON lines), read back (its last lines),
and followed as it grows."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

LOG_BYTES = 10 * 1024 * 1024
LOG_FILES = 5
"""A bot's log: bot.log and five older ones (bot.log.1 ...), 10 MB each."""


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def bot_log_handler(path: Path, log_format: LogFormat = LogFormat.text) -> logging.Handler:
    """A handler writing to a bot's log file. Bots run for weeks: it rotates
    (`botwarden logs -f` follows it across)."""
    import logging.handlers  # (only where a log is written: not by `logs`, not by `--help`)

    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=LOG_BYTES, backupCount=LOG_FILES, encoding="utf-8"
    )
    handler.setFormatter(_JsonFormatter() if log_format is LogFormat.json else _TextFormatter())
    return handler


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": self.formatTime(record),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


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
    that appears, or is replaced (rotated: the old one is read to its end first) or
    truncated, is read from its start."""
    file: BinaryIO | None = None
    with contextlib.suppress(FileNotFoundError):
        file = open(path, "rb")  # noqa: SIM115 (kept open across the loop)
        file.seek(0, os.SEEK_END)
    pending = b""
    try:
        while True:
            chunk = file.read() if file is not None else b""
            if chunk:
                *complete, pending = (pending + chunk).split(b"\n")
                for line in complete:
                    yield line.decode("utf-8", errors="replace") + "\n"
                continue
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                time.sleep(poll)
                continue
            if file is None or stat.st_ino != os.fstat(file.fileno()).st_ino:
                if file is not None:
                    file.close()
                file, pending = open(path, "rb"), b""  # noqa: SIM115
            elif stat.st_size < file.tell():
                file.seek(0)
                pending = b""
            else:
                time.sleep(poll)
    finally:
        if file is not None:
            file.close()
