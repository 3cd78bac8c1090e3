"""One `botwarden backtest`: the run (and with `--kills`, a second run killed N times),
its results read back, compared, and written where the user asked."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from botwarden.backtest.kills import Kills, run_killed
from botwarden.backtest.listing import note_run
from botwarden.backtest.report import write_html
from botwarden.backtest.results import Results, read_results
from botwarden.backtest.run import Plan, check_strategy, run
from botwarden.errors import ConfigError

IDS = {"trade_id", "client_order_id", "venue_order_id"}
"""A fill's names, which differ between two runs of the same trades."""


@dataclass(frozen=True)
class Outcome:
    results: Results
    killed: Results | None = None
    """The run killed `kills.wanted` times, where one was asked for."""
    kills: Kills | None = None
    differences: tuple[str, ...] = ()
    """How the killed run's trades or equity differ from the other's: none, ever."""
    written: Path | None = None


def differences(clean: Results, killed: Results) -> list[str]:
    """What a run that was killed and restarted did otherwise than one that was not:
    its closed trades, row by row (all but ids), its fills, what it held at the end,
    and its final equity."""
    found = []
    fills = [[f.model_dump(exclude=IDS) for f in r.fills] for r in (clean, killed)]
    if fills[0] != fills[1]:
        found.append(f"{len(killed.fills)} fills, not as the {len(clean.fills)} without kills")
    if clean.summary["open_at_end"] != killed.summary["open_at_end"]:
        found.append(f"held at the end: {killed.summary['open_at_end']}")
    ours, theirs = [t.row() for t in clean.trades], [t.row() for t in killed.trades]
    if len(ours) != len(theirs):
        found.append(f"{len(theirs)} trades, not {len(ours)}")
    for number, (a, b) in enumerate(zip(ours, theirs, strict=False), start=1):
        if a != b:
            changed = ", ".join(f"{k} {b[k]} (not {a[k]})" for k in a if a[k] != b[k])
            found.append(f"trade {number}: {changed}")
    if clean.summary["final_equity"] != killed.summary["final_equity"]:
        found.append(
            f"final equity {killed.summary['final_equity']} (not {clean.summary['final_equity']})"
        )
    return found


def _fresh(out: Path) -> Path:
    """`out`, a folder that holds nothing yet: a backtest never writes over another's
    files (or anything else)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: a file, not a folder; give a new folder's name")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: not an empty folder; give a new one (nothing was written)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _as_it_was(folder: Path, made: bool) -> None:
    """A run that failed leaves `folder` as it found it: empty, or not there (`made`)."""
    if made:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for path in folder.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def backtest(
    plan: Plan,
    argv: list[str],
    out: Path | None,
    kills: int = 0,
    seed: int = 0,
    each_pass: Callable[[datetime], None] | None = None,
) -> Outcome:
    """Run `plan` (named by `argv` for a child process: config, data, from, to) in
    `out` (a new folder; none: a temporary one, removed after), and with `kills`, once
    more in a child killed that many times."""
    strategy = plan.config.load_strategy()  # (a broken one: one line, nothing made)
    check_strategy(plan.config, strategy)
    with ExitStack() as stack:
        if out is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="backtest-")))
        else:
            made = not out.exists()
            folder = _fresh(out)
            stack.callback(_as_it_was, folder, made)
        asyncio.run(run(plan, folder, strategy, each_pass))
        results = asyncio.run(read_results(plan, folder))
        killed = record = None
        found: list[str] = []
        if kills:
            again = folder / "killed"
            again.mkdir()
            record = run_killed(plan, argv, again, kills, seed)
            killed = asyncio.run(read_results(plan, again))
            found = differences(results, killed)
            results.summary["kills"] = {
                "asked": kills,
                "done": len(record.done),
                "seed": seed,
                "same_as_never_killed": not found,
                "differences": found,
            }
        if out is not None:
            results.write(folder)
            write_html(results, folder / "report.html")
            stack.pop_all()  # (done: kept)
            note_run(folder, plan.config.bot_id, datetime.now(UTC))  # (for the dashboard)
        return Outcome(results, killed, record, tuple(found), out)
