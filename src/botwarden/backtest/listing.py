"""The backtests a home knows of. A run written with `--out` leaves a note in
`$BOTWARDEN_HOME/backtests/<id>.json` naming its folder, so that the dashboard lists
it (with its summary, read from the folder) and shows its report. The note is only a
pointer: a folder moved or deleted drops out of the list, and nothing else is lost."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from botwarden.errors import BotwardenError
from botwarden.process.home import botwarden_home

log = logging.getLogger(__name__)

LISTED = (
    "symbols", "timeframe", "start", "end", "total_return_pct", "buy_and_hold_return_pct",
    "max_drawdown_pct", "sharpe", "trades", "win_rate_pct", "final_equity",
)  # fmt: skip
"""What the list shows of each run's summary."""
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(-\d+)?$")


class UnknownBacktest(BotwardenError):
    """No backtest of that id, or its report is gone."""


@dataclass(frozen=True)
class KeptRun:
    id: str
    bot_id: str
    folder: Path
    written_at: str
    summary: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "bot_id": self.bot_id,
            "folder": str(self.folder),
            "written_at": self.written_at,
            "summary": self.summary,
        }


def _notes(root: Path | None) -> Path:
    return (root or botwarden_home()) / "backtests"


def note_run(folder: Path, bot_id: str, now: datetime, root: Path | None = None) -> str | None:
    """Note the run written in `folder`; its id, or None if the note could not be
    written (said in the log: the run itself is whole)."""
    notes = _notes(root)
    note = json.dumps(
        {"bot_id": bot_id, "folder": str(folder.resolve()), "written_at": now.isoformat()}
    )
    stem = f"{now:%Y%m%dT%H%M%SZ}-{bot_id}"
    try:
        notes.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):  # two runs in one second: each its own note
            run_id = stem if n == 1 else f"{stem}-{n}"
            try:
                with (notes / f"{run_id}.json").open("x", encoding="utf-8") as file:
                    file.write(note)
                return run_id
            except FileExistsError:
                continue
    except OSError as error:
        log.warning("the backtest in %s is not listed for the dashboard: %s", folder, error)
    return None


def kept_runs(root: Path | None = None) -> list[KeptRun]:
    """Every noted run whose folder still holds its summary and report, newest first."""
    notes = _notes(root)
    if not notes.is_dir():
        return []
    runs = []
    for path in notes.glob("*.json"):
        try:
            runs.append(_read(path))
        except UnknownBacktest:
            continue
    return sorted(runs, key=lambda run: run.written_at, reverse=True)  # (to the microsecond)


def kept_report(run_id: str, root: Path | None = None) -> Path:
    """The report of run `run_id`; `UnknownBacktest` if there is none."""
    if not RUN_ID.match(run_id):
        raise UnknownBacktest(f"no backtest {run_id!r}")
    return _read(_notes(root) / f"{run_id}.json").folder / "report.html"


def _read(note: Path) -> KeptRun:
    try:
        pointer = json.loads(note.read_text(encoding="utf-8"))
        folder = Path(pointer["folder"])
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        if not (folder / "report.html").is_file():
            raise FileNotFoundError(folder / "report.html")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UnknownBacktest(f"no backtest {note.stem!r}: {error}") from None
    shown = {key: summary.get(key) for key in LISTED}
    return KeptRun(note.stem, pointer["bot_id"], folder, pointer["written_at"], shown)
