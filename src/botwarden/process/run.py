"""`botwarden run`: one bot in this process, from its lock to its last write.

The lock is taken before anything else and held for the process's life; the state and
the venue come from the config; SIGTERM and SIGINT stop the loop after its current
step (the state is saved, the lock released, exit 0). A SIGKILL skips all of that,
and the next start's recovery is what makes it safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from botwarden.config import BotConfig
from botwarden.domain.models import BotStatus, Topic
from botwarden.engine.crash import CRASH
from botwarden.engine.runner import Flattened, Runner, require_fit
from botwarden.errors import BotwardenError, StateCorruptError, StateLost
from botwarden.keystore import KeyStore
from botwarden.notify import Notifier
from botwarden.process.home import READY_FD, bot_files, botwarden_home
from botwarden.process.lock import InstanceLock, lock_path
from botwarden.process.market import MarketFile
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
) -> None:
    """Run the bot until SIGTERM / SIGINT (or `ticks` passes). Raises `AlreadyRunning`
    if another process runs it; any other failure is stored as the bot's last error.
    `on_running`: called once the lock is held and the state open. `strategy`: the
    config's, already loaded (else loaded here, before anything is locked or opened)."""
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
    async with bot_instance(config, on_running, strategy) as (runner, lock):
        loop.add_signal_handler(signal.SIGUSR1, runner.request_resolve)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        _tell_supervisor_started()
        venue = runner.venue
        speed = getattr(venue.clock, "speed", 1.0) if isinstance(venue, PaperVenue) else 1.0
        pause = config.engine.check_interval.total_seconds() / speed
        await runner.run(
            stop, ticks=ticks, pause=pause, speed=speed, each_pass=lambda: still_locked(lock)
        )


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
) -> AsyncIterator[tuple[Runner, InstanceLock]]:
    """An instance of the bot in this process: its lock (taken first, held to the end),
    its venue, its state, and a runner that has started (recovered, or retrying);
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
            async with state:
                if on_running is not None:
                    on_running()
                settings = config.bot_settings()
                runner = Runner(settings, state, venue, clock, notifier, strategy, decides)
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


async def write_unfenced(
    config: BotConfig, change: Callable[[Transaction, datetime], None]
) -> None:
    """One change to the state of a bot no instance runs (the caller holds its lock),
    written at the store's current epoch: an operator's word, or a failure recorded."""
    state = StateManager.from_config(config.bot_id, config)
    async with state:
        state.epoch = await state.store.epoch(config.bot_id)
        async with state.transaction() as tx:
            change(tx, utc_now())


async def _record_failed_start(
    config: BotConfig, error: BotwardenError, what: str = "could not start"
) -> bool:
    """The bot is in error, saying why, written by whoever holds its lock; False if
    the store could not take it."""

    def failed(tx: Transaction, now: datetime) -> None:
        bot = tx.state.bot.evolve(
            status=BotStatus.ERROR, last_error=str(error), last_updated_at=now
        )
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
