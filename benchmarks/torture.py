"""Torture benchmark: how fast the simulator runs, and the real campaign.

    .venv/bin/python -m benchmarks.torture [--seeds 400] [--trials 20] [--history 2000,10000]
    .venv/bin/python -m benchmarks.torture --baseline ../before/src [--rounds 3]

The simulator: seeds per second and simulated bot-days per second (one day per seed
unless said), in one process and in one process per CPU: the simulator's own busy
coin-flip bot with every fault kind and with none (a fault-free seed trades more:
nothing cuts its ticks short), a seed's fixed cost (a run of 0.05 days), and the
golden-cross example (a bot that trades every few days, as most do). The real
campaign: trials per minute, three per CPU at a time (as `botwarden torture --real`),
the same trials as they are and beside a past of each `--history` size (records),
one campaign after the other in this run.

`--baseline SRC` (another checkout's `src`, say a `git worktree` of the commit before
a change): every row is run on this code and on that one in turn, `--rounds` times,
each run in a fresh process, and compared run by run: on a shared machine whose load
moves by the minute, only a ratio measured side by side means anything. The
simulator's CPU time per bot-day (every process's) is shown too: it moves less than
the wall clock when others take the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

import botwarden
from botwarden.config import load_config
from botwarden.demo import EXAMPLE
from botwarden.torture.campaign import run_campaign
from botwarden.torture.real import default_jobs, run_real_campaign
from botwarden.torture.simulation import Options

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Row:
    bot: str
    faults: str
    days: float
    jobs: int

    def options(self) -> Options:
        config = load_config(EXAMPLE) if self.bot != "coin_flip" else None
        faults = {} if self.faults == "all" else {"faults": frozenset()}
        return Options(days=self.days, config=config, **faults)


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float
    """Of this process and its children (the pool's workers)."""
    days: float

    @property
    def day_rate(self) -> float:
        return self.days / self.seconds

    @property
    def cpu_ms_per_day(self) -> float:
        return self.cpu_seconds * 1000 / self.days


def rows(cpus: int) -> list[Row]:
    kinds = [
        ("coin_flip", "all", 1.0),
        ("coin_flip", "all", 0.05),
        ("coin_flip", "none", 1.0),
        ("golden_cross example", "all", 1.0),
    ]
    return [Row(bot, faults, days, jobs) for bot, faults, days in kinds for jobs in (1, cpus)]


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def simulate(seeds: int, row: Row) -> Run:
    options = row.options()
    started, cpu = time.perf_counter(), cpu_seconds()
    summary = run_campaign(range(seeds), options, jobs=row.jobs, history_dir=None)
    assert not summary.failures, [o.seed for o in summary.failures]
    return Run(time.perf_counter() - started, cpu_seconds() - cpu, summary.days)


def simulate_in(src: Path, seeds: int, row: Row) -> Run:
    """`simulate` in a fresh process that imports botwarden from `src`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(ROOT)])}
    spec = json.dumps([seeds, row.bot, row.faults, row.days, row.jobs])
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.torture", "--worker", spec],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the run on {src} failed:\n{done.stderr[-3000:]}")
    return Run(*json.loads(done.stdout.splitlines()[-1]))


def worker(spec: str) -> None:
    seeds, bot, faults, days, jobs = json.loads(spec)
    run = simulate(seeds, Row(bot, faults, days, jobs))
    print(json.dumps([run.seconds, run.cpu_seconds, run.days]))


def single_table(seeds: int, cpus: int) -> Table:
    table = Table(title=f"The simulator ({seeds} seeds, {cpus} CPUs)", title_justify="left")
    for column in ("bot", "faults", "days/seed", "processes", "seeds/s", "bot-days/s", "ms/seed"):
        table.add_column(column, justify="right")
    for row in rows(cpus):
        run = simulate(seeds, row)
        table.add_row(
            row.bot, row.faults, f"{row.days:g}", str(row.jobs), f"{seeds / run.seconds:.1f}",
            f"{run.day_rate:.1f}", f"{run.seconds * 1000 * row.jobs / seeds:.0f}",
        )  # fmt: skip
    return table


def paired_table(seeds: int, cpus: int, baseline: Path, rounds: int) -> Table:
    here = Path(botwarden.__file__).resolve().parents[1]
    title = (
        f"The simulator ({seeds} seeds, {cpus} CPUs): this code and {baseline} in turn,"
        f" {rounds} rounds; medians, ratio = median of the rounds' ratios"
    )
    table = Table(title=title, title_justify="left")
    for column in (
        "bot", "faults", "days/seed", "processes", "bot-days/s", "baseline", "ratio",
        "CPU ms/bot-day", "baseline", "ratio",
    ):  # fmt: skip
        table.add_column(column, justify="right")
    for row in rows(cpus):
        mine: list[Run] = []
        theirs: list[Run] = []
        for _ in range(rounds):
            theirs.append(simulate_in(baseline, seeds, row))
            mine.append(simulate_in(here, seeds, row))
        rate = statistics.median(r.day_rate for r in mine)
        their_rate = statistics.median(r.day_rate for r in theirs)
        cpu = statistics.median(r.cpu_ms_per_day for r in mine)
        their_cpu = statistics.median(r.cpu_ms_per_day for r in theirs)
        pairs = list(zip(mine, theirs, strict=True))
        speed = statistics.median(m.day_rate / t.day_rate for m, t in pairs)
        saved = statistics.median(t.cpu_ms_per_day / m.cpu_ms_per_day for m, t in pairs)
        table.add_row(
            row.bot, row.faults, f"{row.days:g}", str(row.jobs), f"{rate:.1f}",
            f"{their_rate:.1f}", f"{speed:.2f}", f"{cpu:.0f}", f"{their_cpu:.0f}",
            f"{saved:.2f}",
        )  # fmt: skip
    return table


def real_table(trials: int, histories: list[int]) -> Table:
    table = Table(title=f"Real processes ({trials} trials)", title_justify="left")
    columns = ("past (records)", "trials", "SIGKILLs", "freezes", "second copies", "rebuilds")
    for column in (*columns, "s a trial", "of it seeding", "trials/min"):
        table.add_column(column, justify="right")
    for history in histories:
        real = run_real_campaign(range(trials), jobs=default_jobs(), history=history)
        assert not real.failures, [(t.number, t.error, t.violations) for t in real.failures]
        counts = real.counts
        table.add_row(
            f"{history:,}", str(real.trials), str(counts["kills"]), str(counts["freezes"]),
            str(counts["second_instances"]), str(counts["rebuilds"]),
            f"{real.trial_seconds / real.trials:.1f}", f"{real.seeding_seconds / real.trials:.1f}",
            f"{real.trials / real.seconds * 60:.1f}",
        )  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--baseline", type=Path, help="another checkout's src, run in turn")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--history", default="2000,10000", help="pasts beside the trials")
    parser.add_argument("--real-only", action="store_true", help="skip the simulator")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    if args.baseline is not None and not (args.baseline / "botwarden").is_dir():
        parser.error(f"--baseline {args.baseline}: no botwarden package there (give its src)")
    cpus = os.cpu_count() or 1
    console = Console(width=None if sys.stdout.isatty() else 140)
    if args.real_only:
        pass
    elif args.baseline is None:
        console.print(single_table(args.seeds, cpus))
    else:
        console.print(paired_table(args.seeds, cpus, args.baseline.resolve(), args.rounds))
    histories = sorted({0, *map(int, args.history.split(","))})
    console.print(real_table(args.trials, histories))


if __name__ == "__main__":
    main()
