"""Torture benchmark: how fast the simulator runs, and the real campaign.

    .venv/bin/python -m benchmarks.torture [--seeds 400] [--trials 20] [--history 2000,10000]

The simulator: seeds per second and simulated bot-days per second (one day per seed
unless said), in one process and in one process per CPU: the simulator's own busy
coin-flip bot with every fault kind and with none (a fault-free seed trades more:
nothing cuts its ticks short), a seed's fixed cost (a run of 0.05 days), and the
golden-cross example (a bot that trades every few days, as most do). The real
campaign: trials per minute, three per CPU at a time (as `botwarden torture --real`),
the same trials as they are and beside a past of each `--history` size (records),
one campaign after the other in this run.
"""

from __future__ import annotations

import argparse
import os
import time

from rich.console import Console
from rich.table import Table

from botwarden.config import load_config
from botwarden.demo import EXAMPLE
from botwarden.torture.campaign import run_campaign
from botwarden.torture.real import default_jobs, run_real_campaign
from botwarden.torture.simulation import Options


def simulator(seeds: int, jobs: int, options: Options) -> tuple[float, float, float]:
    started = time.perf_counter()
    summary = run_campaign(range(seeds), options, jobs=jobs, history_dir=None)
    assert not summary.failures, [o.seed for o in summary.failures]
    seconds = time.perf_counter() - started
    return seeds / seconds, summary.days / seconds, seconds * 1000 * jobs / seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--history", default="2000,10000", help="pasts beside the trials")
    parser.add_argument("--real-only", action="store_true", help="skip the simulator")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    console = Console()

    table = Table(title=f"The simulator ({args.seeds} seeds, {cpus} CPUs)", title_justify="left")
    for column in ("bot", "faults", "days/seed", "processes", "seeds/s", "bot-days/s", "ms/seed"):
        table.add_column(column, justify="right")
    golden = load_config(EXAMPLE)
    runs = [
        ("coin_flip", "all", Options(days=1.0)),
        ("coin_flip", "all", Options(days=0.05)),
        ("coin_flip", "none", Options(days=1.0, faults=frozenset())),
        ("golden_cross example", "all", Options(days=1.0, config=golden)),
    ]
    for bot, faults, options in [] if args.real_only else runs:
        for jobs in (1, cpus):
            rate, day_rate, per_seed = simulator(args.seeds, jobs, options)
            table.add_row(
                bot, faults, f"{options.days:g}", str(jobs), f"{rate:.1f}", f"{day_rate:.1f}",
                f"{per_seed:.0f}",
            )  # fmt: skip
    if not args.real_only:
        console.print(table)

    table = Table(title=f"Real processes ({args.trials} trials)", title_justify="left")
    columns = ("past (records)", "trials", "SIGKILLs", "freezes", "second copies", "rebuilds")
    for column in (*columns, "s a trial", "of it seeding", "trials/min"):
        table.add_column(column, justify="right")
    for history in sorted({0, *map(int, args.history.split(","))}):
        real = run_real_campaign(range(args.trials), jobs=default_jobs(), history=history)
        assert not real.failures, [(t.number, t.error, t.violations) for t in real.failures]
        counts = real.counts
        table.add_row(
            f"{history:,}", str(real.trials), str(counts["kills"]), str(counts["freezes"]),
            str(counts["second_instances"]), str(counts["rebuilds"]),
            f"{real.trial_seconds / real.trials:.1f}", f"{real.seeding_seconds / real.trials:.1f}",
            f"{real.trials / real.seconds * 60:.1f}",
        )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
