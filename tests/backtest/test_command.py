"""`botwarden backtest` as a user runs it (a real subprocess): the summary printed, the
files written, and every mistake one line with nothing written."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.test_cli import assert_one_line_error, botwarden

DATA = Path(__file__).parents[2] / "examples" / "data"
CONFIG = """\
bot_id: trial
symbols: [AAPL, IBM]
order: {equity_pct: 20}
strategy: {name: golden_cross, params: {fast: 10, slow: 30}, timeframe: 1d}
stop: {kind: percent, distance: 4, trailing: true}
take_profit: {percent: 10}
backtest: {fee_rate: 0.0005, data: DATA}
""".replace("DATA", str(DATA))


def config(tmp_path: Path, text: str = CONFIG, name: str = "bot.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_backtest_prints_its_summary_and_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = botwarden(
        "backtest", str(config(tmp_path)), "--from", "2011-01-01", "--to", "2012-12-31",
        "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for shown in ("total return", "buy and hold", "max drawdown", "Sharpe", "win rate"):
        assert shown in result.stdout
    assert "2011-01-03 to 2012-12-31" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    with (out / "trades.csv").open() as rows:
        trades = list(csv.DictReader(rows))
    assert list(trades[0]) == [
        "symbol", "side", "qty", "entry_time", "entry_price", "exit_time", "exit_price",
        "pnl", "exit_reason", "fees",
    ]  # fmt: skip
    assert summary["trades"] == len(trades) >= 5
    assert {t["symbol"] for t in trades} == {"AAPL", "IBM"}
    assert all("2011-01-03" <= t["entry_time"][:10] <= "2012-12-31" for t in trades)
    assert float(summary["fees"]) > 0, "5 bps on every fill"
    net = sum(float(t["pnl"]) for t in trades)
    assert abs(net - float(summary["net_pnl"])) < 0.01
    page = (out / "report.html").read_text()
    assert 'src="plotly.min.js"' in page and (out / "plotly.min.js").stat().st_size > 1e6
    assert "candlestick" in page and "AAPL stop" in page
    table = page[page.index('<table class="trades">') :]
    rows = [row.split("</td><td>") for row in table.split("<tr><td>")[1:]]
    assert len(rows) == len(trades) and all(len(r[4].split(".")[1]) == 2 for r in rows), (
        "the report's prices to the cent, as stocks trade (trades.csv keeps them whole)"
    )


def test_without_out_nothing_is_written(tmp_path: Path) -> None:
    before = sorted(tmp_path.rglob("*"))
    path = config(tmp_path)
    result = botwarden("backtest", str(path), "--to", "2010-12-31", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "final equity" in result.stdout
    assert sorted(tmp_path.rglob("*")) == sorted([*before, path])


def test_an_out_folder_that_holds_anything_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = botwarden("backtest", str(config(tmp_path)), "--out", str(out), cwd=tmp_path)
    assert_one_line_error(result, 2, f"--out {out}: not an empty folder")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_bad_bars_are_one_line_naming_the_file_row_and_column(tmp_path: Path) -> None:
    data = tmp_path / "bars"
    data.mkdir()
    for symbol in ("AAPL", "IBM"):
        rows = (DATA / f"{symbol}.csv").read_text().splitlines()
        if symbol == "IBM":
            rows[101] = rows[101].replace(rows[101].split(",")[2], "n/a", 1)
        (data / f"{symbol}.csv").write_text("\n".join(rows) + "\n")
    result = botwarden("backtest", str(config(tmp_path)), "--data", str(data), cwd=tmp_path)
    assert_one_line_error(result, 2, f"{data / 'IBM.csv'}: row 102, column high", "'n/a'")


def test_mistakes_in_what_is_asked_are_one_line(tmp_path: Path) -> None:
    path = config(tmp_path)
    backwards = botwarden("backtest", str(path), "--from", "2012-01-01", "--to", "2011-01-01",
                          cwd=tmp_path)  # fmt: skip
    assert_one_line_error(backwards, 2, "--from 2012-01-01 is not before --to 2011-01-01")
    outside = botwarden("backtest", str(path), "--from", "2015-01-01", cwd=tmp_path)
    assert_one_line_error(outside, 2, "--from 2015-01-01: outside the bars", "2013-03-01")
    hourly = config(tmp_path, CONFIG.replace("timeframe: 1d", "timeframe: 1h"), "hourly.yaml")
    wrong = botwarden("backtest", str(hourly), cwd=tmp_path)
    assert_one_line_error(wrong, 2, "strategy.timeframe is 1h", "set strategy.timeframe: 1d")
    nodata = config(tmp_path, CONFIG.replace(f"data: {DATA}", "slippage: 0"), "nodata.yaml")
    none = botwarden("backtest", str(nodata), cwd=tmp_path)
    assert_one_line_error(none, 2, "no bars to backtest on: give --data")
    date = botwarden("backtest", str(path), "--from", "yesterday", cwd=tmp_path)
    assert_one_line_error(date, 2, "'yesterday' is not a date")
    # From the venue's own history: what cannot be there yet is said before it is asked.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    ahead = botwarden("backtest", str(path), "--data", "venue", "--from", tomorrow, cwd=tmp_path)
    assert_one_line_error(ahead, 2, f"--from {tomorrow}: the venue has no bars from then yet")
    reversed_ = botwarden("backtest", str(path), "--data", "venue", "--from", "2026-12-02",
                          "--to", "2026-12-01", cwd=tmp_path)  # fmt: skip
    assert_one_line_error(reversed_, 2, "--from 2026-12-02 is not before --to 2026-12-01")


def test_kills_are_counted_and_compared(tmp_path: Path) -> None:
    result = botwarden("backtest", str(config(tmp_path)), "--to", "2010-09-30", "--kills", "2",
                       "--seed", "5", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "killed with SIGKILL 2 times of 2 asked (started 3 times)" in result.stdout
    assert "the same trades and final equity as the run never killed" in result.stdout


def test_a_strategy_that_fails_stops_the_backtest_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "flaky.py").write_text(
        "class Flaky:\n"
        "    name = 'flaky'\n"
        "    bars_needed = 3\n"
        "    def decide(self, symbol, bars, position):\n"
        "        if bars[-1].time.month == 3:\n"
        "            raise RuntimeError('no data for March')\n"
        "        return None\n"
    )
    path = config(tmp_path, CONFIG.replace("{name: golden_cross, params: {fast: 10, slow: 30},",
                                           "{path: flaky.py,"), "flaky.yaml")  # fmt: skip
    out = tmp_path / "report"
    failed = botwarden("backtest", str(path), "--out", str(out), cwd=tmp_path)
    assert_one_line_error(failed, 1, "stopped at 2010-03-02 00:00 UTC", "flaky.py:6", "March")
    assert not out.exists(), "a folder it made is gone again"
    (tmp_path / "mine").mkdir()
    assert botwarden(
        "backtest", str(path), "--out", str(tmp_path / "mine"), cwd=tmp_path
    ).returncode
    assert list((tmp_path / "mine").iterdir()) == [], "an empty folder given stays empty"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    refused = botwarden("backtest", str(config(tmp_path)), "--out", str(a_file), cwd=tmp_path)
    assert_one_line_error(refused, 2, "a file, not a folder")
    assert a_file.read_text() == "mine"


def test_the_account_adds_up(tmp_path: Path) -> None:
    """Every closed trade's PnL, and what is still held marked at the last close after
    its entry's fees, make the final equity: nothing decided on the last bar fills."""
    out = tmp_path / "report"
    done = botwarden("backtest", str(config(tmp_path)), "--to", "2012-06-30", "--out", str(out),
                     cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    held = sum(float(h["unrealized"]) for h in summary["open_at_end"])
    total = float(summary["starting_cash"]) + float(summary["net_pnl"]) + held
    assert abs(total - float(summary["final_equity"])) < 0.02


def test_nothing_decided_on_the_last_bar_fills(tmp_path: Path) -> None:
    """A strategy that enters on the last bar: the order would fill after the data."""
    (tmp_path / "late.py").write_text(
        "from botwarden.strategies.base import Signal\n"
        "class Late:\n"
        "    name = 'late'\n"
        "    bars_needed = 1\n"
        "    def decide(self, symbol, bars, position):\n"
        "        if bars[-1].time.date().isoformat() >= '2010-06-29' and position is None:\n"
        "            return Signal.long(symbol, bars[-1], 'late')\n"
        "        return None\n"
    )
    path = config(tmp_path, CONFIG.replace("{name: golden_cross, params: {fast: 10, slow: 30},",
                                           "{path: late.py,"), "late.yaml")  # fmt: skip
    out = tmp_path / "report"
    done = botwarden("backtest", str(path), "--to", "2010-06-30", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    held = {h["symbol"] for h in summary["open_at_end"]}
    assert held == {"AAPL", "IBM"}, "entered on the 29th's bar, at the 30th's open"
    # (the signal on the 30th, the last bar, was never asked for: nothing more filled)
    import sqlite3

    with sqlite3.connect(out / "book.db") as book:
        times = [row[0] for row in book.execute("SELECT json_extract(doc, '$.time') FROM fills")]
    assert times and max(times) < "2010-07-01", times


def test_a_written_backtest_is_listed_for_the_dashboard(
    tmp_path: Path, botwarden_home: Path
) -> None:
    """A run written with --out is listed by the API with its summary and its report;
    one whose folder is gone drops out; nothing else is listed or served."""
    from tests.api.server import Server

    out = tmp_path / "report"
    ran = botwarden("backtest", str(config(tmp_path)), "--out", str(out), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    again = botwarden("backtest", str(config(tmp_path)), "--out", "b", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    botwarden("backtest", str(config(tmp_path)), cwd=tmp_path)  # (no --out: not listed)
    summary = json.loads((out / "summary.json").read_text())
    server = Server(botwarden_home)
    try:
        runs = server.client.get("/api/v1/backtests").json()
        assert [r["folder"] for r in runs] == [str(tmp_path / "b"), str(out)], "newest first"
        assert len({r["id"] for r in runs}) == 2 and all(r["bot_id"] == "trial" for r in runs)
        shown = runs[1]["summary"]
        for key in ("total_return_pct", "max_drawdown_pct", "sharpe", "trades", "start"):
            assert shown[key] == summary[key]
        report = server.client.get(f"/api/v1/backtests/{runs[1]['id']}/report")
        assert report.status_code == 200 and report.text == (out / "report.html").read_text()
        assert report.headers["content-type"].startswith("text/html")
        unknown = server.client.get("/api/v1/backtests/20990101T000000Z-trial/report")
        assert unknown.status_code == 404 and "no backtest" in unknown.json()["error"]
        outside = server.client.get("/api/v1/backtests/..%2F..%2Fetc/report")
        assert outside.status_code in (404, 422)
        token_less = httpx.get(f"{server.url}/api/v1/backtests")
        assert token_less.status_code == 401

        for path in out.iterdir():
            path.unlink()
        out.rmdir()
        assert [r["folder"] for r in server.client.get("/api/v1/backtests").json()] == [
            str(tmp_path / "b")
        ]
    finally:
        server.close()
