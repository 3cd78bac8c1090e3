"""CLI start-up benchmark: how long each command takes from exec to exit.

    .venv/bin/python benchmarks/cli.py [--runs 15]

Each command runs as a user runs it (`python -m botwarden ...`, a fresh process each
time) against a home with one stopped bot that has traded, and is timed against
`python -c pass` measured in the same run, pair by pair (the ratio holds when the
machine's speed drifts). Prints the median and the slowest run, and the median
ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

CONFIG = """\
bot_id: bench_cli
symbols: [SPY]
order: {qty: 10}
strategy: {name: coin_flip, params: {seed: 3}, timeframe: 1h}
venue: {type: paper, speed: 36000}
engine: {check_interval: 1h}
"""

COMMANDS = {
    "--help": ["--help"],
    "status": ["status"],
    "logs": ["logs", "bench_cli"],
    "stop (not running)": ["stop", "bench_cli"],
    "state show": ["state", "show", "{config}"],
}


def timed(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as directory:
        root = Path(directory)
        config = root / "bot.yaml"
        config.write_text(CONFIG)
        env = {**os.environ, "BOTWARDEN_HOME": str(root / "home")}
        bot = [sys.executable, "-m", "botwarden"]
        subprocess.run([*bot, "run", str(config), "--ticks", "24"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        baseline = [sys.executable, "-c", "pass"]
        table = Table(title="CLI: exec to exit", title_justify="left")
        for column in ("command", "median ms", "slowest ms", "x python -c pass"):
            table.add_column(column, justify="left" if column == "command" else "right")
        floor = []
        for name, words in COMMANDS.items():
            argv = [*bot, *(w.format(config=config) for w in words)]
            timed(argv, env)  # (a warm-up: the file cache)
            pairs = [(timed(argv, env), timed(baseline, env)) for _ in range(args.runs)]
            seconds = [a for a, _ in pairs]
            floor += [b for _, b in pairs]
            ratio = statistics.median(a / b for a, b in pairs)
            table.add_row(
                name,
                f"{statistics.median(seconds) * 1e3:,.0f}",
                f"{max(seconds) * 1e3:,.0f}",
                f"{ratio:,.1f}",
            )
        table.add_row("python -c pass", f"{statistics.median(floor) * 1e3:,.0f}", "", "1.0")
        Console().print(table)


if __name__ == "__main__":
    main()
