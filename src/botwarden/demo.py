"""`botwarden demo`: the golden-cross bot on the paper exchange, killed with SIGKILL and
restarted, then every promise (I1 to I6) checked against the exchange's own records.

The bot runs as a real `botwarden run` process, at an accelerated exchange clock (an
hour of trading a tick), in a fresh folder. The demo kills it at random moments (at
least `kills` times, at least once while it holds a position), starts a second
instance once while the first one runs (it must be refused), restarts it after each
kill, and stops it with SIGTERM at the end. Then it reads the bot's state and the
paper exchange's book and reports: trades and PnL, each restart and what its
recovery found and did, and each promise PASS or FAIL. Exit status 1 if any failed.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from botwarden.config import BotConfig, load_config
from botwarden.engine.checks import PROMISES, Violation, check_promises
from botwarden.engine.ids import ClientIds
from botwarden.errors import ConfigError
from botwarden.state.history import WholeState
from botwarden.state.manager import StateManager
from botwarden.venues.factory import open_paper_venue

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "golden_cross.yaml"
SPEED = 72000
"""Exchange seconds per wall-clock second: an hour of trading every 50 ms."""


@dataclass
class Run:
    """One process of the bot, and how it ended."""

    ended: str = "running"
    holding_when_killed: bool = False


@dataclass
class Campaign:
    runs: list[Run] = field(default_factory=list)
    second_instance: str = ""
    """What a second `botwarden run` said while the bot ran (it must be refused)."""


def prepare(source: Path | None, workdir: Path, seed: int) -> Path:
    """The bot's config in `workdir` (its state and the exchange's book go there too),
    with the exchange clock accelerated for the demo and started at a time the seed
    picks, so that a seed gives the same prices again."""
    source = source or EXAMPLE
    load_config(source)  # one clear error for a bad config, before anything runs
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    venue = raw.get("venue") or {}
    if venue.get("type", "paper") != "paper":
        raise ConfigError(f"{source}: the demo runs on the paper exchange (venue type paper)")
    start = datetime(2025, 1, 6, tzinfo=UTC) + timedelta(hours=seed % (24 * 365))
    raw["venue"] = {**venue, "type": "paper", "speed": SPEED, "start": start.isoformat()}
    raw["engine"] = {**(raw.get("engine") or {}), "check_interval": "1h"}
    target = workdir / "bot.yaml"
    target.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return target


def _environment(config: Path) -> dict[str, str]:
    """The bot's runtime files (its log) in the demo's folder, not the user's home."""
    return {**os.environ, "COLUMNS": "200", "BOTWARDEN_HOME": str(config.parent / "home")}


def _start(config: Path, said: Path) -> subprocess.Popen:
    """`botwarden run CONFIG`, what it says on stderr kept in `said` (a pipe nobody
    reads while it runs would fill, and the bot would hang writing to it)."""
    with said.open("w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "botwarden", "run", str(config), "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=_environment(config),
        )


def holding(book: Path) -> bool:
    """Does the exchange hold a position for the bot right now? (Read-only, while the
    bot writes: SQLite's WAL lets a reader in.)"""
    if not book.exists():
        return False
    try:
        with sqlite3.connect(f"file:{book}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT count(*) FROM positions").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def campaign(
    config: Path, book: Path, kills: int, seconds: float, rng: random.Random, progress
) -> Campaign:
    """Run, kill, restart; one second instance along the way; SIGTERM at the end."""
    done = Campaign()
    started = time.monotonic()
    task = progress.add_task("trading", total=seconds)
    want_holding = rng.randrange(kills)  # which kill waits for an open position
    for number in range(kills + 1):
        run = Run()
        done.runs.append(run)
        said = config.parent / f"run-{number + 1}.stderr"
        process = _start(config, said)
        last = number == kills
        budget = seconds - (time.monotonic() - started)
        lifetime = budget if last else rng.uniform(0.35, 0.8) * budget / (kills - number)
        deadline = time.monotonic() + max(lifetime, 2.0)
        # The kill meant to hit an open position waits for one, but not forever (a bot
        # whose guards keep it flat never holds one). Golden crosses come some 10 to 20
        # seconds apart here, and one that falls in a restart's gap is missed: room for
        # two of them.
        patience = deadline + max(seconds, 30.0)
        while time.monotonic() < deadline or (
            number == want_holding and not holding(book) and time.monotonic() < patience
        ):
            if process.poll() is not None:
                break
            if number == 1 and not done.second_instance and time.monotonic() > deadline - 1:
                second = subprocess.run(
                    [sys.executable, "-m", "botwarden", "run", str(config)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    env=_environment(config),
                )
                said = [ln for ln in second.stderr.splitlines() if "error:" in ln]
                done.second_instance = f"exit {second.returncode}: " + " ".join(said)
            if number == want_holding and holding(book) and time.monotonic() >= deadline:
                break
            progress.update(
                task,
                completed=min(seconds, time.monotonic() - started),
                description=f"trading (run {number + 1} of {kills + 1})",
            )
            time.sleep(0.05)
        if process.poll() is not None:
            run.ended = f"exited by itself ({process.returncode}): {said.read_text()[-300:]}"
            continue
        if last:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
            run.ended = "SIGTERM" if process.returncode == 0 else f"exit {process.returncode}"
        else:
            run.holding_when_killed = holding(book)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
            run.ended = "SIGKILL"
    progress.update(task, completed=seconds)
    return done


async def _outcome(config: BotConfig) -> tuple[WholeState, list[Violation]]:
    async with StateManager.from_config(config.bot_id, config) as state:
        snapshot = await WholeState.read(await state.snapshot(), state.history)
    venue = open_paper_venue(config.venue, config.bot_id, config.base_dir)
    try:
        epoch = snapshot.bot.instance.epoch if snapshot.bot.instance else 0
        violations = check_promises(snapshot, venue.book, ClientIds(config.bot_id, epoch))
    finally:
        venue.book.close()
    return snapshot, violations


def run_demo(
    console: Console,
    source: Path | None = None,
    *,
    kills: int = 3,
    seconds: float = 60.0,
    seed: int | None = None,
    workdir: Path | None = None,
) -> int:
    seed = seed if seed is not None else random.randrange(10**6)
    rng = random.Random(seed)
    workdir = workdir or Path(tempfile.mkdtemp(prefix="botwarden-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = prepare(source, workdir, seed)
    config = load_config(config_path)
    book = workdir / "state" / f"{config.bot_id}.paper.db"
    console.print(
        f"[bold]botwarden demo[/]: bot {config.bot_id} ({config.strategy.spec} on"
        f" {', '.join(config.symbols)}) on the paper exchange, an hour of trading every"
        f" {3600 / SPEED * 1000:.0f} ms; killed with SIGKILL {kills} times. Seed {seed};"
        f" files in {workdir}"
    )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        done = campaign(config_path, book, kills, seconds, rng, progress)
    state, violations = asyncio.run(_outcome(config))
    if "already running" not in done.second_instance:
        violations.append(
            Violation("I4", f"a second instance was not refused: {done.second_instance!r}")
        )
    report(console, state, done, violations)
    return 1 if violations else 0


def report(
    console: Console, state: WholeState, done: Campaign, violations: list[Violation]
) -> None:
    trades = [e for e in state.events.values() if e.kind == "trade"]
    pnl = sum((Decimal(e.data.get("pnl", "0")) for e in trades), Decimal(0))
    kills = sum(run.ended == "SIGKILL" for run in done.runs)
    killed_holding = sum(run.holding_when_killed for run in done.runs)
    console.print(
        f"\n{len(trades)} trades, PnL {pnl:+.2f}; {kills} SIGKILLs ({killed_holding} while holding"
        f" a position), {len(done.runs)} runs; a second instance: {done.second_instance}"
    )
    recoveries = Table(title="What each start found and did", title_justify="left")
    recoveries.add_column("run", justify="right")
    recoveries.add_column("recovery")
    run, lines = 0, []
    for event in state.events.values():
        if "instance" in event.data:  # a new instance started
            if lines:
                recoveries.add_row(str(run), "\n".join(lines))
            run, lines = run + 1, []
        elif event.kind == "recovery":
            lines.append(event.message)
    if lines:
        recoveries.add_row(str(run), "\n".join(lines))
    console.print(recoveries)
    promises = Table(
        title="The promises, checked against the exchange's book", title_justify="left"
    )
    for column in ("promise", "", "result"):
        promises.add_column(column)
    for key, name in PROMISES.items():
        failed = [v for v in violations if v.promise == key]
        result = (
            "[green]PASS[/]"
            if not failed
            else "[red]FAIL[/]: " + "; ".join(v.message for v in failed[:3])
        )
        promises.add_row(key, name, result)
    console.print(promises)
