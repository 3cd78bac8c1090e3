"""A bot on a paper exchange with a timeline of its own (started in the past, running
fast) is counted by that timeline, not the wall clock: `status` shows the exchange's
trading day and that day's PnL, and a stopped bot's day moves on with its exchange."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from pathlib import Path

from tests.support.processes import CONFIG  # (36000x, from 2026-03-02)
from tests.test_cli import botwarden


def status(folder: Path) -> dict:
    shown = botwarden("status", "--json", cwd=folder)
    assert shown.returncode == 0, shown.stderr
    [report] = json.loads(shown.stdout)
    return report


def test_a_paper_exchange_in_the_past_keeps_its_own_day(tmp_path: Path) -> None:
    (tmp_path / "bot.yaml").write_text(CONFIG)
    ran = botwarden("run", "bot.yaml", "--ticks", "40", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    wall = datetime.now(UTC).date()
    first = status(tmp_path)
    day = date.fromisoformat(first["trading_day"])
    assert date(2026, 3, 2) <= day < wall, "the exchange's day, months behind the wall's"
    assert first["trades_total"] > 0, "(it traded: its days have PnL to show)"

    time.sleep(3)  # 30 hours on the exchange, the bot stopped
    later = status(tmp_path)
    assert date.fromisoformat(later["trading_day"]) > day, "its exchange moved on"
    assert (later["pnl_today"], later["trades_today"]) == ("0.00", 0), "a new day, nothing yet"
    assert later["pnl_total"] == first["pnl_total"]
