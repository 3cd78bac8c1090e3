"""CLI start-up benchmark: how long each command takes from exec to exit.

    .venv/bin/python benchmarks/cli.py [--runs 15]

Each command runs as a user runs it (`python -m botwarden ...`, a fresh process each
time, its modules' bytecode cached as an installed package has it, even where
PYTHONDONTWRITEBYTECODE is set) against a home with one stopped bot that has traded,
and is timed against `python -c pass` measured in the same run, pair by pair (the
ratio holds when the machine's speed drifts). Prints the median and the slowest run,
and the median ratio.
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


def cells(runs: list[dict[str, float]], key: str) -> list[str]:
    """The median and the slowest of `key`'s times, and its median ratio to the run's
    `python -c pass`."""
    seconds = [run[key] for run in runs]
    return [
        f"{statistics.median(seconds) * 1e3:,.0f}",
        f"{max(seconds) * 1e3:,.0f}",
        f"{statistics.median(run[key] / run['pass'] for run in runs):,.1f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--before",
        type=Path,
        metavar="SRC",
        help="Also time the package in SRC (an older checkout's src/), run by run beside this one.",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as directory:
        root = Path(directory)
        config = root / "bot.yaml"
        config.write_text(CONFIG)
        env = {**os.environ, "BOTWARDEN_HOME": str(root / "home")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # (the warm-up run writes the cache here:)
        env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
        envs = {"after": env}
        if args.before is not None:
            envs["before"] = {**env, "PYTHONPATH": str(args.before.resolve())}
        bot = [sys.executable, "-m", "botwarden"]
        subprocess.run([*bot, "run", str(config), "--ticks", "24"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        baseline = [sys.executable, "-c", "pass"]
        table = Table(title="CLI: exec to exit", title_justify="left")
        columns = ["command", "median ms", "slowest ms", "x python -c pass"]
        if len(envs) > 1:
            columns = [
                "command",
                "before ms",
                "x pass",
                "after ms",
                "slowest",
                "x pass",
                "after/before",
            ]
        for column in columns:
            table.add_column(column, justify="left" if column == "command" else "right")
        floor = []
        for name, words in COMMANDS.items():
            argv = [*bot, *(w.format(config=config) for w in words)]
            for tree in envs.values():
                timed(argv, tree)  # (a warm-up: the file cache, the bytecode cache)
            runs = []  # each run: python -c pass, then the command from each tree
            for _ in range(args.runs):
                run = {"pass": timed(baseline, env)}
                run.update((key, timed(argv, tree)) for key, tree in envs.items())
                runs.append(run)
            floor += [run["pass"] for run in runs]
            if len(envs) == 1:
                table.add_row(name, *cells(runs, "after"))
            else:
                before_ms, _, before_x = cells(runs, "before")
                change = statistics.median(run["after"] / run["before"] for run in runs)
                table.add_row(name, before_ms, before_x, *cells(runs, "after"), f"{change:.2f}")
        python = f"{statistics.median(floor) * 1e3:,.0f}"
        if len(envs) == 1:
            table.add_row("python -c pass", python, "", "1.0")
        else:
            table.add_row("python -c pass", python, "1.0", python, "", "1.0", "")
        Console(width=100).print(table)


if __name__ == "__main__":
    main()
