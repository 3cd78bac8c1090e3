"""`botwarden run`: one bot in this process, from its lock to its last write.

The lock is taken before anything else and held for the process's life; the state and
the venue come from the config; SIGTERM and SIGINT stop the loop after its current
step (the state is saved, the lock released, exit 0). A SIGKILL skips all of that,
and the next start's recovery is what makes it safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from botwarden.config import BotConfig
from botwarden.domain.models import BotEvent, Topic
from botwarden.engine.crash import CRASH
from botwarden.engine.runner import Flattened, Runner, require_fit
from botwarden.errors import BotwardenError, StateCorruptError, StateLost
from botwarden.keystore import KeyStore
from botwarden.notify import Notifier
from botwarden.process.home import READY_FD, bot_files, botwarden_home
from botwarden.process.lock import InstanceLock, lock_path
from botwarden.process.market import MarketFile
from botwarden.state.factory import open_leases, open_store
from botwarden.state.files import atomic_write
from botwarden.state.lease import RENEWALS_PER_TTL, LeaseHeld, LeaseRecord, Tenure
from botwarden.state.manager import StateManager, Transaction, utc_now
from botwarden.strategies.loading import LoadedStrategy
from botwarden.venues.base import Venue
from botwarden.venues.factory import open_venue
from botwarden.venues.paper.venue import PaperVenue
from botwarden.venues.settings import KeyedVenueSettings

log = logging.getLogger(__name__)


async def run_bot(
    config: BotConfig,
    *,
    ticks: int | None = None,
    on_running: Callable[[], None] | None = None,
    strategy: LoadedStrategy | None = None,
    takeover: bool = False,
    standby: bool = False,
) -> None:
    """Run the bot until SIGTERM / SIGINT (or `ticks` passes). Raises `AlreadyRunning`
    if another process of this host runs it, `LeaseHeld` if an instance elsewhere holds
    its lease (unless `takeover`: then it is fenced out; or `standby`: then this one
    waits until the lease runs out, and takes over); any other failure is stored as
    the bot's last error. `on_running`: called once the lock and the lease are held and
    the state open (and once standing by). `strategy`: the config's, already loaded
    (else loaded here, before anything is locked or opened)."""
    config.require_markets()
    strategy = strategy or config.load_strategy()
    CRASH.arm_from_environment()
    # `botwarden resolve` sends SIGUSR1 to the lock's holder; held back until the
    # runner can act on it (its default action would end the process).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiting = Standby(bot_files(config.bot_id).standby, stop, on_running) if standby else None
    try:
        async with bot_instance(
            config, on_running, strategy, takeover=takeover, standby=waiting
        ) as (runner, lock):
            await _run_instance(config, runner, lock, stop, ticks)
    except StoodDown:
        log.info("%s: stopped while standing by", config.bot_id)


async def _run_instance(
    config: BotConfig, runner: Runner, lock: InstanceLock, stop: asyncio.Event, ticks: int | None
) -> None:
    """The loop of an instance that holds its lock and lease, until `stop`."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, runner.request_resolve)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
    _tell_supervisor_started()
    venue = runner.venue
    speed = getattr(venue.clock, "speed", 1.0) if isinstance(venue, PaperVenue) else 1.0
    pause = config.engine.check_interval.total_seconds() / speed
    await runner.run(
        stop, ticks=ticks, pause=pause, speed=speed, each_pass=lambda: still_locked(lock)
    )


class StoodDown(Exception):
    """Stopped (SIGTERM) while standing by: nothing was started, nothing written."""


class Standby:
    """How an instance stands by while another holds the bot's lease: it says so (in
    `marker`, for `status` and the dashboard, and once in its log), tells whoever waits
    for it that it is up, and wakes to try again until the lease is granted or `stop`."""

    def __init__(
        self, marker: Path, stop: asyncio.Event, on_up: Callable[[], None] | None = None
    ) -> None:
        self.marker = marker
        self.stop = stop
        self._on_up = on_up
        self._since: str | None = None

    def stand(self, bot_id: str, held: LeaseRecord) -> None:
        if self._since is None:
            self._since = datetime.now(UTC).isoformat()
            log.warning(
                "%s: standing by: the bot runs %s; taking over once its lease runs out",
                bot_id,
                held.describe(),
            )
        told = {"pid": os.getpid(), "since": self._since, "holder": held.describe()}
        atomic_write(self.marker, json.dumps(told).encode())
        if self._on_up is not None:
            self._on_up()
            _tell_supervisor_started()
            self._on_up = None

    async def pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
        if self.stop.is_set():
            raise StoodDown

    def end(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.marker.unlink()


def still_locked(lock: InstanceLock) -> None:
    """Before every pass: the lock file at its path is still the one this process holds
    (a deleted one would let a second instance start); remade if it was deleted,
    `LockLost` (the run ends) if another process took the new one."""
    if lock.verify():
        log.warning(
            "%s: the lock file %s was deleted or replaced: locked again", lock.bot_id, lock.path
        )


async def flatten_bot(config: BotConfig, symbol: str | None = None) -> Flattened:
    """An operator's emergency, with the bot not running: its lock taken, its recovery
    run, then every order of its canceled and every position closed at market (see
    `Runner.flatten`); the bot is left stopped."""
    async with bot_instance(config) as (runner, _):
        return await runner.flatten(symbol)


def open_bot_venue(config: BotConfig) -> Venue:
    """The venue a bot's config names, not connected yet. A key stored through the API
    (`stored_key`) is decrypted here, at the edge: the venue layer knows no key store.
    The venue learns the bot's `symbols` (see `open_venue`)."""
    settings = _revealed(config.venue)
    prices = getattr(settings, "prices", None)  # (a paper exchange on Alpaca's prices)
    if prices is not None:
        settings = settings.model_copy(update={"prices": _revealed(prices)})
    return open_venue(settings, config.bot_id, config.base_dir, symbols=config.symbols)


def _revealed(settings: Any) -> Any:
    """`settings` with the key stored under its `stored_key` written in, if it names one."""
    if isinstance(settings, KeyedVenueSettings) and settings.stored_key is not None:
        key, secret = KeyStore(botwarden_home()).reveal(settings.stored_key)
        keys = {"api_key": SecretStr(key), "secret_key": SecretStr(secret)}
        return settings.model_copy(update=keys)
    return settings


@contextlib.asynccontextmanager
async def bot_instance(
    config: BotConfig,
    on_running: Callable[[], None] | None = None,
    strategy: LoadedStrategy | None = None,
    decides: bool = True,
    takeover: bool = False,
    standby: Standby | None = None,
) -> AsyncIterator[tuple[Runner, InstanceLock]]:
    """An instance of the bot in this process: its lock (taken first, held to the end),
    its venue, its state, its lease (acquired before anything is written, `takeover`
    fencing out whoever holds it, and kept renewed), and a runner that has started
    (recovered, or retrying);
    stopped at the end, or in error with the error stored. Without a `strategy` the
    runner decides nothing (an operator's flatten needs none: a broken strategy must
    not stand in its way). `decides`: False where the bot's own code decides
    (`botwarden.bot`)."""
    notifier = Notifier.for_bot(config.bot_id, config.notify)
    with InstanceLock(lock_path(config), config.bot_id) as lock:
        try:
            venue = open_bot_venue(config)
            require_fit(config.bot_settings(), venue)
        except BotwardenError as error:  # its keys cannot be had, it asks what the venue
            # cannot do: the bot is in error
            if await _record_failed_start(config, error) and on_running is not None:
                on_running()  # its state took the error: status shows it
            if notifier is not None:
                notifier.announce(Topic.ERROR, f"could not start: {error}")
                await notifier.close()
            raise
        clock: Callable[[], datetime] = venue.clock if isinstance(venue, PaperVenue) else utc_now
        try:
            state, lost = await _open_state(config, clock)
            async with state, holding_lease(config, state, takeover, standby) as tenure:
                if on_running is not None:
                    on_running()
                settings = config.bot_settings()
                runner = Runner(
                    settings, state, venue, clock, notifier, strategy, decides, tenure=tenure
                )
                runner.sight = MarketFile(bot_files(config.bot_id).market)
                if notifier is not None:
                    notifier.start_from((await state.snapshot()).ledger.next_event_seq)
                try:
                    await runner.start(rebuilt_after=lost)  # the report goes to the log
                    yield runner, lock
                except Exception as error:
                    log.error("%s: stopped by an error: %s", config.bot_id, error)
                    await _record_error(config, runner, error)
                    raise
                except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):  # a stop
                    await runner.stopped()
                    log.info("%s: stopped (interrupted)", config.bot_id)
                    raise
                await runner.stopped()
                log.info("%s: stopped", config.bot_id)
        finally:
            await venue.close()
            if notifier is not None:
                await notifier.close()


def _tell_supervisor_started() -> None:
    fd = os.environ.pop(READY_FD, None)
    if fd is None:
        return
    with contextlib.suppress(OSError, ValueError):  # the supervisor gave up waiting
        os.write(int(fd), b"started\n")
    with contextlib.suppress(OSError, ValueError):
        os.close(int(fd))


async def _open_state(
    config: BotConfig, clock: Callable[[], datetime]
) -> tuple[StateManager, str | None]:
    """The bot's state, opened; a corrupt one is moved aside (by the store, byte for
    byte) and the bot starts from an empty one, to be rebuilt from the venue. Returns
    what was lost, if anything."""
    state = StateManager.from_config(config.bot_id, config, clock=clock)
    try:
        await state.open()
        return state, None
    except StateCorruptError as error:
        lost = str(error)
    log.error("%s: %s; rebuilding the state from the venue", config.bot_id, lost)
    state = StateManager.from_config(config.bot_id, config, clock=clock)
    await state.open()
    return state, lost


@contextlib.asynccontextmanager
async def holding_lease(
    config: BotConfig,
    state: StateManager,
    takeover: bool = False,
    standby: Standby | None = None,
) -> AsyncIterator[Tenure]:
    """The bot's lease, held by this process (acquired, or `LeaseHeld` naming its
    holder; with a `standby`, waited for until it runs out; renewed in the background)
    until the block ends, then let go."""
    ttl = config.state.lease.ttl.total_seconds()
    leases = open_leases(config.state, state.store)
    await leases.open()
    try:
        tenure = Tenure(leases, config.bot_id, ttl)
        held = await leases.read(config.bot_id) if takeover else None
        try:
            while True:
                try:
                    await tenure.acquire(takeover=takeover)
                    break
                except LeaseHeld as refused:
                    if standby is None:
                        raise
                    standby.stand(config.bot_id, refused.record)
                    await standby.pause(ttl / RENEWALS_PER_TTL)
        finally:
            if standby is not None:
                standby.end()
        tenure.keep()
        try:
            if held is not None and held.live:
                await _outwait(config.bot_id, held, tenure)
            await state.reload()  # (what an instance before this one wrote)
            yield tenure
        finally:
            await tenure.release()
    finally:
        await leases.close()


async def _outwait(bot_id: str, held: LeaseRecord, tenure: Tenure) -> None:
    """The instance taken over may still send until its own lease would have run out
    (its writes are refused at once, but not what it sends without writing, a cancel):
    nothing leaves from here until then."""
    left = (held.expires_at - held.read_at).total_seconds()
    log.warning(
        "%s: taken over from %s as epoch %d; waiting %.1f s for its lease to run out",
        bot_id,
        held.holder.describe(),
        tenure.epoch,
        left,
    )
    await asyncio.sleep(left)


async def write_unfenced(
    config: BotConfig, change: Callable[[Transaction, datetime], None]
) -> None:
    """One change to the state of a bot no instance runs (the caller holds its lock),
    written under a lease of its own (`LeaseHeld` if an instance elsewhere holds the
    bot's): an operator's word, or a failure recorded."""
    state = StateManager.from_config(config.bot_id, config)
    async with state, holding_lease(config, state, await _dead_here(config)) as tenure:
        await state.fence(tenure.epoch)
        async with state.transaction() as tx:
            change(tx, utc_now())


async def _dead_here(config: BotConfig) -> bool:
    """Whether the bot's live lease, if any, is a dead process's of this host (killed:
    its lease lasts its ttl), whose word an operator here may write over at once."""
    store = open_store(config.state, config.bot_id, config.base_dir, readonly=True)
    leases = open_leases(config.state, store, readonly=True)
    await leases.open()
    try:
        held = await leases.read(config.bot_id)
    finally:
        await leases.close()
    if held is None or not held.live or held.holder.host != socket.gethostname():
        return False
    try:
        os.kill(held.holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # (alive, another user's)
        return False
    return False


async def _record_failed_start(
    config: BotConfig, error: BotwardenError, what: str = "could not start"
) -> bool:
    """The bot is in error, saying why, written by whoever holds its lock; False if
    the store could not take it."""

    def failed(tx: Transaction, now: datetime) -> None:
        bot = tx.state.bot.move(BotEvent.FAIL, now, last_error=str(error))
        tx.save_bot_record(bot)
        tx.add_event(now, "status", f"{what}: {error}", logged=True)  # (the caller says it)

    try:
        await write_unfenced(config, failed)
        return True
    except Exception as unrecorded:  # the store itself may be what failed
        log.error("could not record the error in the state: %s", unrecorded)
        return False


async def _record_error(config: BotConfig, runner: Runner, error: Exception) -> None:
    if isinstance(error, StateLost):
        # The state it had is gone: the error goes in the state now at its place (a
        # new one, for a deleted file), so that status says error and why; the next
        # start still finds nothing of the bot's trading there, and rebuilds.
        await _record_failed_start(config, error, "STATE LOST")
        return
    try:
        await runner.stopped(error)
    except Exception as unrecorded:  # the store itself may be what failed
        log.error("could not record the error in the state: %s", unrecorded)
