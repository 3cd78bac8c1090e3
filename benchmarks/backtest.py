"""Backtest speed: the bundled example (795 daily bars of four US stocks) through the
engine and the paper book, with one symbol and with four, in this process.

    .venv/bin/python benchmarks/backtest.py [--runs 3]

Prints, for each: the passes (one a bar), the bars (passes x symbols), the seconds of
the run (the engine's passes, a durable write per change) and of reading the results
back (the book's fills, the bot's trades, the statistics), and bars a second. The
median of `--runs`, each in a fresh folder.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from botwarden.backtest.results import read_results
from botwarden.backtest.run import Plan, run

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def timed(symbols: list[str], folder: Path) -> tuple[int, float, float, int]:
    """Passes, run seconds, results seconds, trades."""
    config = folder / "bot.yaml"
    text = (EXAMPLES / "backtest.yaml").read_text()
    text = text.replace("symbols: [AAPL, MSFT, IBM, GOOG]", f"symbols: [{', '.join(symbols)}]")
    config.write_text(text.replace("data: data ", f"data: {EXAMPLES / 'data'} "))
    plan = Plan.read(config, None, None, None)
    out = folder / "run"
    out.mkdir()
    began = time.perf_counter()
    asyncio.run(run(plan, out, plan.config.load_strategy()))
    ran = time.perf_counter() - began
    began = time.perf_counter()
    results = asyncio.run(read_results(plan, out))
    return len(plan.passes()), ran, time.perf_counter() - began, len(results.trades)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    table = Table(title="Backtest: the example's 795 daily bars", title_justify="left")
    for column in ("symbols", "passes", "bars", "trades", "run s", "results s", "bars/s"):
        table.add_column(column, justify="right")
    for symbols in (["AAPL"], ["AAPL", "MSFT", "IBM", "GOOG"]):
        runs = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="bench-backtest-") as folder:
                runs.append(timed(symbols, Path(folder)))
        passes, trades = runs[0][0], runs[0][3]
        ran = statistics.median(r[1] for r in runs)
        read = statistics.median(r[2] for r in runs)
        bars = passes * len(symbols)
        table.add_row(
            str(len(symbols)), str(passes), str(bars), str(trades),
            f"{ran:.2f}", f"{read:.2f}", f"{bars / ran:,.0f}",
        )  # fmt: skip
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
