"""`botwarden backtest --kills N`: the backtest run in a process of its own, killed with
SIGKILL at N moments drawn from a seed, and started again on its folder each time,
until it ends. A kill lands wherever the process is: between passes, in a write, with
an order sent and its answer not stored. What it traded is then read back as for any
run, and compared with a run that was never killed.

The moments are drawn as passes of the backtest (the process is killed a few
milliseconds, also drawn, after its book has reached that pass), so that they spread
over the whole run however fast the machine is.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from botwarden.backtest.run import BOOK, Plan, run
from botwarden.errors import BotwardenError

POLL = 0.002
"""Seconds between two looks at how far the killed process has got."""


@dataclass
class Kills:
    """What happened to a killed run."""

    wanted: int
    done: list[datetime] = field(default_factory=list)
    """The pass each kill came after (the book's time then)."""
    starts: int = 0


def _reached(folder: Path) -> datetime | None:
    """How far the book in `folder` has got, as another process sees it."""
    path = folder / BOOK
    if not path.exists():
        return None
    try:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'processed_until'").fetchone()
    except sqlite3.Error:  # (being created)
        return None
    return None if row is None else datetime.fromisoformat(row[0])


def _worker(argv: list[str], folder: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (folder / "worker.log").open("ab") as log:  # (the child keeps its own copy)
        return subprocess.Popen(
            [sys.executable, "-m", "botwarden.backtest.kills", *argv, str(folder)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )


def _failed(child: subprocess.Popen[bytes], folder: Path) -> BotwardenError:
    log = (folder / "worker.log").read_text(errors="replace").strip()
    return BotwardenError(
        f"the backtest's process ended with exit status {child.returncode}:"
        f" {log.splitlines()[-1] if log else 'it said nothing'}"
    )


def run_killed(plan: Plan, argv: list[str], folder: Path, kills: int, seed: int) -> Kills:
    """Run the backtest `argv` names (the config, data, from and to of `plan`) in a
    child process on `folder`, killing it `kills` times."""
    rng = random.Random(f"backtest-kills:{seed}")
    passes = plan.passes()
    moments = sorted(rng.sample(passes[:-1], min(kills, len(passes) - 1)))
    record = Kills(kills)
    while True:
        record.starts += 1
        child = _worker(argv, folder)
        try:
            target = moments[len(record.done)] if len(record.done) < len(moments) else None
            while child.poll() is None:
                reached = _reached(folder) if target is not None else None
                if reached is not None and target is not None and reached >= target:
                    time.sleep(rng.uniform(0, 0.03))
                    if child.poll() is None:
                        child.send_signal(signal.SIGKILL)
                        child.wait()
                        record.done.append(reached)
                    break
                time.sleep(POLL)
        finally:  # (this process interrupted: its child goes with it)
            if child.poll() is None:
                child.kill()
                child.wait()
        if child.returncode == 0:  # done, or it ended before the kill could land
            return record
        if child.returncode != -signal.SIGKILL:
            raise _failed(child, folder)


def main() -> None:
    """The child: `python -m botwarden.backtest.kills CONFIG DATA FROM TO FOLDER`
    (`-` for a value not given)."""
    config, data, start, end, folder = sys.argv[1:6]
    plan = Plan.read(
        Path(config),
        None if data == "-" else Path(data),
        None if start == "-" else start,
        None if end == "-" else end,
    )
    asyncio.run(run(plan, Path(folder), plan.config.load_strategy()))


if __name__ == "__main__":
    main()
