"""Bots as background processes: start, stop, restart, and the truth about each.

    start:   the config is checked; refused if the bot runs (its lock is held) or is
             starting; `botwarden run CONFIG` is launched detached, in its own session
             and process group, its output in `console.log`; its PID and the kernel's
             start time of that PID are written to `launch.json`; then the start waits
             until the bot says it started, over a pipe (its lock held, its state
             open, its recovery done or retrying), or its pipe closes unsaid: it
             failed, and its last words (an unreachable store, a rejected key) are
             the error
    stop:    SIGTERM to the bot's process group; after `timeout`, SIGKILL to the group;
             then nothing of the group may be left and the lock must be free
    status:  what the state says, checked against what the kernel says: the lock's
             holder and the launched process (PID and start time, so a PID reused by
             another process is never taken for the bot)

Nothing is ever found or killed by name. Starts and stops of one bot are serialized
by `supervise.lock`, so two `start`s at once launch one process.

The domain and the state (pydantic models, the stores) are imported by what reads or
writes a state (status, resolve, a kill recorded), not by a plain `stop` or `start`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botwarden.errors import BotwardenError, ConfigError, StateError
from botwarden.process.home import (
    DRIVEN_BY_CODE,
    READY_FD,
    BotFiles,
    DrivenByCode,
    bot_files,
    botwarden_home,
    known_bots,
)
from botwarden.process.lock import (
    HIDDEN,
    AlreadyRunning,
    InstanceLock,
    holder,
    lock_path,
    named,
)
from botwarden.process.procs import ProcessId, group_members, identify, uptime
from botwarden.state.files import atomic_write

if TYPE_CHECKING:
    from botwarden.config import BotConfig
    from botwarden.domain.models import BotStatus
    from botwarden.engine.runner import Flattened
    from botwarden.state.factory import StateReader, StoredBot
    from botwarden.state.manager import Transaction

log = logging.getLogger(__name__)


def _load_config(path: Path | str) -> BotConfig:
    """A bot's config (the config module, only where one is read: not by `logs`)."""
    from botwarden.config import load_config

    return load_config(path)


START_WAIT = 60.0
"""Seconds a start waits for the new process to say it started."""
CONSOLE_BYTES = 1024 * 1024
"""console.log (what detached bots printed: their warnings) is set aside beyond this."""
KILL_WAIT = 10.0
"""Seconds to wait for the kernel to take a SIGKILLed group away."""

_launched: list[subprocess.Popen] = []
"""Processes this process launched: reaped as they end, so none lingers as a zombie in
a long-lived supervisor (the API server)."""
_launched_lock = threading.Lock()


class StartFailed(BotwardenError):
    """The launched process exited before it held the bot's lock."""


@dataclass(frozen=True)
class Launch:
    """What `launch.json` holds: the process `start` launched, named beyond its PID."""

    pid: int
    started: int
    boot: str
    config: str
    at: str
    confirmed: bool = True
    """The bot said it started; False: it had not yet when the start stopped waiting."""

    @property
    def process(self) -> ProcessId:
        return ProcessId(self.pid, self.started, self.boot)

    def alive(self) -> bool:
        return identify(self.pid) == self.process


@dataclass
class Stopped:
    bot_id: str
    pid: int | None
    """None: it was not running."""
    killed: bool = False
    """SIGTERM was not enough: the group was killed with SIGKILL."""
    seconds: float = 0.0


class NothingToResolve(BotwardenError):
    """`resolve` of a bot that does not need attention."""


@dataclass
class Resolved:
    bot_id: str
    pid: int | None
    """The running bot told; None: not running (its next start acts)."""
    status: str | None
    """The status after; None if the bot did not answer in time."""
    notes: list[str] = field(default_factory=list)
    """What the bot's recovery said since."""


def _acknowledge(tx: Transaction, now: datetime) -> None:
    from botwarden.domain.models import BotEvent

    tx.save_bot_record(tx.state.bot.move(BotEvent.RESOLVE, now, acknowledged=True))
    tx.add_event(
        now,
        "status",
        "needs attention: resolved by an operator; the next start recovers acting on what"
        " the venue says",
        {"resolved_by": "operator"},
    )


@dataclass
class PositionView:
    symbol: str
    side: str
    size: str
    entry: str
    stop_price: str | None
    stop_live: bool
    """The stop rests on the venue, as the bot saw at its last check."""
    take_profit: str | None = None
    """Where its take-profit rests (None: it has none)."""


@dataclass
class BotReport:
    """One bot, as an operator needs it: `botwarden status`, the API, the dashboard."""

    bot_id: str
    config: str
    status: str
    """What is true now: the stored status, corrected by the kernel's view."""
    strategy: str | None = None
    driven_by: str = "strategy"
    """`code` for a bot its own program runs (`botwarden.Bot`): no command starts it."""
    """How the config names its strategy (`golden_cross`, `strategies/rsi.py:Rsi`)."""
    pid: int | None = None
    """The live process running the bot (None: none)."""
    uptime_seconds: float | None = None
    heartbeat_seconds: float | None = None
    """Wall-clock seconds since the bot last showed life."""
    positions: list[PositionView] = field(default_factory=list)
    open_orders: int = 0
    trading_day: str | None = None
    pnl_today: str = "0.00"
    trades_today: int = 0
    """Trades closed in the trading day."""
    entries_today: int = 0
    """Entries taken in the trading day: what `risk.max_trades_per_day` counts."""
    pnl_total: str = "0.00"
    """Every closed trade's PnL (net of fees), added up: all time."""
    trades_total: int = 0
    losing_streak: int = 0
    drawdown: str | None = None
    """Below the peak equity, as a fraction (`0.031`); None before an equity was seen."""
    breaker: str | None = None
    last_error: str | None = None
    attention: str | None = None
    """What needs an operator, when the status says so (the newest such event)."""
    last_run_at: str | None = None
    last_updated_at: str | None = None
    problem: str | None = None
    """Why part of this report could not be read (a broken config, a busy store)."""

    @property
    def unprotected(self) -> list[str]:
        return [p.symbol for p in self.positions if not p.stop_live]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class _Configs:
    """Bots' configs as looks read them: parsed and validated again only when the
    file's bytes differ from the last read (a look at 100 bots each second spent half
    its time there)."""

    def __init__(self) -> None:
        self._read: dict[str, tuple[bytes, BotConfig]] = {}

    def load(self, path: str) -> BotConfig:
        try:
            text = Path(path).read_bytes()
        except OSError:
            return _load_config(path)  # (which says what is wrong, as a config error)
        known = self._read.get(path)
        if known is not None and known[0] == text:
            return known[1]
        config = _load_config(path)
        self._read[path] = (text, config)  # (changed since `text`: read again next time)
        return config


class Supervisor:
    def __init__(self, root: Path | None = None, start_wait: float = START_WAIT) -> None:
        self.root = root or botwarden_home()
        self.start_wait = start_wait
        self._configs = _Configs()

    @functools.cached_property
    def reader(self) -> StateReader:
        """What this supervisor's looks have read: a bot that did not change is not
        decoded again (the API server looks at every bot each second). Made at the
        first look: a `stop` imports no state module."""
        from botwarden.state.factory import StateReader

        return StateReader()

    def files(self, bot_id: str) -> BotFiles:
        return bot_files(bot_id, self.root)

    # -- start ------------------------------------------------------------------------
    def register(self, config_path: Path) -> str:
        """Make a bot known by its config (without starting it); returns its id."""
        config_path = config_path.resolve()
        config = _load_config(config_path)
        files = self.files(config.bot_id)
        files.refuse_if_driven_by_code(config.default_strategy)
        with self._serialized(files):
            running = self._running_pid(files, lock_path(config))
            if running is not None and files.config_path() != config_path:
                raise AlreadyRunning(
                    f"bot {config.bot_id} runs ({named(running)}) from {files.config_path()}:"
                    " stop it before giving it another config"
                )
            files.remember(config_path, lock_path(config))
        return config.bot_id

    def start(
        self,
        config_path: Path,
        check_strategy: bool = True,
        takeover: bool = False,
        standby: bool = False,
    ) -> Launch:
        """Launch the bot in the background; returns once it says it started (its lock
        held, its state open, its recovery done or retrying), or after `start_wait`
        seconds. Raises `AlreadyRunning` (naming the PID) or `StartFailed` (with the
        bot's last words: `LeaseHeld`'s, when an instance elsewhere holds the bot and not
        `takeover`)."""
        config_path = config_path.resolve()
        config = _load_config(config_path)  # a broken config is refused here, not later
        if check_strategy:  # and a strategy that cannot be imported or built (a process
            config.load_strategy()  # that must not run a user's code leaves it to the bot)
        files = self.files(config.bot_id)
        with self._serialized(files):
            running = self._running_pid(files, lock_path(config))
            if running is not None:
                raise AlreadyRunning(
                    f"bot {config.bot_id} is already running ({named(running)}); stop it first"
                    f" with `botwarden stop {config.bot_id}`"
                )
            files.refuse_if_driven_by_code(config.default_strategy)
            files.remember(config_path, lock_path(config))
            options = ["--takeover"] * takeover + ["--standby"] * standby
            return self._launch(config, config_path, files, options)

    def _launch(
        self, config: BotConfig, config_path: Path, files: BotFiles, options: list[str]
    ) -> Launch:
        """Launch `botwarden run CONFIG` detached; wait until it says it started."""
        ready, told = os.pipe()
        with contextlib.suppress(FileNotFoundError):
            if files.console.stat().st_size > CONSOLE_BYTES:  # one older copy is kept
                os.replace(files.console, files.console.with_name("console.log.1"))
        try:
            with open(files.console, "ab") as console:
                console.write(f"--- {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC: starting\n".encode())
                console.flush()
                process = subprocess.Popen(
                    [sys.executable, "-m", "botwarden", "run", str(config_path), *options],
                    stdin=subprocess.DEVNULL,
                    stdout=console,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own session and group: stop takes both
                    cwd=config.base_dir,
                    pass_fds=(told,),
                    env={**os.environ, "BOTWARDEN_HOME": str(self.root), READY_FD: str(told)},
                )
            os.close(told)
            told = -1
            with _launched_lock:
                _launched.append(process)
            launched = identify(process.pid) or ProcessId(process.pid, 0, "")
            launch = Launch(
                pid=process.pid,
                started=launched.started,
                boot=launched.boot,
                config=str(config_path),
                at=datetime.now(UTC).isoformat(),
            )
            atomic_write(files.launch, json.dumps(asdict(launch)).encode())
            confirmed = self._await_started(config, files, process, ready)
            return dataclasses.replace(launch, confirmed=confirmed)
        finally:
            os.close(ready)
            if told >= 0:
                os.close(told)

    def _await_started(
        self, config: BotConfig, files: BotFiles, process: subprocess.Popen, ready: int
    ) -> bool:
        """True once the bot said it started; False if it has not within `start_wait`
        (a venue slow to answer: `status` shows it pending); raises if it exited."""
        with selectors.DefaultSelector() as waiting:  # any fd number (select() stops at 1024)
            waiting.register(ready, selectors.EVENT_READ)
            readable = waiting.select(self.start_wait)
        if not readable:
            return False
        if os.read(ready, 64).startswith(b"started"):
            return True
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)  # its pipe closed unsaid: it is exiting
        _reap()
        raise StartFailed(
            f"bot {config.bot_id} exited at once: {_last_words(files.console)}"
            f" (all of its output: {files.console})"
        )

    # -- stop -------------------------------------------------------------------------
    def stop(self, bot_id: str, timeout: float = 30.0) -> Stopped:
        """SIGTERM to the bot's process group, SIGKILL after `timeout` seconds; returns
        once nothing of the group is left and the lock is free."""
        files = self.files(bot_id)
        record = files.read_record()
        with self._serialized(files):
            return self._stop(files, record, timeout)

    def _stop(self, files: BotFiles, record: dict[str, str], timeout: float) -> Stopped:
        bot_id = files.bot_id
        lock = Path(record["lock"])
        launch = self._launch_record(files)
        group = launch.pid if launch is not None and launch.alive() else None
        pid = group if group is not None else holder(lock)
        if pid is None:
            return Stopped(bot_id, None)
        _visible(bot_id, pid)
        began = time.monotonic()
        process = identify(pid)  # a foreground bot's PID, named: it may be reused

        def send(sig: signal.Signals) -> None:
            try:
                if group is not None:
                    os.killpg(group, sig)
                elif identify(pid) == process:  # run in the foreground: that process only
                    os.kill(pid, sig)
            except ProcessLookupError:
                pass  # gone meanwhile
            except PermissionError:
                raise BotwardenError(
                    f"bot {bot_id} runs as another user (pid {pid}): stop it as that user"
                ) from None

        def gone() -> bool:
            _reap()
            left = group_members(group) if group is not None else identify(pid) == process
            return not left and holder(lock) is None

        send(signal.SIGTERM)
        killed = not _wait_for(gone, timeout)
        if killed:
            send(signal.SIGKILL)
            if not _wait_for(gone, KILL_WAIT):
                raise BotwardenError(
                    f"bot {bot_id}: still there after SIGKILL (processes"
                    f" {group_members(group) if group else [pid]}, lock {holder(lock)})"
                )
            _record_kill(Path(record["config"]), timeout)
        return Stopped(bot_id, pid, killed, time.monotonic() - began)

    def flatten(
        self, bot_id: str, symbol: str | None = None, timeout: float = 30.0
    ) -> tuple[Stopped, Flattened]:
        """An operator's emergency: the bot stopped (as `stop`), then its orders canceled
        and its positions closed at market by the engine, in this process, holding the
        bot's lock; the bot is left stopped."""
        files = self.files(bot_id)
        record = files.read_record()
        config = _load_config(record["config"])
        if symbol is not None and config.symbols and symbol not in config.symbols:
            raise ConfigError(
                f"bot {bot_id} does not trade {symbol!r}; it trades {', '.join(config.symbols)}"
            )
        with self._serialized(files):
            stopped = self._stop(files, record, timeout)
            import asyncio

            from botwarden.process.run import flatten_bot  # (the engine: only here)

            return stopped, asyncio.run(flatten_bot(config, symbol))

    def start_known(self, bot_id: str) -> Launch:
        """Start a bot by its id, from the config it last ran from (the API's, the
        dashboard's start): refused for a bot its own code runs."""
        return self.start(self._strategy_driven(bot_id), check_strategy=False)

    def _strategy_driven(self, bot_id: str) -> Path:
        """The config a bot last ran from; `DrivenByCode` if its own code runs it (its
        config's strategy is not what it runs: started by botwarden, it would trade)."""
        record = self.files(bot_id).read_record()
        if record["driven_by"] == DRIVEN_BY_CODE:
            raise DrivenByCode(
                f"bot {bot_id} is run by its own code (botwarden.Bot, from"
                f" {record['config']}): start that program again; `botwarden stop` stops it"
            )
        return Path(record["config"])

    def restart(self, bot_id: str, timeout: float = 30.0, check_strategy: bool = True) -> Launch:
        config = self._strategy_driven(bot_id)
        if check_strategy:  # refused before the running bot is stopped
            _load_config(config).load_strategy()
        self.stop(bot_id, timeout)
        return self.start(config, check_strategy=False)

    # -- resolve ----------------------------------------------------------------------
    def resolve(self, bot_id: str, wait: float = 30.0) -> Resolved:
        """An operator has looked at a bot that needs attention: a running bot is told
        (SIGUSR1) and recovers again, acting on what it finds; a stopped one does so at
        its next start. Raises `NothingToResolve` if the bot does not need attention."""
        import asyncio

        from botwarden.domain.models import BotStatus

        files = self.files(bot_id)
        record = files.read_record()
        config = _load_config(record["config"])
        with self._serialized(files):
            pid = holder(Path(record["lock"]))
            if config.state.backend == "duckdb" and pid is not None:
                _tell(bot_id, pid)  # its state cannot be read meanwhile: told only
                return Resolved(bot_id, pid, None)
            before = asyncio.run(_read_bot(config)).state
            if before.bot.status is not BotStatus.NEEDS_ATTENTION:
                raise NothingToResolve(
                    f"bot {bot_id} does not need attention (status {before.bot.status})"
                )
            if pid is None:
                _write_while_stopped(config, _acknowledge)
                return Resolved(bot_id, None, BotStatus.STOPPED.value)
            _tell(bot_id, pid)
            since = before.ledger.next_event_seq
            after: list[StoredBot] = []

            def answered() -> bool:
                stored = asyncio.run(_read_bot(config, events_after=since - 1))
                after[:] = [stored]
                taken = [e.seq for e in stored.events if e.data.get("resolved_by")]
                # The state and the events are two reads: a state from before the word
                # was taken would pass for one recovered since.
                state = stored.state
                current = bool(taken) and state.ledger.next_event_seq > taken[-1]
                return current and not state.bot.acknowledged  # recovered again since

            if not _wait_for(answered, wait):
                return Resolved(bot_id, pid, None)
            stored = after[0]
            notes = [e.message for e in stored.events]
            return Resolved(bot_id, pid, stored.state.bot.status.value, notes)

    # -- status -----------------------------------------------------------------------
    async def report(self, bot_id: str) -> BotReport:
        return (await self.look(bot_id))[0]

    async def reports(self) -> list[BotReport]:
        return [(await self.look(bot_id))[0] for bot_id in known_bots(self.root)]

    async def look(
        self, bot_id: str, events_after: int | None = None
    ) -> tuple[BotReport, StoredBot | None]:
        """The bot's report, and its state as stored (None if it cannot be read now:
        `report.problem` says why), with its events after `events_after` if asked."""
        from botwarden.domain.models import BotStatus
        from botwarden.domain.numbers import age
        from botwarden.process.clock import bot_time

        _reap()
        files = self.files(bot_id)
        record = files.read_record()
        report = BotReport(bot_id, record["config"], BotStatus.STOPPED.value)
        report.driven_by = record["driven_by"]
        lock_pid = holder(Path(record["lock"]))
        launch = self._launch_record(files)
        starting = launch is not None and launch.alive() and lock_pid is None
        report.pid = lock_pid if lock_pid is not None else (launch.pid if starting else None)
        if report.pid == HIDDEN:
            report.pid = None
            report.problem = "run by a process not visible from here (another container?)"
        if report.pid is not None and (process := identify(report.pid)) is not None:
            report.uptime_seconds = uptime(process)
        try:
            config = self._configs.load(record["config"])
            report.strategy = (
                "its own code" if record["driven_by"] == DRIVEN_BY_CODE else config.strategy.spec
            )
            if config.state.backend == "duckdb" and lock_pid is not None:
                raise StateError(
                    "the state is not shown while the bot runs: DuckDB lets one process open"
                    " it (its log: `botwarden logs`)"
                )
            read = await _read_bot(config, events_after=events_after, reader=self.reader)
            state = read.state
        except (BotwardenError, OSError) as error:
            report.problem = str(error)
            locked = lock_pid is not None
            report.status = BotStatus.RUNNING.value if locked else BotStatus.STOPPED.value
            return report, None
        when = bot_time(config, state, datetime.now(UTC))
        _fill(report, read, when.today, when.now)
        stored = state.bot.status
        if state.bot.instance is None and stored is not BotStatus.ERROR:
            stored = BotStatus.STOPPED  # never ran (an ERROR: it could not start)
            report.problem = _state_gone(config, files)
        report.status = _true_status(stored, lock_pid is not None, starting).value
        if (waiting := _standing_by(files, lock_pid)) is not None:
            report.status = BotStatus.STANDBY.value
            report.problem = waiting
        if report.status == BotStatus.ERROR and stored is not BotStatus.ERROR:
            seen = age(state.bot.seen_at, datetime.now(UTC)) if state.bot.seen_at else "never"
            report.last_error = (
                "not running: the process ended without recording a stop (SIGKILL, out of"
                f" memory, a reboot?); last seen {seen}"
            )
        return report, read

    def config(self, bot_id: str) -> BotConfig:
        return self._configs.load(str(self.files(bot_id).config_path()))

    # -- helpers ----------------------------------------------------------------------
    def _running_pid(self, files: BotFiles, lock: Path) -> int | None:
        """The process running (or starting) the bot, if any."""
        pid = holder(lock)
        if pid is not None:
            return pid
        launch = self._launch_record(files)
        return launch.pid if launch is not None and launch.alive() else None

    @staticmethod
    def _launch_record(files: BotFiles) -> Launch | None:
        try:
            return Launch(**json.loads(files.launch.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):  # torn by hand: trust the lock alone
            return None

    @staticmethod
    @contextlib.contextmanager
    def _serialized(files: BotFiles) -> Iterator[None]:
        files.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(files.supervise_lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _visible(bot_id: str, pid: int) -> None:
    if pid == HIDDEN:
        raise BotwardenError(
            f"bot {bot_id} runs in a process not visible from here (another container or"
            " PID namespace shares its state): act on it where it runs"
        )


def _tell(bot_id: str, pid: int) -> None:
    """SIGUSR1 to the bot: an operator resolved what needed attention."""
    _visible(bot_id, pid)
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        raise BotwardenError(f"bot {bot_id} stopped meanwhile: resolve it again") from None
    except PermissionError:
        raise BotwardenError(
            f"bot {bot_id} runs as another user (pid {pid}): resolve it as that user"
        ) from None


def _state_gone(config: BotConfig, files: BotFiles) -> str | None:
    """Why a bot that has run shows no state, if its state file is gone: a state that
    holds nothing must not read as a bot that never ran."""
    from botwarden.state.factory import open_store

    log = files.log
    if not log.exists() or log.stat().st_size == 0:
        return None  # it never ran: nothing to miss
    path = getattr(open_store(config.state, config.bot_id, config.base_dir), "path", None)
    if path is None or path.exists():
        return None
    return (
        f"no state at {path}, though the bot has run (its log says so): deleted or moved?"
        " Its next start rebuilds it from the venue"
    )


def _standing_by(files: BotFiles, lock_pid: int | None) -> str | None:
    """What the bot's process here stands by for (`run --standby`), if it does."""
    if lock_pid is None:
        return None
    try:
        told = json.loads(files.standby.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(told, dict) or told.get("pid") != lock_pid:
        return None  # (left by a standby killed before it ended)
    return f"standing by since {told.get('since')}: the bot runs {told.get('holder')}"


def _true_status(stored: BotStatus, locked: bool, starting: bool) -> BotStatus:
    """The stored status, checked against the processes: a bot whose process is gone
    is not running, whatever its last write said."""
    from botwarden.domain.models import BotStatus

    if stored is BotStatus.NEEDS_ATTENTION:
        return stored  # until an operator resolves it, process or not
    if locked:  # (in error and running: its strategy fails, its positions are guarded)
        alive = (BotStatus.PENDING, BotStatus.RUNNING, BotStatus.ERROR)
        return stored if stored in alive else BotStatus.PENDING
    if starting:
        return BotStatus.PENDING
    if stored in (BotStatus.PENDING, BotStatus.RUNNING):
        return BotStatus.ERROR
    return stored


def _fill(report: BotReport, stored: StoredBot, today: date, now: datetime) -> None:
    """The report's figures from the state. `today` and `now`: the trading day and the
    time by the bot's clock (`process/clock.py`); a bot that has not reached that day
    (stopped, say) shows its counters, zero, never an older day's as today's."""
    from botwarden.domain import risk as rules
    from botwarden.domain.models import BotStatus
    from botwarden.domain.numbers import money
    from botwarden.domain.orders import IntentStatus

    state = stored.state
    bot, risk = state.bot, rules.roll_day(state.risk, today)
    for p in state.positions.values():
        stop = state.intents.get(p.stop_client_order_id or "")
        live = stop is not None and stop.status in (
            IntentStatus.ACCEPTED,
            IntentStatus.PARTIALLY_FILLED,
        )
        stop_price = str(p.stop_price) if p.stop_price else None
        target = state.intents.get(p.take_profit_client_order_id or "")
        resting = target is not None and not target.status.is_terminal
        take_profit = str(p.take_profit) if resting and p.take_profit else None
        view = PositionView(
            p.symbol, p.side.value, str(p.size), str(p.entry_price), stop_price, live, take_profit
        )
        report.positions.append(view)
    report.open_orders = sum(not i.status.is_terminal for i in state.intents.values())
    report.trading_day = str(risk.trading_day) if risk.trading_day else None
    report.pnl_today = money(risk.daily_pnl)
    report.entries_today = risk.daily_trade_count
    if state.pnl is not None:
        report.pnl_total = money(state.pnl.total.pnl)
        report.trades_total = state.pnl.total.trades
        if state.pnl.day is not None and state.pnl.day == risk.trading_day:
            report.trades_today = state.pnl.today.trades
    report.losing_streak = risk.consecutive_losses
    report.drawdown = f"{risk.drawdown:.6f}" if risk.peak_equity is not None else None
    if risk.breaker_until is not None and risk.breaker_until > now:  # (by the bot's clock)
        report.breaker = f"until {risk.breaker_until.isoformat()}: {risk.breaker_reason}"
    report.last_error = bot.last_error
    if bot.status is BotStatus.NEEDS_ATTENTION:
        asks = [e.message for e in stored.recent_events if e.data.get("attention")]
        report.attention = asks[-1] if asks else None
    report.last_run_at = _iso(bot.last_run_at)
    report.last_updated_at = _iso(bot.last_updated_at)
    if bot.seen_at is not None:
        shown = (datetime.now(UTC) - bot.seen_at).total_seconds()  # (both by the wall clock)
        report.heartbeat_seconds = round(max(0.0, shown), 3)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


ATTENTION_EVENTS = 50
"""The newest events a look reads for what a bot needing attention asks."""


async def _read_bot(
    config: BotConfig, events_after: int | None = None, reader: StateReader | None = None
) -> StoredBot:
    """The bot's state, its events after `events_after`, and its newest events if it
    needs attention (what it asks is among them): only then, as a look at every bot
    each second would otherwise decode 50 events of each."""
    from botwarden.domain.models import BotStatus
    from botwarden.state.factory import StateReader

    reader = reader or StateReader()

    async def read(newest_events: int) -> StoredBot:
        return await reader.read_bot(
            config.state,
            config.bot_id,
            config.base_dir,
            events_after=events_after,
            newest_events=newest_events,
        )

    stored = await read(0)
    if stored.state.bot.status is BotStatus.NEEDS_ATTENTION:
        stored = await read(ATTENTION_EVENTS)  # (its state is not decoded again)
    return stored


def _record_kill(config_path: Path, timeout: float) -> None:
    """A bot killed with SIGKILL could not record its stop: the supervisor does."""

    def stopped(tx: Transaction, now: datetime) -> None:
        from botwarden.domain.models import BotEvent

        tx.save_bot_record(tx.state.bot.move(BotEvent.STOP, now))  # (needs attention stays)
        message = f"stopped by the operator: SIGKILL after {timeout:g}s (SIGTERM not obeyed)"
        tx.add_event(now, "status", message)

    try:
        _write_while_stopped(_load_config(config_path), stopped)
    except (BotwardenError, OSError) as error:  # started again meanwhile, or no store
        log.warning("bot killed, but its stop could not be recorded: %s", error)


def _write_while_stopped(
    config: BotConfig, change: Callable[[Transaction, datetime], None]
) -> None:
    """One change to the state of a bot that is not running, holding its lock (no
    instance can start meanwhile)."""
    import asyncio

    from botwarden.process.run import write_unfenced

    with InstanceLock(lock_path(config), config.bot_id):
        asyncio.run(write_unfenced(config, change))


def _wait_for(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _reap() -> None:
    with _launched_lock:  # the API's threads reap too
        _launched[:] = [process for process in _launched if process.poll() is None]


def _last_words(console: Path) -> str:
    """The last line a failed start printed (its error, by the CLI's convention)."""
    try:
        lines = console.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "no output"
    starts = [i for i, line in enumerate(lines) if line.startswith("--- ")]
    words = [line for line in lines[starts[-1] + 1 if starts else 0 :] if line.strip()]
    return words[-1].strip().removeprefix("botwarden: error: ") if words else "no output"
