"""The statistics' year: as many bars as the market trades in one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from botwarden.backtest.results import _periods_a_year
from botwarden.backtest.run import Plan


def bars_file(folder: Path, symbol: str, times: list[datetime]) -> None:
    rows = ["time,open,high,low,close"] + [f"{t.isoformat()},10,11,9,10.5" for t in times]
    (folder / f"{symbol}.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize(
    ("timeframe", "step", "keep", "a_year"),
    [
        ("1h", timedelta(hours=1), lambda t: t.weekday() < 5 and 14 <= t.hour < 21, 252 * 7),
        ("1h", timedelta(hours=1), lambda t: True, 365 * 24),
        ("1d", timedelta(days=1), lambda t: t.weekday() < 5, 252),
        ("1w", timedelta(weeks=1), lambda t: True, 52),
    ],
)
def test_a_year_is_the_bars_the_market_trades_in_one(
    tmp_path: Path, timeframe: str, step: timedelta, keep, a_year: float
) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
    times = [start + step * n for n in range(2000) if keep(start + step * n)]
    bars_file(tmp_path, "XYZ", times)
    config = tmp_path / "bot.yaml"
    config.write_text(
        f"bot_id: y\nsymbols: [XYZ]\nstrategy: {{name: golden_cross, timeframe: {timeframe}}}\n"
    )
    assert _periods_a_year(Plan.read(config, tmp_path, None, None)) == a_year


def test_a_symbol_without_a_bar_when_another_has_one_is_reported(tmp_path: Path) -> None:
    from botwarden.backtest.session import backtest

    start = datetime(2024, 1, 1, tzinfo=UTC)
    days = [start + timedelta(days=n) for n in range(60)]
    bars_file(tmp_path, "AAA", days)
    bars_file(tmp_path, "BBB", [d for d in days if d != days[40]])
    config = tmp_path / "bot.yaml"
    config.write_text(
        "bot_id: c\nsymbols: [AAA, BBB]\n"
        "strategy: {name: golden_cross, params: {fast: 3, slow: 8}, timeframe: 1d}\n"
    )
    outcome = backtest(Plan.read(config, tmp_path, None, None), [], None)
    assert outcome.results.summary["calendars"] == {"BBB": 1}
