"""`botwarden torture --real`: the same promises, checked on real processes.

Each trial trades on one venue, Alpaca or Binance USD-M, in turn: the paper exchange
runs as its own process behind that venue's API (`botwarden venue serve --api alpaca`
or `--api binanceusdm`, an hour of exchange time every wall-clock second; on Binance,
sometimes with its clock minutes to weeks off the host's), and the bot as another
(`botwarden run`, through alpaca-py or ccxt over HTTP, with a coin-flip strategy on
hourly bars). The harness then, one to three times:
- starts the bot, sometimes with a named crash point armed (`BOTWARDEN_CRASH_AT`: the
  bot kills itself with SIGKILL there), sometimes freezes it with SIGSTOP for a while
  and resumes it with SIGCONT, sometimes starts a second copy while it runs, at times
  after removing the first's lock file (it must be refused, naming the first: I4);
- kills it with SIGKILL at a random moment, if it is still alive, and sometimes then
  damages its state file (emptied, cut in half, garbage, deleted); or deletes the
  state file under the running bot, which must stop saying STATE LOST. Either way the
  next start must say STATE LOST and rebuild from the venue.
In a third of the trials the bot's state folder is a small tmpfs of its own, and in
one life it fills up, right after an entry of the bot's filled, for seconds (hours of
the exchange's time): every position the bot holds must meanwhile rest covered by
stops within a few of its passes, read from the venue's side (`guard_watch`).
Then the exchange is restarted nearly frozen (so nothing fires while the books are
compared), the bot runs a few clean passes and stops by itself, the exchange stops,
and every promise is checked in full on the two processes' files.

What each trial drew is kept with its outcome, so a failing trial can be read back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from botwarden.domain.models import Fill
from botwarden.engine.checks import PROMISES, Violation
from botwarden.engine.crash import POINTS
from botwarden.engine.ids import ClientIds
from botwarden.errors import StateError
from botwarden.state.records import BotState
from botwarden.torture import past
from botwarden.torture.disks import SmallDisk, why_no_tmpfs
from botwarden.torture.guard_watch import GuardWatch, Passes
from botwarden.torture.processes import Command, Exchange
from botwarden.torture.real_venues import BOT_ID, KEY, SECRET, VENUES, RealVenue, write_config
from botwarden.torture.tables import print_table, violation_rows
from botwarden.venues.paper.book import PaperBook

SPEED = 3600
"""Exchange seconds per wall-clock second while the bot is being killed."""
STILL = 0.001
"""...and while the books are compared: a stop firing then would be a race, not a bug."""
HEALING_TICKS = 5
STATE_LOST = "STATE LOST"
STARTED = "starting as instance"
"""What a bot says once its state is open (and fenced)."""
DAMAGES = ("emptied", "truncated", "garbage", "deleted")
"""What happens to a state file while its bot is down."""
FULL_DISK_SHARE = 1 / 3
FULL_FOR = (2.5, 5.0)
"""Seconds the disk stays full: hours of the exchange's time, ten to twenty passes, and
longer than a bare position may go without the bot asking (`guard_watch.SILENT_FOR`)."""
PAST_PATIENCE = 0.01
"""Seconds more per record of a trial's past for a lost state to be noticed and
rebuilt (`Life.patience`)."""
ENTRY_PATIENCE = (2.0, 5.0)
"""Seconds to wait for an entry to fill before the disk fills anyway."""


def default_jobs() -> int:
    """Trials at once: three per CPU, since a trial mostly waits on its bot."""
    return 3 * (os.cpu_count() or 1)


@dataclass
class TrialOutcome:
    number: int
    venue: str = ""
    draws: list[str] = field(default_factory=list)
    """What the trial drew, in order: the venue's clock, then each life's torments."""
    counts: Counter[str] = field(default_factory=Counter)
    """kills (SIGKILLs, by the harness or by the bot at an armed crash point),
    at_points, freezes, second_instances, lock_removed, deleted_running,
    lost_<damage>, rebuilds, clock_skews, full_disks (and of those: after_entry,
    store_failed, owed_guard: a position seen bare), guard_checks, guards, orders,
    fills (the trial's own, not its past's), past_kept (a seeded past found again)."""
    violations: list[Violation] = field(default_factory=list)
    error: str | None = None
    folder: Path | None = None
    seconds: float = 0.0
    """Its wall time, from its folder made to its exchange stopped."""
    seeding_seconds: float = 0.0
    """Of that, writing its past (`--history`)."""

    @property
    def failed(self) -> bool:
        return bool(self.violations or self.error)


@dataclass
class RealSummary:
    trials: int = 0
    venues: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    failures: list[TrialOutcome] = field(default_factory=list)
    seconds: float = 0.0
    without_disk: str | None = None
    """Why the trials ran without a full disk (a tmpfs could not be mounted)."""
    disk_required: bool = field(default_factory=lambda: os.environ.get("CI", "").lower() == "true")
    """Under CI a campaign without its full disk fails: the fault must not go missing."""
    history: int = 0
    """Records of the past each trial was seeded with."""
    trial_seconds: float = 0.0
    """The trials' own wall times, added up (they run `jobs` at a time)."""
    seeding_seconds: float = 0.0
    """Of those, writing their pasts."""

    @property
    def failed(self) -> bool:
        return bool(self.failures) or (self.without_disk is not None and self.disk_required)

    def add(self, trial: TrialOutcome) -> None:
        self.trials += 1
        self.venues[trial.venue] += 1
        self.counts += trial.counts
        self.trial_seconds += trial.seconds
        self.seeding_seconds += trial.seeding_seconds
        self.violations.update(v.promise for v in trial.violations)
        if trial.error:
            self.violations["error"] += 1
        if trial.failed:
            self.failures.append(trial)


class TrialFailed(Exception):
    """The bot did not do what a torment requires of it (not a promise of I1-I6)."""


def _environment(venue: RealVenue, crash_at: str | None = None) -> dict[str, str]:
    env = {**os.environ, **venue.keys}
    env.pop("BOTWARDEN_CRASH_AT", None)
    if crash_at:
        env["BOTWARDEN_CRASH_AT"] = crash_at
    return env


def _draw_skew(rng: random.Random) -> str:
    """A venue clock off the host's by minutes to weeks, ahead or behind."""
    unit, most = rng.choice([("m", 59), ("h", 23), ("d", 14)])
    return f"{rng.choice(['', '-'])}{rng.randint(1, most)}{unit}"


@dataclass
class FullDisk:
    """A trial's small disk for the bot's state, the first life in which it may fill up
    (the first with its bot still running then), and draws of its own (so the trial's
    other draws are what they are without it)."""

    disk: SmallDisk
    life: int
    rng: random.Random
    filled: bool = False


@dataclass
class Life:
    """One start of the bot, what it is put through, and how it ends."""

    trial: TrialOutcome
    venue: RealVenue
    exchange: Exchange
    config: Path
    rng: random.Random
    full_disk: FullDisk | None = None
    rebuild_owed: bool = False
    """The state was lost while the venue held the bot's fills: the next start must
    say STATE LOST and rebuild."""
    patience: float = 0.0
    """Seconds more for a start to say STATE LOST and for the last run to end: a lost
    state's start reads the whole past again (on Binance, a request for each order
    older than a market's newest 1,000: ccxt.py's `_name_orders`)."""

    @property
    def state_file(self) -> Path:
        return self.config.parent / "state" / f"{BOT_ID}.db"

    def command(self, argv: list[str], crash_at: str | None = None) -> Command:
        return Command(argv, self.config.parent, _environment(self.venue, crash_at))

    def live(self, number: int) -> None:
        draws: list[str] = []
        crash_at = None
        if not self.rebuild_owed and self.rng.random() < 0.4:
            crash_at = f"{self.rng.choice(sorted(POINTS))}:{self.rng.randint(1, 2)}"
            draws.append(f"crash point {crash_at}")
        bot = self.command(["run", str(self.config)], crash_at)
        self.trial.draws.append(f"life {number} (pid {bot.pid}): " + ", ".join(draws))
        try:
            if self.rebuild_owed:
                self.expect_rebuild(bot)
            time.sleep(self.rng.uniform(0.3, 1.5))
            full = self.full_disk
            if full is not None and not full.filled and number >= full.life and bot.alive():
                self.fill_disk(bot, full)
            self.torment(bot)
            self.end(bot)
        finally:
            if bot.alive():
                bot.signal(signal.SIGKILL)
                bot.wait(timeout=30)

    def note(self, draw: str) -> None:
        self.trial.draws[-1] += draw if self.trial.draws[-1].endswith(": ") else f", {draw}"

    def expect_rebuild(self, bot: Command) -> None:
        if not bot.wait_for(STATE_LOST, timeout=60 + self.patience):
            raise TrialFailed(
                f"the state was lost, and the next start did not say {STATE_LOST}:"
                f" {bot.said()[-500:]}"
            )
        self.trial.counts["rebuilds"] += 1
        self.rebuild_owed = False

    def fill_disk(self, bot: Command, full: FullDisk) -> None:
        """The state's disk fills up, right after an entry of the bot's fills (or at
        once, if none comes soon), and stays full for seconds while the bot runs; all
        along, every position it holds must rest covered within a few of its passes,
        read from the venue's side. Then the disk has room again."""
        book = self.exchange.open_book(readonly=True)
        try:
            entry = _next_entry(book, bot, full.rng.uniform(*ENTRY_PATIENCE))
            if not bot.alive():
                return  # died at its crash point meanwhile: the next life's disk fills
            passes = Passes(self.exchange.log, self.venue.held_request)
            said_before = len(bot.said())
            full.disk.fill()
            full.filled = True
            since = f"after {entry.side} {entry.symbol} filled" if entry else "at a random moment"
            full_for = full.rng.uniform(*FULL_FOR)
            self.note(f"disk full for {full_for:.1f} s {since}")
            watch = GuardWatch(
                book,
                passes,
                lambda: self.stored_state() or BotState.empty(BOT_ID),
                lambda: bot.said()[said_before:],
                ClientIds(BOT_ID, 0),
            )
            until = time.monotonic() + full_for
            while bot.alive() and time.monotonic() < until:
                watch.look(time.monotonic())
                time.sleep(0.02)
            if bot.alive():
                watch.look(time.monotonic())
        finally:
            full.disk.make_room()
            book.close()
        counts = self.trial.counts
        counts["full_disks"] += 1
        counts["after_entry"] += entry is not None
        counts["store_failed"] += "state store failed to write" in bot.said()[said_before:]
        counts["owed_guard"] += bool(watch.owed)
        counts["guard_checks"] += watch.checks
        told = f"the disk filled {since}, full for {full_for:.1f} s, bot pid {bot.pid}"
        self.trial.violations += [
            replace(v, evidence=(*v.evidence, f"{told}: {passes.count} passes counted"))
            for v in watch.violations
        ]

    def torment(self, bot: Command) -> None:
        if bot.alive() and self.rng.random() < 0.3:
            self.note("SIGSTOP")
            bot.signal(signal.SIGSTOP)  # frozen: the exchange moves on without it
            self.trial.counts["freezes"] += 1
            time.sleep(self.rng.uniform(0.1, 0.6))
            bot.signal(signal.SIGCONT)
            time.sleep(self.rng.uniform(0.1, 0.4))
        if bot.alive() and self.rng.random() < 0.25:
            self.second_copy(bot, remove_lock=self.rng.random() < 0.5)

    def second_copy(self, bot: Command, remove_lock: bool) -> None:
        """Started while the first runs: refused, naming the first's PID (I4), even
        with the first's lock file gone (it holds the lock on the file no path names,
        and puts the file back at its next pass)."""
        self.trial.counts["second_instances"] += 1
        if remove_lock:
            self.note("lock file removed")
            (self.config.parent / "state" / f"{BOT_ID}.lock").unlink(missing_ok=True)
            self.trial.counts["lock_removed"] += 1
        self.note("second copy")
        second = self.command(["run", str(self.config), "--ticks", "1"])
        code, said = second.wait(timeout=60), second.said()
        names_first = re.search(rf"\bpid {bot.pid}\b", said) is not None
        refused = code != 0 and "already running" in said and names_first
        # (or it ran because the first died meanwhile, at its crash point)
        if bot.alive() and not refused:
            last = said.strip().splitlines()[-1:] or ["nothing"]
            self.trial.violations.append(
                Violation(
                    "I4",
                    f"a second instance started while the first (pid {bot.pid}) ran was not"
                    f" refused naming it: exit {code}, {last[0]}",
                )
            )

    def end(self, bot: Command) -> None:
        if bot.alive() and self.state_file.exists() and self.rng.random() < 0.15:
            self.delete_while_running(bot)
            return
        if bot.alive():
            bot.signal(signal.SIGKILL)
        else:
            self.trial.counts["at_points"] += bot.wait(timeout=30) == -signal.SIGKILL
        code = bot.wait(timeout=30)
        if code != -signal.SIGKILL:
            raise TrialFailed(f"the bot exited by itself ({code}): {bot.said()[-500:]}")
        self.trial.counts["kills"] += 1
        if self.state_file.exists() and self.rng.random() < 0.3:
            self.damage(self.rng.choice(DAMAGES))

    def delete_while_running(self, bot: Command) -> None:
        """An operator's `rm state/*` under a running bot: it must stop, saying STATE
        LOST (exit 1), and its next start rebuild."""
        # A bot slow to start (a busy host) may not have opened its state yet: deleted
        # then, the state is one lost before the bot started, not one deleted under it.
        bot.wait_for(STARTED, timeout=60)
        self.note("state deleted while running")
        owed = self.venue_holds_fills()
        self.remove_state()
        code = bot.wait(timeout=60)
        if code == -signal.SIGKILL:  # its crash point came first
            self.trial.counts["kills"] += 1
            self.trial.counts["at_points"] += 1
        elif code != 1 or STATE_LOST not in bot.said():
            raise TrialFailed(
                f"the state file was deleted under the bot: it exited {code}, not 1 saying"
                f" {STATE_LOST}: {bot.said()[-500:]}"
            )
        else:
            self.trial.counts["deleted_running"] += 1
        self.rebuild_owed = self.rebuild_owed or owed

    def damage(self, how: str) -> None:
        """The state file damaged while the bot is down."""
        self.note(f"SIGKILL, then state {how}")
        owed = self.venue_holds_fills()
        path = self.state_file
        _fold_wal(path)
        size = path.stat().st_size
        if how == "emptied":
            os.truncate(path, 0)
        elif how == "truncated":
            os.truncate(path, size // 2)
        elif how == "garbage":
            path.write_bytes(self.rng.randbytes(max(size, 4096)))
        else:
            self.remove_state()
        self.trial.counts[f"lost_{how}"] += 1
        self.rebuild_owed = self.rebuild_owed or owed

    def remove_state(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            self.state_file.with_name(self.state_file.name + suffix).unlink(missing_ok=True)

    def venue_holds_fills(self) -> bool:
        """Whether the state holds fills, so the venue holds the bot's history: a lost
        state must then be noticed. A state already unreadable owes nothing more."""
        from botwarden.config import load_config
        from botwarden.state.factory import read_bot

        config = load_config(self.config)
        try:
            stored = asyncio.run(
                read_bot(config.state, config.bot_id, config.base_dir, count_fills=True)
            )
        except StateError:
            return False
        return stored.fill_count > 0

    def stored_state(self) -> BotState | None:
        """The bot's state, read without writing (it may be running); None if unreadable."""
        from botwarden.config import load_config
        from botwarden.state.factory import read_state

        config = load_config(self.config)
        try:
            return asyncio.run(read_state(config.state, config.bot_id, config.base_dir))
        except StateError:
            return None


def _next_entry(book: PaperBook, bot: Command, patience: float) -> Fill | None:
    """The next fill of an entry of the bot's (on the side of the position it leaves),
    watched for in the exchange's book; None if none comes within `patience` seconds."""
    ids = ClientIds(BOT_ID, 0)
    seen = max((seq for seq, _ in book.fills()), default=0)
    deadline = time.monotonic() + patience
    while bot.alive() and time.monotonic() < deadline:
        new = book.fills(after_seq=seen)
        for _, fill in new:
            held = {p.symbol: p.side for p in book.positions()}
            side = held.get(fill.symbol)
            if ids.owns(fill.client_order_id) and side and side.entry_order_side is fill.side:
                return fill
        seen = new[-1][0] if new else seen
        time.sleep(0.002)  # the bot's next write may be its stop: be there first
    return None


def _fold_wal(path: Path) -> None:
    """Move what the bot's SQLite WAL holds into the state file (as a clean close
    does), so that damaging the file loses the state: a young state lives in its WAL
    whole, and a damaged file beside it would lose nothing."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def run_trial(number: int, workdir: Path, full_disk: bool = True, history: int = 0) -> TrialOutcome:
    """One trial; with `full_disk`, a third of them fill the bot's disk (a tmpfs); with
    `history`, the bot starts beside a past of that many records (`torture/past.py`)."""
    started = time.perf_counter()
    venue = VENUES[number % len(VENUES)]
    trial = TrialOutcome(number, venue=venue.name)
    folder = workdir / f"trial-{number}"
    folder.mkdir(parents=True)
    trial.folder = folder
    rng = random.Random(f"real:{number}")
    disk_rng = random.Random(f"real-disk:{number}")
    past_rng = random.Random(f"real-past:{number}")  # its own: the trial draws as without one
    disk = None
    if full_disk and disk_rng.random() < FULL_DISK_SHARE:
        disk = SmallDisk(folder / "state", past.disk_size(history))
    faults = ""
    if venue.skews_clock and rng.random() < 0.5:
        skew = _draw_skew(rng)
        faults = f"clock_skew:by={skew}"
        trial.draws.append(f"venue clock {skew} off the host's")
        trial.counts["clock_skews"] += 1
    exchange = Exchange(folder, venue.api, number, KEY, SECRET, faults)
    seeded: past.Past | None = None
    try:
        full = None
        if disk is not None:
            disk.mount()
            trial.draws.append(f"state on a tmpfs of {disk.size}")
        config = write_config(folder, venue, exchange, rng)
        if history:  # (it starts the exchange: the past's fills are read through its API)
            seeded = past.seed(config, venue, exchange, history, past_rng, SPEED)
            trial.draws.append(seeded.describe())
        else:
            exchange.start(SPEED)
        lives = rng.randint(1, 3)
        if disk is not None:
            if disk.holds(exchange.book):  # the book is the exchange's, not the bot's
                raise TrialFailed(f"the exchange's book {exchange.book} is on the bot's disk")
            full = FullDisk(disk, disk_rng.randint(1, lives), disk_rng)
        life = Life(trial, venue, exchange, config, rng, full, patience=history * PAST_PATIENCE)
        for number_of_life in range(1, lives + 1):
            life.live(number_of_life)
        exchange.stop()
        exchange.start(STILL)
        healed = life.command(["run", str(config), "--ticks", str(HEALING_TICKS)])
        trial.draws.append(f"healing run (pid {healed.pid})")
        if life.rebuild_owed:
            life.expect_rebuild(healed)
        code = healed.wait(timeout=120 + life.patience)
        exchange.stop()
        if code != 0:
            trial.error = f"the last run exited {code}: {healed.said()[-500:]}"
            return trial
        past_orders = seeded.orders() if seeded is not None else frozenset()
        trial.violations += _check(config, venue, exchange, trial, past_orders)
        if seeded is not None:
            _check_past_kept(config, seeded, trial)
    except (TrialFailed, past.SeedingFailed) as failure:
        trial.error = str(failure)
    except Exception as error:  # a harness failure is a failed trial, said plainly
        trial.error = f"{type(error).__name__}: {error}"
    finally:
        exchange.stop()
        if disk is not None:
            disk.unmount()
        trial.seconds = time.perf_counter() - started
        trial.seeding_seconds = seeded.seconds if seeded is not None else 0.0
    return trial


def _check_past_kept(config: Path, seeded: past.Past, trial: TrialOutcome) -> None:
    """The past is still there as it was written (or, after a rebuild from the venue,
    what a rebuild has again of it)."""
    problems, rebuilt = past.not_kept(config, seeded)
    if problems:
        how = "rebuilt from the venue" if rebuilt else "never lost"
        trial.error = f"the trial's past was not kept (its state {how}): " + "; ".join(problems)
    else:
        trial.counts["past_kept"] += 1


def _check(
    config_path: Path,
    venue: RealVenue,
    exchange: Exchange,
    trial: TrialOutcome,
    past_orders: frozenset[str] = frozenset(),
) -> list[Violation]:
    """Every promise but I4 (the bot's clock is the wall clock, the exchange's runs
    faster: the second-instance check covers I4 here) on the files of both, the
    trial's past included; what the trial traded is counted without its past."""
    from botwarden.config import load_config
    from botwarden.engine.checks import check_promises
    from botwarden.state.history import WholeState
    from botwarden.state.manager import StateManager

    config = load_config(config_path)

    async def state() -> WholeState:
        async with StateManager.from_config(config.bot_id, config) as manager:
            return await WholeState.read(await manager.snapshot(), manager.history)

    snapshot = asyncio.run(state())
    book = exchange.open_book()
    try:
        epoch = snapshot.bot.instance.epoch if snapshot.bot.instance else 0
        ids = ClientIds(config.bot_id, epoch)
        orders = [o for o in book.all_orders() if o.client_order_id not in past_orders]
        fills = [f for _, f in book.fills() if f.client_order_id not in past_orders]
        trial.counts["orders"] = sum(ids.owns(o.client_order_id) for o in orders)
        trial.counts["fills"] = sum(ids.owns(f.client_order_id) for f in fills)
        trial.counts["guards"] = sum(ids.is_guard(o.client_order_id) for o in orders)
        promises = [p for p in PROMISES if p != "I4"]
        return check_promises(snapshot, book, ids, promises, book_trade_id=venue.book_trade_id)
    finally:
        book.close()


def run_real_campaign(
    trials: range,
    *,
    jobs: int,
    progress: Callable[[TrialOutcome], None] = lambda trial: None,
    history: int = 0,
) -> RealSummary:
    """Run the trials, `jobs` at a time (each is two processes, mostly waiting), each
    beside a past of `history` records if asked. A failing trial's files are kept for a
    look; the rest are removed. Without a tmpfs to mount (not root), the trials run
    without a full disk, and the summary says why."""
    summary = RealSummary(without_disk=why_no_tmpfs(), history=history)
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="botwarden-real-"))

    def trial(number: int) -> TrialOutcome:
        outcome = run_trial(number, root, summary.without_disk is None, history)
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
    trials = max(summary.trials, 1)
    counts = summary.counts
    rows = [
        ("trials", f"{summary.trials:,}"),
        *((f"...on {venue.name}", f"{summary.venues[venue.name]:,}") for venue in VENUES),
        ("SIGKILLs", f"{counts['kills']:,}"),
        ("...at a named crash point", f"{counts['at_points']:,}"),
        ("SIGSTOP / SIGCONT freezes", f"{counts['freezes']:,}"),
        ("second instances (refused)", f"{counts['second_instances']:,}"),
        ("...after the lock file was removed", f"{counts['lock_removed']:,}"),
        ("state deleted while running (exit 1)", f"{counts['deleted_running']:,}"),
        *((f"state {how} while down", f"{counts[f'lost_{how}']:,}") for how in DAMAGES),
        ("rebuilds from the venue (STATE LOST)", f"{counts['rebuilds']:,}"),
        ("venue clock skewed (binanceusdm)", f"{counts['clock_skews']:,}"),
        ("state's disk full (tmpfs)", f"{counts['full_disks']:,}"),
        ("...right after an entry filled", f"{counts['after_entry']:,}"),
        ("...the store failed to write (the bot said)", f"{counts['store_failed']:,}"),
        ("...a position seen bare, a guard owed", f"{counts['owed_guard']:,}"),
        ("guard checks (the book read, a position held)", f"{counts['guard_checks']:,}"),
        ("guard stops and closes on the venue", f"{counts['guards']:,}"),
        ("orders", f"{counts['orders']:,}"),
        ("fills", f"{counts['fills']:,}"),
        *(
            [
                ("each trial's past (records)", f"{summary.history:,}"),
                ("...found again as written at the end", f"{counts['past_kept']:,}"),
            ]
            if summary.history
            else []
        ),
        *violation_rows(summary.violations),
        ("harness or bot errors", f"{summary.violations['error']:,}"),
        ("trials per minute", f"{summary.trials / minutes:,.1f}"),
        ("seconds a trial (its own wall time)", f"{summary.trial_seconds / trials:,.1f}"),
        *(
            [("...of which seeding its past", f"{summary.seeding_seconds / trials:,.1f}")]
            if summary.history
            else []
        ),
        ("wall time", f"{summary.seconds:,.1f} s"),
    ]
    print_table(console, "botwarden torture --real", rows)
    if summary.without_disk:
        fails = "; under CI that fails the campaign" if summary.disk_required else ""
        console.print(
            f"no full disk: {summary.without_disk}: the trials ran without it, run as root"
            f" to add it{fails}",
            markup=False,
            highlight=False,
            soft_wrap=True,  # one line, however narrow the terminal
        )
    for trial in summary.failures[:10]:
        console.print(
            f"\n[red]trial {trial.number} FAILED[/] on {trial.venue} (files: {trial.folder})"
        )
        for draw in trial.draws:
            console.print(f"  {draw}", markup=False, highlight=False)
        for violation in trial.violations[:5]:
            console.print(violation.explain(), markup=False, highlight=False)
        if trial.error:
            console.print(trial.error, markup=False, highlight=False)
