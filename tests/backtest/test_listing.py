"""The backtests a home lists: a note per run, pointing at its folder; nothing reached
but a noted run's own report."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from botwarden.backtest.listing import UnknownBacktest, kept_report, kept_runs, note_run


def _run_folder(path: Path, total_return: float) -> Path:
    path.mkdir()
    (path / "summary.json").write_text(json.dumps({"total_return_pct": total_return}))
    (path / "report.html").write_text("<html><head></head></html>")
    return path


def test_a_noted_run_is_listed_and_nothing_else_is_reached(tmp_path: Path) -> None:
    home = tmp_path / "home"
    at = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    first = note_run(_run_folder(tmp_path / "a", 1.5), "bot", at, home)
    second = note_run(_run_folder(tmp_path / "b", 2.5), "bot", at, home)
    assert first == "20261203T090000Z-bot" and second == f"{first}-2", "one second, two runs"
    assert [r.summary["total_return_pct"] for r in kept_runs(home)] == [2.5, 1.5]
    assert kept_report(first, home) == tmp_path / "a" / "report.html"

    (tmp_path / "elsewhere.json").write_text(json.dumps({"bot_id": "x", "folder": "/etc"}))
    for asked in ("../elsewhere", "..", "20261203T090000Z-bot/../../elsewhere", "x"):
        with pytest.raises(UnknownBacktest):
            kept_report(asked, home)
    (tmp_path / "b" / "report.html").unlink()  # a folder without its report: not listed
    assert [r.id for r in kept_runs(home)] == [first]
    with pytest.raises(UnknownBacktest):
        kept_report(second, home)
    (home / "backtests" / "broken.json").write_text("{not json")
    assert [r.id for r in kept_runs(home)] == [first], "a broken note is passed over"


def test_a_note_that_cannot_be_written_costs_the_run_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("a file where the home should be")
    at = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert note_run(_run_folder(tmp_path / "a", 1.0), "bot", at, home) is None
    assert kept_runs(home) == []
