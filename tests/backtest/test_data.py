"""Bars read from users' files: the real daily bars bundled in examples/data, several
symbols, a folder or one file with a symbol column, CSV or Parquet, epoch times; a
bad value is one error naming the file, the row and the column; gaps are reported."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.backtest.data import DataError, read_bars

DATA = Path(__file__).parents[2] / "examples" / "data"


def lines(symbol: str = "AAPL") -> list[str]:
    return (DATA / f"{symbol}.csv").read_text().splitlines()


def test_the_bundled_bars_are_read_whole_with_their_real_gap() -> None:
    history = read_bars(DATA, ["AAPL", "MSFT", "IBM", "GOOG"])
    assert history.timeframe == "1d"
    assert {s: len(rows) for s, rows in history.bars.items()} == dict.fromkeys(
        ["AAPL", "MSFT", "IBM", "GOOG"], 795
    )
    first = history.bars["AAPL"][0]
    assert (first.time, first.open, first.high, first.low, first.close, first.volume) == (
        datetime(2010, 1, 4, tzinfo=UTC), Decimal("213.43"), Decimal("214.5"),
        Decimal("212.38"), Decimal("214.01"), Decimal(17633200),
    )  # fmt: skip
    # The markets closed for hurricane Sandy on 2012-10-29 and 30; a one-day holiday
    # is not a gap in the data.
    assert {(g.symbol, g.after.date().isoformat(), g.missing) for g in history.gaps} == {
        (s, "2012-10-26", 2) for s in ("AAPL", "MSFT", "IBM", "GOOG")
    }


def test_rows_taken_out_are_reported_as_a_gap(tmp_path: Path) -> None:
    rows = lines()
    march = [i for i, line in enumerate(rows) if line.startswith("2011-03-")]
    del rows[march[3] : march[8]]  # five trading days
    (tmp_path / "AAPL.csv").write_text("\n".join(rows) + "\n")
    [gap] = [g for g in read_bars(tmp_path, ["AAPL"]).gaps if g.after.year == 2011]
    assert (gap.after.date().isoformat(), gap.resumes.date().isoformat(), gap.missing) == (
        "2011-03-03", "2011-03-11", 5
    )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.replace("214.5,", "211.5,", 1), "row 2, column high: high 211.5 is below"),
        (lambda r: r.replace("212.38", "abc", 1), "row 2, column low: 'abc' is not a number"),
        (lambda r: r.replace("214.01", "", 1), "row 2, column close: '' is not a number"),
        (lambda r: r.replace("213.43", "-1", 1), "row 2, column open: -1 is not a price"),
        (lambda r: r.replace("2010-01-04", "soon", 1), "row 2, column date: 'soon' is not a time"),
    ],
)
def test_a_bad_value_names_the_file_row_and_column(tmp_path: Path, change, message) -> None:
    rows = lines()
    rows[1] = change(rows[1])
    path = tmp_path / "AAPL.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as raised:
        read_bars(tmp_path, ["AAPL"])
    assert str(raised.value).startswith(f"{path}: {message}")


def test_missing_symbols_and_columns_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no bars for TSLA \(a file named after each symbol"):
        read_bars(DATA, ["AAPL", "TSLA"])
    (tmp_path / "AAPL.csv").write_text("date,open,high,close\n2010-01-04,1,2,1.5\n")
    with pytest.raises(DataError, match=r"AAPL.csv: no low column \(found: date, open, high"):
        read_bars(tmp_path, ["AAPL"])
    with pytest.raises(DataError, match="no such file or folder"):
        read_bars(tmp_path / "nowhere", ["AAPL"])


def test_one_file_of_several_symbols_in_parquet_with_epoch_times(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    frames = []
    for symbol in ("AAPL", "MSFT"):
        frame = pd.read_csv(DATA / f"{symbol}.csv")
        frame["ticker"] = symbol
        frame["Timestamp"] = pd.to_datetime(frame.pop("date")).astype("int64") // 10**6
        frames.append(frame.rename(columns=str.capitalize))
    pd.concat(frames).to_parquet(tmp_path / "bars.parquet")
    history = read_bars(tmp_path / "bars.parquet", ["MSFT", "AAPL"])
    assert [len(history.bars[s]) for s in ("AAPL", "MSFT")] == [795, 795]
    assert history.bars["MSFT"][0].time == datetime(2010, 1, 4, tzinfo=UTC)
    assert history.bars["MSFT"][0].close == Decimal("30.95")


def test_a_pair_is_found_by_its_file_name_gzipped(tmp_path: Path) -> None:
    text = "open_time,o,h,l,c,v\n" + "".join(
        f"2024-01-01T{h:02d}:00:00Z,100,101,99,100.5,3.25\n" for h in range(24)
    )
    with gzip.open(tmp_path / "BTC-USDT.csv.gz", "wt") as out:
        out.write(text)
    history = read_bars(tmp_path, ["BTC/USDT"])
    assert history.timeframe == "1h" and len(history.bars["BTC/USDT"]) == 24
    assert history.gaps == []


def test_a_parquet_file_indexed_by_time_as_pandas_writes_it(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(DATA / "IBM.csv", parse_dates=["date"]).set_index("date")
    frame.index.name = None  # (what a frame built by hand has)
    frame.to_parquet(tmp_path / "IBM.parquet")
    history = read_bars(tmp_path, ["IBM"])
    assert len(history.bars["IBM"]) == 795
    assert history.bars["IBM"][0].time == datetime(2010, 1, 4, tzinfo=UTC)


def test_a_blank_line_does_not_move_the_row_numbers(tmp_path: Path) -> None:
    rows = lines()
    rows.insert(3, "")
    rows[5] = rows[5].replace(rows[5].split(",")[1], "x", 1)
    path = tmp_path / "AAPL.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"row 6, column open: 'x' is not a number"):
        read_bars(tmp_path, ["AAPL"])


def test_two_symbols_one_file_name_could_stand_for_are_refused() -> None:
    with pytest.raises(DataError, match=r"BRK\.B, BRKB: one file name would stand for each"):
        read_bars(DATA, ["BRK.B", "BRKB"])
