"""`botwarden torture --real`: the same promises, checked on real processes.

Each trial runs the paper exchange as its own process (`botwarden venue serve --api
alpaca`, an hour of exchange time every wall-clock second) and the bot as another
(`botwarden run`, through alpaca-py over HTTP, with a coin-flip strategy on hourly
bars). The harness then, one to three times:
- starts the bot, sometimes with a named crash point armed (`BOTWARDEN_CRASH_AT`: the
  bot kills itself with SIGKILL there), sometimes freezes it with SIGSTOP for a while
  and resumes it with SIGCONT, sometimes starts a second copy while it runs (which
  must be refused: I4);
- kills it with SIGKILL at a random moment, if it is still alive.
Then the exchange is restarted nearly frozen (so nothing fires while the books are
compared), the bot runs a few clean passes and stops by itself, the exchange stops,
and every promise is checked in full on the two processes' files.

Every process is `botwarden`'s own command line (`venue serve`, `run`), forked from a
warmed-up parent that has already imported botwarden, alpaca-py and the web server
(multiprocessing's fork server, as a pre-fork server does): each is a real process,
with its own PID, files, lock and signals, but starts in milliseconds instead of the
second its imports take, which is what lets a hundred trials fit in CI.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from botwarden.engine.checks import PROMISES, Violation
from botwarden.engine.crash import POINTS
from botwarden.torture.tables import print_table, violation_rows

KEY, SECRET = "torture-key", "torture-secret"
SPEED = 3600
"""Exchange seconds per wall-clock second while the bot is being killed."""
STILL = 0.001
"""...and while the books are compared: a stop firing then would be a race, not a bug."""
HEALING_TICKS = 5


def default_jobs() -> int:
    """Trials at once: three per CPU, since a trial mostly waits on its bot."""
    return 3 * (os.cpu_count() or 1)


@dataclass
class TrialOutcome:
    number: int
    counts: Counter[str] = field(default_factory=Counter)
    """kills (SIGKILLs, by the harness or by the bot at an armed crash point),
    at_points, freezes, second_instances, orders, fills."""
    violations: list[Violation] = field(default_factory=list)
    error: str | None = None
    folder: Path | None = None

    @property
    def failed(self) -> bool:
        return bool(self.violations or self.error)


@dataclass
class RealSummary:
    trials: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    failures: list[TrialOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, trial: TrialOutcome) -> None:
        self.trials += 1
        self.counts += trial.counts
        self.violations.update(v.promise for v in trial.violations)
        if trial.error:
            self.violations["error"] += 1
        if trial.failed:
            self.failures.append(trial)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PRELOAD = [
    "botwarden.cli",
    "botwarden.process.run",
    "botwarden.venues.alpaca",
    "botwarden.venues.emulators.alpaca",
    "alpaca.trading.client",
    "alpaca.data.historical",
    "uvicorn",
]
_forks = multiprocessing.get_context("forkserver")
_forks.set_forkserver_preload(PRELOAD)


def _main(argv: list[str], folder: Path, env: dict[str, str], output: Path) -> None:
    """In the child: `botwarden ARGV` in `folder`, its output to `output`."""
    os.chdir(folder)
    os.environ.clear()
    os.environ.update(env)
    os.environ["BOTWARDEN_HOME"] = str(folder / "home")  # its log and records: the trial's
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.argv = ["botwarden", *argv]
    from botwarden.cli import main

    main()


_POLLING = threading.Lock()
"""multiprocessing polls every child of the process when it starts one, from whatever
thread starts it: two threads reading one child's exit status race, and the loser
reads 255. Trials run in threads, so every start and poll goes through this lock."""


class Command:
    """`botwarden ARGS` as a real process of its own, its output kept in a file."""

    def __init__(self, argv: list[str], folder: Path, env: dict[str, str]) -> None:
        self.output = folder / f"{argv[0]}-{time.monotonic_ns()}.out"
        self.process = _forks.Process(target=_main, args=(argv, folder, env, self.output))
        with _POLLING:
            self.process.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        with _POLLING:
            return self.process.is_alive()

    def signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # it died meanwhile
            os.kill(self.pid, number)

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                raise TimeoutError(f"botwarden (pid {self.pid}) did not exit in {timeout} s")
            time.sleep(0.01)
        with _POLLING:
            return self.process.exitcode

    def said(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""


class Exchange:
    """The paper exchange behind Alpaca's API, as its own process."""

    def __init__(self, folder: Path, seed: int) -> None:
        self.folder = folder
        self.seed = seed
        self.book = folder / "exchange.db"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: Command | None = None

    def start(self, speed: float) -> None:
        self.process = Command(
            ["venue", "serve", "--api", "alpaca", "--port", str(self.port), "--key", KEY,
             "--secret", SECRET, "--book", str(self.book), "--seed", str(self.seed),
             "--speed", str(speed)],
            self.folder, _environment(),
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if not self.process.alive() or time.monotonic() > deadline:
                    said = self.process.said()
                    raise RuntimeError(f"the exchange did not start: {said}") from None
                time.sleep(0.01)

    def stop(self) -> None:
        if self.process is not None and self.process.alive():
            self.process.signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None


def write_config(folder: Path, exchange: Exchange, rng: random.Random) -> Path:
    config = {
        "bot_id": "realtorture",
        "symbols": rng.sample(["SPY", "QQQ", "AAPL"], rng.choice([1, 2])),
        "order": {"notional": 2000},
        "strategy": {
            "name": "coin_flip",
            "params": {"seed": rng.randrange(10**6), "enter": 0.5, "exit": 0.3, "short": True},
            "timeframe": "1h",
        },
        "stop": {"distance": rng.choice([1, 2]), "trailing": rng.random() < 0.5},
        "state": {"recovery": {"mode": rng.choice(["sync", "restore", "close_all"])}},
        "venue": {"type": "alpaca", "base_url": exchange.url, "data_url": exchange.url},
        "engine": {"check_interval": "200ms", "unknown_order_grace": "1s"},
    }
    path = folder / "bot.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _environment(crash_at: str | None = None) -> dict[str, str]:
    env = {**os.environ, "ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET}
    env.pop("BOTWARDEN_CRASH_AT", None)
    if crash_at:
        env["BOTWARDEN_CRASH_AT"] = crash_at
    return env


def run_trial(number: int, workdir: Path) -> TrialOutcome:
    trial = TrialOutcome(number)
    folder = workdir / f"trial-{number}"
    folder.mkdir(parents=True)
    trial.folder = folder
    rng = random.Random(f"real:{number}")
    exchange = Exchange(folder, seed=number)
    try:
        exchange.start(SPEED)
        config = write_config(folder, exchange, rng)
        for _ in range(rng.randint(1, 3)):
            _one_life(trial, config, rng)
        exchange.stop()
        exchange.start(STILL)
        healing = ["run", str(config), "--ticks", str(HEALING_TICKS)]
        healed = Command(healing, folder, _environment())
        code = healed.wait(timeout=120)
        exchange.stop()
        if code != 0:
            trial.error = f"the last run exited {code}: {healed.said()[-500:]}"
            return trial
        trial.violations += _check(config, exchange, trial)
    except Exception as error:  # a harness failure is a failed trial, said plainly
        trial.error = f"{type(error).__name__}: {error}"
    finally:
        exchange.stop()
    return trial


def _one_life(trial: TrialOutcome, config: Path, rng: random.Random) -> None:
    """Start the bot, torment it, kill it."""
    crash_at = None
    if rng.random() < 0.4:
        crash_at = f"{rng.choice(sorted(POINTS))}:{rng.randint(1, 2)}"
    bot = Command(["run", str(config)], config.parent, _environment(crash_at))
    try:
        time.sleep(rng.uniform(0.3, 1.5))
        if bot.alive() and rng.random() < 0.3:
            bot.signal(signal.SIGSTOP)  # frozen: the exchange moves on without it
            trial.counts["freezes"] += 1
            time.sleep(rng.uniform(0.1, 0.6))
            bot.signal(signal.SIGCONT)
            time.sleep(rng.uniform(0.1, 0.4))
        if bot.alive() and rng.random() < 0.25:
            trial.counts["second_instances"] += 1
            second = Command(["run", str(config), "--ticks", "1"], config.parent, _environment())
            code, said = second.wait(timeout=60), second.said()
            # Refused, or it ran because the first died meanwhile (at its crash point)
            if bot.alive() and (code == 0 or "already running" not in said):
                last = said.strip().splitlines()[-1:] or ["nothing"]
                trial.violations.append(
                    Violation(
                        "I4",
                        "a second instance started while the first ran was not refused:"
                        f" exit {code}, {last[0]}",
                    )
                )
        if bot.alive():
            bot.signal(signal.SIGKILL)
        else:
            trial.counts["at_points"] += bot.wait(timeout=30) == -signal.SIGKILL
        code = bot.wait(timeout=30)
        if code != -signal.SIGKILL:
            raise RuntimeError(f"the bot exited by itself ({code}): {bot.said()[-500:]}")
        trial.counts["kills"] += 1
    finally:
        if bot.alive():
            bot.signal(signal.SIGKILL)
            bot.wait(timeout=30)


def _check(config_path: Path, exchange: Exchange, trial: TrialOutcome) -> list[Violation]:
    """Every promise but I4 (the bot's clock is the wall clock, the exchange's runs
    faster: the second-instance check covers I4 here) on the files of both."""
    import asyncio

    from botwarden.config import PaperVenueSettings, load_config
    from botwarden.engine.checks import check_promises
    from botwarden.engine.ids import ClientIds
    from botwarden.state.manager import StateManager
    from botwarden.venues.emulators.alpaca import book_trade_id
    from botwarden.venues.factory import paper_book

    config = load_config(config_path)

    async def state():
        async with StateManager.from_config(config.bot_id, config) as manager:
            return await manager.snapshot()

    snapshot = asyncio.run(state())
    book = paper_book(PaperVenueSettings(seed=exchange.seed), exchange.book)
    try:
        epoch = snapshot.bot.instance.epoch if snapshot.bot.instance else 0
        ids = ClientIds(config.bot_id, epoch)
        trial.counts["orders"] = sum(ids.owns(o.client_order_id) for o in book.all_orders())
        trial.counts["fills"] = sum(ids.owns(f.client_order_id) for _, f in book.fills())
        promises = [p for p in PROMISES if p != "I4"]
        return check_promises(snapshot, book, ids, promises, book_trade_id=book_trade_id)
    finally:
        book.close()


def run_real_campaign(
    trials: range,
    *,
    jobs: int,
    progress: Callable[[TrialOutcome], None] = lambda trial: None,
) -> RealSummary:
    """Run the trials, `jobs` at a time (each is two processes, mostly waiting). A
    failing trial's files are kept for a look; the rest are removed."""
    summary = RealSummary()
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="botwarden-real-"))

    def trial(number: int) -> TrialOutcome:
        outcome = run_trial(number, root)
        if not outcome.failed:
            shutil.rmtree(outcome.folder, ignore_errors=True)
        return outcome

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for outcome in pool.map(trial, trials):
            summary.add(outcome)
            progress(outcome)
    if not summary.failures:
        shutil.rmtree(root, ignore_errors=True)
    summary.seconds = time.perf_counter() - started
    return summary


def print_real_summary(console, summary: RealSummary) -> None:
    minutes = max(summary.seconds, 1e-9) / 60
    counts = summary.counts
    rows = [
        ("trials", f"{summary.trials:,}"),
        ("SIGKILLs", f"{counts['kills']:,}"),
        ("...at a named crash point", f"{counts['at_points']:,}"),
        ("SIGSTOP / SIGCONT freezes", f"{counts['freezes']:,}"),
        ("second instances (refused)", f"{counts['second_instances']:,}"),
        ("orders", f"{counts['orders']:,}"),
        ("fills", f"{counts['fills']:,}"),
        *violation_rows(summary.violations),
        ("harness or bot errors", f"{summary.violations['error']:,}"),
        ("trials per minute", f"{summary.trials / minutes:,.1f}"),
        ("wall time", f"{summary.seconds:,.1f} s"),
    ]
    print_table(console, "botwarden torture --real", rows)
    for trial in summary.failures[:10]:
        console.print(f"\n[red]trial {trial.number} FAILED[/] (files: {trial.folder})")
        for violation in trial.violations[:5]:
            console.print(violation.explain(), markup=False, highlight=False)
        if trial.error:
            console.print(trial.error, markup=False, highlight=False)
