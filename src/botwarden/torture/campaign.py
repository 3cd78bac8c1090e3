"""Many seeds of the simulator, spread over processes, summed up in one table.

Each seed runs in its own scratch folder (in memory-backed `/dev/shm` where there is
one: the simulated crashes are in-process, so the files need no disk) and comes back
as its `Outcome`, without its history: a failing seed writes that to `history_dir`
and is reported with the command that replays it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from botwarden.redact import redact_url
from botwarden.torture.simulation import FAULTS, Options, Outcome, simulate
from botwarden.torture.tables import print_table, violation_rows


@dataclass
class Summary:
    seeds: int = 0
    days: float = 0.0
    crashes: int = 0
    recoveries: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    orders: int = 0
    fills: int = 0
    violations: Counter[str] = field(default_factory=Counter)
    strategy_failures: int = 0
    failures: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, outcome: Outcome) -> None:
        self.seeds += 1
        self.days += outcome.days
        self.crashes += outcome.crashes
        self.recoveries += outcome.recoveries
        self.faults += outcome.faults
        self.orders += outcome.orders
        self.fills += outcome.fills
        self.strategy_failures += outcome.strategy_failures
        self.violations.update(f.violation.promise for f in outcome.findings)
        if outcome.error:
            self.violations["bug"] += 1
        if outcome.failed:
            self.failures.append(outcome)


def scratch_root() -> str | None:
    """Where seeds keep their files: memory-backed if the machine has it."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def run_seed(seed: int, options: Options, history_dir: Path | None) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="botwarden-torture-", dir=scratch_root()) as folder:
        outcome = asyncio.run(simulate(seed, options, Path(folder)))
    if outcome.failed and history_dir is not None and outcome.history is not None:
        outcome.history_file = outcome.history.write(history_dir / f"seed-{seed}.history")
    outcome.history = None  # large, and only worth keeping for a failing seed: written
    return outcome


def _run_chunk(seeds: list[int], options: Options, history_dir: Path | None) -> list[Outcome]:
    logger = logging.getLogger("botwarden")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # thousands of injected faults: the table says it all
    try:
        return [run_seed(seed, options, history_dir) for seed in seeds]
    finally:
        logger.setLevel(level)


def _chunks(seeds: Iterable[int], size: int) -> Iterator[list[int]]:
    chunk: list[int] = []
    for seed in seeds:
        chunk.append(seed)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_campaign(
    seeds: range,
    options: Options,
    *,
    jobs: int,
    history_dir: Path | None,
    progress: Callable[[Outcome], None] = lambda outcome: None,
) -> Summary:
    """Run every seed (over `jobs` processes; 1: in this one) and sum them up."""
    summary = Summary()
    started = time.perf_counter()
    chunks = list(_chunks(seeds, 20))
    if jobs <= 1:
        for chunk in chunks:
            for outcome in _run_chunk(chunk, options, history_dir):
                summary.add(outcome)
                progress(outcome)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_run_chunk, chunk, options, history_dir) for chunk in chunks]
            for future in futures:
                for outcome in future.result():
                    summary.add(outcome)
                    progress(outcome)
    summary.seconds = time.perf_counter() - started
    return summary


def replay_command(seed: int, options: Options, config: Path | None) -> str:
    """The command that runs `seed` again, exactly."""
    words = ["botwarden", "torture", "--seeds", "1", "--seed-base", str(seed)]
    if options.days != Options.days:
        words += ["--days", f"{options.days:g}"]
    if options.faults != frozenset(FAULTS):
        words += ["--faults", ",".join(sorted(options.faults)) or "none"]
    if config is not None:
        words += ["--config", str(config)]
    if options.store != Options.store:
        words += ["--store", options.store]
    if options.store_url is not None:
        words += ["--store-url", redact_url(options.store_url)]
    return shlex.join(words)


def print_summary(console, summary: Summary, options: Options, config: Path | None) -> None:
    """The campaign's table, then each failing seed with its evidence and replay."""
    seconds = max(summary.seconds, 1e-9)
    bot = options.config
    strategy = bot.strategy.spec if bot is not None else "coin_flip, drawn by each seed"
    rows = [
        ("strategy", strategy),
        ("seeds", f"{summary.seeds:,}"),
        ("simulated bot-days", f"{summary.days:,.0f}"),
        ("crashes", f"{summary.crashes:,}"),
        ("recoveries", f"{summary.recoveries:,}"),
        ("orders", f"{summary.orders:,}"),
        ("fills", f"{summary.fills:,}"),
        *(
            (f"faults: {kind}", f"{summary.faults[kind]:,}")
            for kind in FAULTS
            if kind in options.faults
        ),
        *violation_rows(summary.violations),
        ("engine errors (bugs)", f"{summary.violations['bug']:,}"),
        ("strategy failures (its own errors)", f"{summary.strategy_failures:,}"),
        ("seeds per second", f"{summary.seeds / seconds:,.1f}"),
        ("bot-days per second", f"{summary.days / seconds:,.1f}"),
        ("wall time", f"{summary.seconds:,.1f} s"),
    ]
    print_table(console, "botwarden torture", rows)
    if summary.strategy_failures:
        console.print(
            f"\n[red]the strategy failed {summary.strategy_failures:,} time(s)[/] (its own"
            " errors, not the engine's; every position stayed protected): a seed's bot"
            " log says where, `botwarden run` on the same config shows it too",
            highlight=False,
        )
    for outcome in summary.failures[:10]:
        console.print(f"\n[red]seed {outcome.seed} FAILED[/] ({outcome.scenario})", highlight=False)
        for finding in outcome.findings[:5]:
            text = f"{finding.when}: {finding.violation.explain()}"
            console.print(text, markup=False, highlight=False)
        if outcome.error:
            console.print(outcome.error, markup=False, highlight=False)
        if outcome.history_file:
            console.print(f"history: {outcome.history_file}", markup=False, highlight=False)
        console.print(f"replay: {replay_command(outcome.seed, options, config)}", markup=False)
    if len(summary.failures) > 10:
        console.print(f"... and {len(summary.failures) - 10} more failing seeds")
