"""A paper exchange's timeline as its book keeps it (the clock anchor: an exchange
time, the wall time it was read at, and the speed since), and its time read from the
book without opening it as a book: what `status` and the API count a paper bot's day
by. Only the standard library: the quick commands import this and no venue."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

READ_TIMEOUT = 0.5
"""Seconds a look waits for a book being written (a reader in WAL mode rarely waits)."""


def anchor_text(venue: datetime, real: datetime, speed: float) -> str:
    return f"{venue.isoformat()} {real.isoformat()} {speed!r}"


def parse_anchor(stored: str) -> tuple[datetime, datetime, float]:
    """(exchange time, wall time, speed), as `anchor_text` wrote them."""
    venue_text, real_text, speed_text = stored.split(" ")
    return datetime.fromisoformat(venue_text), datetime.fromisoformat(real_text), float(speed_text)


def exchange_time(book: Path, real_now: datetime) -> datetime | None:
    """The time of the paper exchange whose book is at `book`, at wall time
    `real_now`, by the timeline the book keeps (a fast one, or one started in the past),
    read without writing; None if there is no book, its clock never ran, or it cannot
    be read now (a look is not the place to say why: the bot's own open is)."""
    try:
        if not book.is_file():
            return None
        db = sqlite3.connect(f"{book.resolve().as_uri()}?mode=ro", uri=True, timeout=READ_TIMEOUT)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'clock_anchor'").fetchone()
        finally:
            db.close()
        if row is None:
            return None
        venue, real, speed = parse_anchor(row[0])
    except (OSError, sqlite3.Error, ValueError):
        return None
    return venue + (real_now - real) * speed
