"""`--data venue`: a backtest on the venue's own history, through the real SDKs against
the emulators (ccxt on Binance's API, alpaca-py on Alpaca's), kept in the cache: a
second run of the span, or of a part of it, with the emulator stopped reads no
network and trades the same."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.test_cli import assert_one_line_error, botwarden
from tests.venues.cli_server import served_from_the_cli

KEY, SECRET = "history-key", "history-secret"
VENUES = {
    "binance": ("BTC/USDT", "{type: ccxt, exchange: binance, base_url: '%s'}"),
    "alpaca": ("SPY", "{type: alpaca, paper: true, base_url: '%s', data_url: '%s'}"),
}


def config(tmp_path: Path, api: str, url: str) -> Path:
    symbol, venue = VENUES[api]
    path = tmp_path / "bot.yaml"
    path.write_text(
        "bot_id: from_history\n"
        f"symbols: ['{symbol}']\n"
        "order: {notional: 1000}\n"
        "strategy: {name: golden_cross, params: {fast: 4, slow: 12}, timeframe: 1h}\n"
        "stop: {kind: percent, distance: 1.5}\n"
        f"venue: {venue % ((url,) * venue.count('%s'))}\n"
    )
    return path


def trades(folder: Path) -> list[dict[str, str]]:
    with (folder / "trades.csv").open() as rows:
        return list(csv.DictReader(rows))


@pytest.mark.parametrize("api", list(VENUES))
def test_the_venues_own_bars_are_fetched_once_then_read_from_the_cache(
    tmp_path: Path, api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOTWARDEN_HOME", str(tmp_path / "home"))
    env_keys = {"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET,
                "BOTWARDEN_CCXT_API_KEY": KEY, "BOTWARDEN_CCXT_SECRET": SECRET}  # fmt: skip
    for name, value in env_keys.items():
        monkeypatch.setenv(name, value)
    today = datetime.now(UTC).date()
    start, end = (today - timedelta(days=9)).isoformat(), (today - timedelta(days=2)).isoformat()
    with served_from_the_cli(api, tmp_path, KEY, SECRET) as url:
        path = config(tmp_path, api, url)
        first = botwarden("backtest", str(path), "--data", "venue", "--from", start, "--to", end,
                          "--out", str(tmp_path / "first"), cwd=tmp_path)  # fmt: skip
        assert first.returncode == 0, first.stderr
    [cached] = (tmp_path / "home" / "cache" / "bars").glob("*/*-1h.csv")
    with cached.open() as rows:
        times = [datetime.fromisoformat(r["time"]) for r in csv.DictReader(rows)]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert times[-1] < datetime.fromisoformat(end).replace(tzinfo=UTC) + timedelta(days=1)
    assert len(times) >= 8 * 24, "eight days of hourly bars, and the warm-up before them"
    # The emulator is gone: the same span, and a part of it, come from the cache.
    again = botwarden("backtest", str(path), "--data", "venue", "--from", start, "--to", end,
                      "--out", str(tmp_path / "again"), cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert trades(tmp_path / "again") == trades(tmp_path / "first")
    assert len(trades(tmp_path / "first")) >= 2
    later = (today - timedelta(days=5)).isoformat()
    part = botwarden("backtest", str(path), "--data", "venue", "--from", later, "--to", end,
                     cwd=tmp_path)  # fmt: skip
    assert part.returncode == 0, part.stderr
    # A span the cache does not hold needs the venue, which is not there: one line.
    wider = botwarden("backtest", str(path), "--data", "venue", "--from",
                      (today - timedelta(days=20)).isoformat(), cwd=tmp_path)  # fmt: skip
    assert_one_line_error(wider, 2, "--data venue:")
