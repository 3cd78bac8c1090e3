"""CLI start-up benchmark: how long each command takes from exec to exit.

    .venv/bin/python benchmarks/cli.py [--runs 15] [--before OLD_CHECKOUT/src]

Each command runs as a user runs it (`python -m botwarden ...`, a fresh process each
time, its modules' bytecode cached as an installed package has it, even where
PYTHONDONTWRITEBYTECODE is set) against a home with one stopped bot that has traded,
and is timed against `python -c pass` measured in the same run, pair by pair (the
ratio holds when the machine's speed drifts). Prints the median and the slowest run,
the median CPU time (user and system: what a machine shared with others inflates
least), and the median ratio. With --before, an older checkout's package is timed in
the same runs, one beside the other, and the median of their ratios is printed too.
"""

from __future__ import annotations

import argparse
import os
import resource
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


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds from exec to exit, and the CPU seconds the process used."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - began
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, done.ru_utime + done.ru_stime - used.ru_utime - used.ru_stime


WALL, CPU = 0, 1
Runs = list[dict[str, tuple[float, float]]]
"""Each run: `python -c pass`, then the command from each tree, as (wall, CPU) seconds."""


def medians(runs: Runs, tree: str) -> tuple[float, float, float]:
    """The tree's median wall and CPU seconds, and its median ratio to `python -c pass`."""
    return (
        statistics.median(run[tree][WALL] for run in runs),
        statistics.median(run[tree][CPU] for run in runs),
        statistics.median(run[tree][WALL] / run["pass"][WALL] for run in runs),
    )


def ratio(runs: Runs, figure: int) -> float:
    """The median, run by run, of after / before."""
    return statistics.median(run["after"][figure] / run["before"][figure] for run in runs)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.0f}"


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
        trees = {"after": env}
        if args.before is not None:
            trees["before"] = {**env, "PYTHONPATH": str(args.before.resolve())}
        bot = [sys.executable, "-m", "botwarden"]
        subprocess.run([*bot, "run", str(config), "--ticks", "24"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        baseline = [sys.executable, "-c", "pass"]
        paired = len(trees) > 1
        table = Table(title="CLI: exec to exit", title_justify="left")
        columns = ["command", "median ms", "slowest ms", "CPU ms", "x python -c pass"]
        if paired:
            columns = [
                "command", "before ms", "x pass", "after ms", "slowest", "CPU ms", "x pass",
                "after/before", "CPU after/before",
            ]  # fmt: skip
        for column in columns:
            table.add_column(column, justify="left" if column == "command" else "right")
        floor: list[float] = []
        for name, words in COMMANDS.items():
            argv = [*bot, *(w.format(config=config) for w in words)]
            for tree in trees.values():
                timed(argv, tree)  # (a warm-up: the file cache, the bytecode cache)
            runs: Runs = []
            for _ in range(args.runs):
                run = {"pass": timed(baseline, env)}
                run.update((key, timed(argv, tree)) for key, tree in trees.items())
                runs.append(run)
            floor += [run["pass"][WALL] for run in runs]
            wall, cpu, times_pass = medians(runs, "after")
            after = [
                ms(wall),
                ms(max(run["after"][WALL] for run in runs)),
                ms(cpu),
                f"{times_pass:.1f}",
            ]
            if not paired:
                table.add_row(name, *after)
                continue
            wall, _, times_pass = medians(runs, "before")
            change = [f"{ratio(runs, WALL):.2f}", f"{ratio(runs, CPU):.2f}"]
            table.add_row(name, ms(wall), f"{times_pass:.1f}", *after, *change)
        python = ms(statistics.median(floor))
        table.add_row("python -c pass", *([python, "1.0"] if paired else []), python, "", "", "1.0")
        Console(width=120).print(table)


if __name__ == "__main__":
    main()
