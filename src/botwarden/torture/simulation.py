"""One seed of the torture simulator: a bot's life on the paper exchange, with every
fault the seed draws, killed and restarted again and again, checked all along.

Everything runs in this process, on a simulated clock (nothing sleeps): the real
engine (`Runner`), a real store (SQLite by default) and the paper exchange, whose
book outlives every "process" of the bot as a real exchange would. The seed decides:
- the bot: its markets, stop policy, recovery mode and orphan policy, client-id
  rules of Alpaca or Binance (or the user's own config, with its own strategy);
- the prices (the paper feed's seed) and the coin-flip strategy's signals;
- the venue's faults: errors before or after acceptance, timeouts, 429s, 5xx,
  outages, slow answers, partial fills, lookups that say "not found" for a while;
- the store's faults: the n-th write fails (ENOSPC or EIO), once or for a while,
  with nothing written or with the write landed and its sync failed;
- the crashes: at named crash points or at the n-th venue call or store write (just
  before or just after it), during recovery too, nested up to three deep;
- a state lost while the bot is down (a file store's file emptied, torn, overwritten
  with garbage, or deleted), once, after a crash: the next start rebuilds it;
- the risk guards' trading day: a time zone with daylight saving and a day start in
  the hour a fall-back repeats, around its changes.

After each completed recovery the promises are checked (I2 and I3 as far as the bot
can have caught up; I2 only if the venue and the store did not fail during that
recovery: a stop it could not place is owed within a bounded time, not at once);
while the store cannot write, I2 is checked from the venue's book after every pass;
after every pass, the trading day must never have gone back nor a day been reset
twice; at the end the faults stop, one clean instance recovers and runs a few hours,
and every promise is checked in full. The same seed gives the same
history, entry for entry.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import random
import re
import traceback
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from botwarden.config import BotConfig, load_config
from botwarden.domain.models import format_duration
from botwarden.engine.checks import PROMISES, Violation, check_promises
from botwarden.engine.crash import CRASH, POINTS, SimulatedCrash
from botwarden.engine.ids import ClientIds
from botwarden.engine.orders import OrderDesk
from botwarden.engine.runner import Runner
from botwarden.errors import ConfigError, StateCorruptError, StateError, StoreUnavailable
from botwarden.state.base import Change, Put, StateStore
from botwarden.state.factory import open_store
from botwarden.state.history import WholeState
from botwarden.state.manager import StateManager
from botwarden.state.settings import resolve_path
from botwarden.torture.history import Crasher, History, RecordingVenue
from botwarden.venues.factory import paper_book
from botwarden.venues.paper.book import PaperBook
from botwarden.venues.paper.faults import FaultKind, FaultPlan
from botwarden.venues.paper.venue import PaperVenue
from botwarden.venues.settings import PaperInstrument, PaperVenueSettings

VENUE_FAULTS = tuple(kind.value for kind in FaultKind)
STATE_LOSSES = ("emptied", "torn", "garbage", "deleted")
FAULTS = (*VENUE_FAULTS, "crash", "store_io", "state_loss")
"""What `--faults` may name: the paper venue's fault kinds, crashes, store I/O errors,
a state file lost while the bot is down."""
DAYLIGHT_ZONES = ("America/New_York", "Europe/London", "Australia/Sydney")

START = datetime(2025, 1, 6, tzinfo=UTC)
HEALING_TICKS = 3
"""Clean hours at the end, after the faults stop: what the bot gets to catch up."""
BOT_ID = "torture"
STORES = ("sqlite", "duckdb", "jsonfile", "redis", "postgres")
SHARED = ("redis", "postgres")
"""Server stores: each seed gets a namespace of its own there (a key prefix, a
schema), dropped when the seed ends."""
NESTING = 3
"""At most this many crashes in a row during recoveries."""


@dataclass(frozen=True)
class Options:
    """What every seed of a campaign shares (`botwarden torture`'s options)."""

    days: float = 1.0
    faults: frozenset[str] = frozenset(FAULTS)
    config: BotConfig | None = None
    """The user's bot (its symbols, strategy, sizing, stops, guards, recovery); None: a
    coin-flip bot the seed shapes."""
    store: str = "sqlite"
    store_url: str | None = None
    """The Redis URL or PostgreSQL DSN of a server store (default: the config's)."""
    sabotage: frozenset[str] = frozenset()
    """Engine safeguards switched off, to prove the checker catches what they prevent
    (`write_ahead`: orders are sent before their intent is stored; `outage_guard`: no
    stop is placed while the store cannot write). Tests only."""


def parse_options(
    days: float, faults: str, config: Path | None, store: str, store_url: str | None = None
) -> Options:
    """`botwarden torture`'s options, checked: one clear error naming the bad value."""
    if faults.strip() == "all":
        kinds = frozenset(FAULTS)
    elif faults.strip() == "none":
        kinds = frozenset()
    else:
        kinds = frozenset(k.strip() for k in faults.split(",") if k.strip())
        unknown = sorted(kinds - set(FAULTS))
        if unknown:
            raise ConfigError(
                f"--faults: unknown fault {unknown[0]!r}; use all, none, or some of"
                f" {', '.join(FAULTS)}"
            )
    if store not in STORES:
        raise ConfigError(f"--store: {store!r} is not one of {', '.join(STORES)}")
    bot = None
    if config is not None:
        bot = load_config(config)
        if bot.state.recovery.mode == "manual":
            raise ConfigError(
                f"{config}: state.recovery.mode: manual waits for an operator at every"
                " start, and the simulator has none; simulate with sync, restore or close_all"
            )
        bot.load_strategy()  # a strategy that cannot be built: one line, before any seed
    options = Options(days=days, faults=kinds, config=bot, store=store, store_url=store_url)
    if store in SHARED:
        asyncio.run(_reach(draw_scenario(0, options).config))
    return options


@dataclass(frozen=True)
class StoreFault:
    """The n-th store write (counted over the seed) fails; `lasts` > 0: every write
    fails for that long (None: from then on, until the faults stop at the end);
    `landed`: the write reached the store, its sync failed."""

    nth: int
    code: int
    lasts: timedelta | None
    landed: bool

    def __str__(self) -> str:
        how = "landed, sync failed" if self.landed else "nothing written"
        span = "from then on" if self.lasts is None else f"for {self.lasts}"
        span = "once" if self.lasts == timedelta(0) else span
        return f"store write #{self.nth} fails with {errno.errorcode[self.code]} {span} ({how})"


@dataclass(frozen=True)
class Scenario:
    """What a seed decides, all drawn before the run starts."""

    seed: int
    config: BotConfig
    paper: PaperVenueSettings
    venue_faults: str
    store_fault: StoreFault | None
    crash_rate: float
    start: datetime
    state_loss: str | None = None
    """How the state file is lost at the first crash after a recovery, if it is."""

    def describe(self) -> str:
        recovery = self.config.state.recovery
        stop, risk = self.config.stop, self.config.risk
        return "; ".join(
            [
                f"{self.config.strategy.spec} on {', '.join(self.config.symbols)}",
                f"{self.paper.client_ids} client ids",
                "reduce-only honoured" if self.paper.reduce_only else "no reduce-only",
                "orders replaced in one request" if self.paper.replaces else "no replace",
                f"recovery {recovery.mode}/{recovery.orphan_positions}",
                f"stop {stop.distance}%{' trailing' if stop.trailing else ''}",
                f"venue faults: {self.venue_faults or 'none'}",
                f"store: {self.store_fault or 'no faults'}",
                f"state file {self.state_loss} once" if self.state_loss else "state kept",
                f"history kept {format_duration(keep)}"
                if (keep := self.config.state.history.keep)
                else "history kept whole",
                f"day starts {risk.day_starts_at:%H:%M} {risk.timezone}",
                f"crash rate {self.crash_rate:.2f}",
            ]
        )


def simulated_markets(symbols: list[str]) -> dict[str, PaperInstrument]:
    """The simulator's markets, with each of `symbols` among them: one it does not list
    trades like its nearest kin (a perpetual `BTC/USDT:USDT` like `BTC/USDT`, Alpaca's
    `BTC/USD` like `BTC/USDT`), anything else like a stock at 100. The faults, not the
    prices, are what the simulator is for."""
    markets = dict(PaperVenueSettings().instruments)
    for symbol in symbols:
        if symbol in markets:
            continue
        base, _, quote = symbol.partition(":")[0].partition("/")
        kin = markets.get(f"{base}/USDT") if quote else None
        markets[symbol] = kin or PaperInstrument(price=Decimal(100))
    return markets


def draw_scenario(seed: int, options: Options) -> Scenario:
    rng = random.Random(f"scenario:{seed}")
    symbols = options.config.symbols if options.config is not None else []
    paper = PaperVenueSettings(
        seed=seed,
        client_ids=rng.choice(["alpaca", "binance"]),
        reduce_only=rng.random() < 0.5,
        replaces=random.Random(f"replaces:{seed}").random() < 0.5,  # (the other draws as before)
        instruments=simulated_markets(symbols),
    )
    if options.config is not None:
        raw = options.config.model_dump(mode="json", exclude={"venue", "state"})
        raw["state"] = options.config.state.model_dump(mode="json")
    else:
        symbols = rng.sample(sorted(paper.instruments), rng.choice([1, 1, 2, 3]))
        raw = {
            "bot_id": BOT_ID,
            "symbols": symbols,
            "order": {"notional": 2000},
            "strategy": {
                "name": "coin_flip",
                "params": {
                    "seed": seed,
                    "enter": 0.35,
                    "exit": 0.25,
                    "short": rng.random() < 0.5,
                    # sizes, limits that expire, own stops, adds, parts out, updates
                    "orders": rng.choice([0, 0.5, 0.9]),
                },
                "timeframe": "1h",
            },
            "take_profit": rng.choice([None, None, {"percent": 3}, {"multiple": 2}]),
            "stop": {
                "distance": rng.choice([0.5, 1, 2, 3]),
                "trailing": rng.random() < 0.5,
                "max_underwater_pct": rng.choice([1, 5, 20]),
            },
            "state": {
                "recovery": {
                    "mode": rng.choice(["sync", "sync", "restore", "close_all"]),
                    "orphan_positions": rng.choice(["close", "adopt"]),
                }
            },
        }
    raw["bot_id"] = raw.get("bot_id") or BOT_ID
    raw["state"]["backend"] = options.store
    if options.store_url is not None and options.store in SHARED:
        where = "url" if options.store == "redis" else "dsn"
        server = raw["state"].get(options.store, {})
        raw["state"][options.store] = {**server, where: options.store_url}
    raw["engine"] = {"check_interval": "1h", "unknown_order_grace": "15s"}
    if options.config is None:  # a third keep their history a few days only
        keeps = random.Random(f"history:{seed}")  # (the other draws as before)
        if keeps.random() < 1 / 3:
            raw["state"]["history"] = {"keep": keeps.choice(["1d", "2d", "5d"])}
    start = START + timedelta(hours=rng.randrange(24 * 365))
    if options.config is None and rng.random() < 0.5:
        zone = rng.choice(DAYLIGHT_ZONES)
        raw["risk"] = {
            **raw.get("risk", {}),
            "timezone": zone,
            "day_starts_at": rng.choice(["01:30", "02:30", "00:00", "09:30"]),
        }
        change = rng.choice(_daylight_changes(zone, START.year))
        start = change - timedelta(minutes=rng.randrange(0, 24 * 60, 30))
    config = BotConfig.model_validate(raw)
    if options.config is not None:
        config = config.placed_as(options.config)
    # (drawn whatever the store, so that a seed draws the same on every store)
    lose = rng.random() < 0.3 and "state_loss" in options.faults
    lose = lose and options.store not in SHARED  # a server store has no file to lose
    return Scenario(
        seed=seed,
        config=config,
        paper=paper,
        venue_faults=_venue_faults(rng, options, start),
        store_fault=_store_fault(rng) if "store_io" in options.faults else None,
        crash_rate=rng.uniform(0.5, 0.9) if "crash" in options.faults else 0.0,
        start=start,
        state_loss=rng.choice(STATE_LOSSES) if lose else None,
    )


@functools.cache
def _daylight_changes(zone: str, year: int) -> tuple[datetime, ...]:
    """The instants (UTC) `zone`'s clocks change in `year`, found hour by hour (once per
    zone and year: a campaign draws them for thousands of seeds)."""
    tz = ZoneInfo(zone)
    changes, hour = [], datetime(year, 1, 1, tzinfo=UTC)
    offset = hour.astimezone(tz).utcoffset()
    while hour.year == year:
        hour += timedelta(hours=1)
        now = hour.astimezone(tz).utcoffset()
        if now != offset:
            changes.append(hour)
            offset = now
    return tuple(changes)


def _venue_faults(rng: random.Random, options: Options, start: datetime) -> str:
    """A fault plan, as a config would write it: each allowed kind, by chance."""
    rules = []
    span = timedelta(days=options.days)
    for kind in VENUE_FAULTS:
        if kind not in options.faults or rng.random() < 0.4:
            continue
        if kind == "outage":
            begin = start + span * rng.random()
            end = begin + timedelta(minutes=rng.randrange(10, 180))
            rules.append(f"outage:from={begin:%Y-%m-%dT%H:%MZ},to={end:%Y-%m-%dT%H:%MZ}")
        elif kind == "slow":
            rules.append(f"slow:p={rng.uniform(0.02, 0.1):.3f},seconds={rng.randrange(1, 60)}")
        elif kind == "partial_fill":
            rules.append(f"partial_fill:p={rng.uniform(0.2, 0.6):.3f},fraction=0.5")
        elif kind == "stale_lookup":
            rules.append(
                f"stale_lookup:p={rng.uniform(0.3, 1):.3f},seconds={rng.randrange(5, 120)}"
            )
        elif kind in ("timeout_after", "server_error"):
            rules.append(f"{kind}:on=submit|cancel|order,p={rng.uniform(0.03, 0.2):.3f}")
        elif kind == "rate_limit":
            rules.append(f"rate_limit:p={rng.uniform(0.01, 0.05):.3f},retry_after=1")
        else:
            rules.append(f"{kind}:p={rng.uniform(0.01, 0.06):.3f}")
    return "; ".join(rules)


def _store_fault(rng: random.Random) -> StoreFault | None:
    if rng.random() < 0.5:
        return None
    lasts = rng.choice([timedelta(0), timedelta(minutes=rng.randrange(30, 300)), None])
    return StoreFault(
        nth=rng.randrange(1, 150),
        code=rng.choice([errno.ENOSPC, errno.EIO]),
        lasts=lasts,
        landed=rng.random() < 0.3,
    )


class SimClock:
    """The simulation's time: it moves only when told to."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FaultyStore:
    """The bot's store, with the seed's write faults and crashes around each write.
    Reads always work (a full disk still reads)."""

    def __init__(self, store: StateStore, sim: Simulation) -> None:
        self._store = store
        self._sim = sim

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def apply(self, flow_id: str, change: Change) -> None:
        sim = self._sim
        sim.crasher.before("store write")
        sim.store_writes += 1
        fault = sim.scenario.store_fault
        if fault is not None and sim.store_failing(fault):
            if fault.landed:
                await self._store.apply(flow_id, change)
                sim.saw_land(change)
            sim.faults["store_io"] += 1
            sim.history.note("store fault", f"write #{sim.store_writes}: {fault}")
            raise StoreUnavailable(f"{self._store.describe()}: {os.strerror(fault.code)}")
        await self._store.apply(flow_id, change)
        sim.saw_land(change)
        sim.crasher.after("store write")


@dataclass
class Finding:
    when: str
    violation: Violation


@dataclass
class Outcome:
    seed: int
    days: float
    scenario: str = ""
    crashes: int = 0
    recoveries: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    orders: int = 0
    fills: int = 0
    findings: list[Finding] = field(default_factory=list)
    strategy_failures: int = 0
    """How often the strategy raised or answered nonsense (told once each): not the
    engine's fault, but a strategy that fails is not ready for money."""
    error: str | None = None
    """A bug: the engine raised something it should not have (traceback)."""
    history: History | None = None
    history_file: Path | None = None
    """Where a failing seed's history was written (by the campaign)."""

    @property
    def failed(self) -> bool:
        return bool(self.findings or self.error)


class Simulation:
    def __init__(self, seed: int, options: Options, workdir: Path) -> None:
        self.seed = seed
        self.options = options
        self.workdir = workdir
        self.scenario = draw_scenario(seed, options)
        if options.store in SHARED:  # a namespace of its own: seeds may run side by side
            namespace = f"bwtorture_{seed}_{uuid.uuid4().hex[:12]}"
            config = _in_namespace(self.scenario.config, namespace)
            self.scenario = replace(self.scenario, config=config)
        self.rng = random.Random(f"run:{seed}")
        self.clock = SimClock(self.scenario.start)
        self.history = History(self.clock)
        self.crasher = Crasher()
        self.faults: Counter[str] = Counter()
        self.store_writes = 0
        self.held_once: set[str] = set()
        """Every fill's trade id and intent's client order id a write of the bot's
        landed with: what retention may have removed since (the checks ask)."""
        self._store_failed_at: datetime | None = None
        self._state_lost_at: datetime | None = None
        self._faults_at_start = 0
        """Faults fired before the current instance started (to tell whether its
        recovery met any)."""
        self._owed_i1 = False
        """I1 was left aside after a recovery (guards held unwritten): checked once they
        are written down."""
        self.outcome = Outcome(seed, options.days, self.scenario.describe())
        self._trading_day: date | None = None
        self._today: date | None = None
        self._day_checked_at: datetime | None = None
        self._resets_seen: set[int] = set()
        self._days_reset: set[str] = set()
        self._events_read: int | None = None
        """The last event looked at by the trading-day check (its sequence number)."""
        self.book: PaperBook | None = None
        self.venue_faults = FaultPlan.parse(self.scenario.venue_faults, seed=seed)
        self.plan = self.venue_faults
        """The faults the venue has now: the seed's, then none for the healing hours."""

    # -- faults ---------------------------------------------------------------------
    def store_failing(self, fault: StoreFault) -> bool:
        if self._store_failed_at is None:
            if self.store_writes != fault.nth:
                return False
            self._store_failed_at = self.clock.now
            return True
        return (
            self.store_writes == fault.nth
            or fault.lasts is None
            or self.clock.now < self._store_failed_at + fault.lasts
        )

    def _store_down_now(self) -> bool:
        fault, since = self.scenario.store_fault, self._store_failed_at
        if fault is None or since is None:
            return False
        return fault.lasts is None or self.clock.now < since + fault.lasts

    def _arm(self, nested: int) -> None:
        """Perhaps arm a crash for the instance starting now (`nested`: how many crashes
        in a row came during recovery before it)."""
        rng = self.rng
        if nested >= NESTING or rng.random() >= self.scenario.crash_rate:
            return
        if nested and rng.random() < 0.6:  # crash its recovery too
            points = sorted(p for p in POINTS if p.startswith("recovery_"))
            if rng.random() < 0.5:
                CRASH.arm(rng.choice(points))
            else:
                self.crasher.arm(rng.randrange(1, 15), after=rng.random() < 0.5)
            return
        if rng.random() < 0.4:
            CRASH.arm(rng.choice(sorted(POINTS)), nth=rng.randrange(1, 3))
        else:  # a day is some 300 venue calls and store writes
            early = rng.random() < 0.25
            self.crasher.arm(rng.randrange(1, 15 if early else 200), after=rng.random() < 0.5)

    # -- the run ----------------------------------------------------------------------
    async def run(self) -> Outcome:
        config = self.scenario.config
        self.book = paper_book(self.scenario.paper, self.workdir / "paper.db")
        OrderDesk.write_ahead = "write_ahead" not in self.options.sabotage
        Runner.guard_without_store = "outage_guard" not in self.options.sabotage
        try:
            await self._lifetimes()
            CRASH.disarm()
            self.crasher.disarm()
            await self._healed()
        except Exception:
            self.outcome.error = traceback.format_exc()
            self.history.note("bug", self.outcome.error.splitlines()[-1])
        finally:
            CRASH.disarm()
            OrderDesk.write_ahead = True
            Runner.guard_without_store = True
            await _drop_namespace(self.scenario.config)
        mine = ClientIds(config.bot_id, 0)
        self.outcome.orders = sum(mine.owns(o.client_order_id) for o in self.book.all_orders())
        self.outcome.fills = sum(mine.owns(f.client_order_id) for _, f in self.book.fills())
        self.book.close()
        self.outcome.faults = self.faults + Counter(
            {kind.value: n for kind, n in self.venue_faults.fired.items()}
        )
        self.outcome.history = self.history
        return self.outcome

    async def _lifetimes(self) -> None:
        """Instances of the bot, one after the other, until the simulated time is up."""
        end = self.scenario.start + timedelta(days=self.options.days)
        interval = self.scenario.config.engine.check_interval
        nested = 0
        while self.clock.now < end:
            runner, lost = await self._instance()
            self._arm(nested)
            recovered = lose = False
            try:
                await runner.start(rebuilt_after=lost)
                recovered = await self._recovered(runner, recovered)
                if nested >= NESTING:  # spared during recovery; fair game after it
                    nested = 0
                    self._arm(0)
                held_before: set[str] = set()
                while self.clock.now < end:
                    self.clock.now += interval
                    venue_faults = sum(self.plan.fired.values())
                    await runner.tick()
                    recovered = await self._recovered(runner, recovered)
                    await self._check_owed_i1(runner)
                    quiet = sum(self.plan.fired.values()) == venue_faults
                    held_before = await self._check_outage(runner, held_before, quiet)
                    await self._check_trading_day(runner)
                await runner.stopped()
            except SimulatedCrash as crash:
                self.faults["crash"] += 1
                self.outcome.crashes += 1
                self.history.note("crash", str(crash))
                nested = 0 if recovered else nested + 1
                self.clock.now += timedelta(seconds=self.rng.choice([1, 30, 600, 3600, 7200]))
                lose = recovered
            except StateError as error:  # the store failed at start: the process exits
                # (without the store's name: a history is the same wherever it ran)
                told = str(error).replace(runner.state.store.describe(), "<store>")
                self.history.note("exit", told.replace(str(self.workdir), "<workdir>"))
                self.clock.now += timedelta(minutes=1)
            finally:
                CRASH.disarm()
                self.crasher.disarm()
                await runner.state.store.close()
            if lose:  # the process is down: its state file meets its fate
                self._lose_the_state()

    async def _healed(self) -> None:
        """The faults stop; a last instance recovers and runs a few clean hours; then
        every promise is owed in full."""
        self.plan = FaultPlan([])
        self.scenario = _without_store_fault(self.scenario)
        runner, lost = await self._instance()
        try:
            await runner.start(rebuilt_after=lost)
            await self._recovered(runner, False)
            for _ in range(HEALING_TICKS):
                self.clock.now += self.scenario.config.engine.check_interval
                await runner.tick()
            await runner.stopped()
            events = await runner.state.history.events()
            self.outcome.strategy_failures = sum(
                event.kind == "alert" and "strategy" in event.data for event in events
            )
            await self._check(runner, "at the end", catching_up=False)
        finally:
            await runner.state.store.close()

    async def _instance(self) -> tuple[Runner, str | None]:
        """A new instance, as `botwarden run` makes one: a state found corrupt is moved
        aside (by the store) and the instance starts from an empty one, to rebuild it
        from the venue. Returns what was lost, if anything."""
        self.history.instance += 1
        self.history.note("start")
        config = self.scenario.config
        # The simulator's clock is not the wall's: its strategy is called inline, unbounded.
        inline = config.strategy.model_copy(update={"time_limit": None})
        config = config.model_copy(update={"strategy": inline})
        lost = None
        try:
            state = await self._open_state()
        except StateCorruptError as error:
            lost = str(error).replace(str(self.workdir), "<workdir>")
            lost = re.sub(r"\.corrupt-\d{8}T\d{6}Z", ".corrupt-<time>", lost)  # the host's
            self.history.note("state corrupt", lost)
            state = await self._open_state()
        venue = PaperVenue(self.book, self.clock, self.plan, sleep=self.clock.sleep)
        recorded = RecordingVenue(venue, self.history, self.crasher)
        self._faults_at_start = self._faults_so_far()
        return Runner(config.bot_settings(), state, recorded, self.clock), lost

    async def _open_state(self) -> StateManager:
        config = self.scenario.config
        store = FaultyStore(open_store(config.state, config.bot_id, self.workdir), self)
        keep = config.state.history.keep
        state = StateManager(config.bot_id, store, clock=self.clock, history_keep=keep)
        await state.open()
        return state

    def _lose_the_state(self) -> None:
        """The seed's state loss, the first time the bot is down after a recovery: its
        file emptied, torn in half, overwritten with garbage, or deleted (with the
        files beside it)."""
        how = self.scenario.state_loss
        if how is None or self.faults["state_loss"]:
            return
        settings = self.scenario.config.state
        path = resolve_path(
            getattr(settings, settings.backend).path, self.scenario.config.bot_id, self.workdir
        )
        if not path.exists():
            return
        data = path.read_bytes()
        for companion in path.parent.glob(path.name + "-*"):  # SQLite's WAL and SHM
            companion.unlink()
        if how == "emptied":
            path.write_bytes(b"")
        elif how == "torn":
            path.write_bytes(data[: len(data) // 2])
        elif how == "garbage":
            path.write_bytes(random.Random(self.seed).randbytes(max(len(data), 4096)))
        else:
            path.unlink()
        self.faults["state_loss"] += 1
        self._state_lost_at = self.clock.now
        self.history.note("state lost", how)
        # What the trading-day check remembers was in the lost state: a rebuilt one
        # starts its days again (its replayed trades set the day they closed on).
        self._trading_day = None
        self._resets_seen, self._days_reset, self._events_read = set(), set(), None

    async def _check_trading_day(self, runner: Runner) -> None:
        """The trading day never goes back (by the bot's rule at the simulated time, and
        as its state keeps it), and no day is reset twice (in a seed's life, across
        instances)."""
        # The rule itself, every five minutes since the last pass: a pass an hour
        # apart can miss the half hour a fall-back takes a day back.
        limits, now = self.scenario.config.risk, self.clock.now
        at = max(self._day_checked_at or now, now - timedelta(days=2))
        while at <= now:
            today = limits.trading_day(at)
            if self._today is not None and today < self._today:
                self._day_fault(f"the trading day went back from {self._today} to {today}")
            self._today = max(today, self._today or today)
            at += timedelta(minutes=5)
        self._day_checked_at = now
        state = runner.state.last_known()
        day = state.risk.trading_day
        if day is not None and self._trading_day is not None and day < self._trading_day:
            self._day_fault(f"the trading day went back from {self._trading_day} to {day}")
        self._trading_day = max(filter(None, (day, self._trading_day)), default=None)
        for event in await runner.state.history.events(after=self._events_read):
            self._events_read = event.seq
            if event.kind == "day" and event.seq not in self._resets_seen:
                self._resets_seen.add(event.seq)
                started = event.data["trading_day"]
                if started in self._days_reset:
                    self._day_fault(f"trading day {started} was reset twice")
                self._days_reset.add(started)

    def _day_fault(self, what: str) -> None:
        self.history.note("bug", what)
        self.outcome.error = self.outcome.error or f"{what} ({self.clock.now:%Y-%m-%d %H:%M})"

    async def _recovered(self, runner: Runner, before: bool) -> bool:
        """Check the promises once, when the instance's recovery has just completed."""
        if before or runner.report is None:
            return before
        self.outcome.recoveries += 1
        self.history.note("recovered")
        promises = set(PROMISES)
        self._owed_i1 = False  # (checked now, unless left aside again below)
        if self._faults_so_far() != self._faults_at_start:
            promises.discard("I2")
        if self._store_down_now() or runner.guard.unwritten:
            # Guards sent while the store fails have no intent until it writes again:
            # the bot holds them, to write at its first pass that finds it writing (a
            # write that failed once may have been the last of a recovery).
            promises.discard("I1")
            self._owed_i1 = True
        when = f"after recovery {self.outcome.recoveries}"
        await self._check(runner, when, catching_up=True, promises=promises)
        return True

    async def _check_owed_i1(self, runner: Runner) -> None:
        """I1, owed since a recovery, once the guards it left are written down."""
        if not self._owed_i1 or runner.guard.unwritten or self._store_down_now():
            return
        self._owed_i1 = False
        await self._check(runner, "once the guards were written down", True, {"I1"})

    async def _check_outage(self, runner: Runner, held_before: set[str], quiet: bool) -> set[str]:
        """While the store cannot write, the stop guarantee still holds, read from the
        venue's book: a position held after two passes in a row (the first may be the
        one that filled it), the last with no venue fault, rests covered by stops.
        Returns what is held now (or nothing, when the store writes)."""
        if not self._store_down_now() or runner.report is None:
            return set()
        held = {p.symbol for p in self.book.positions()}
        owed = (held & held_before) - runner.guard.left_bare if quiet else set()
        if owed:
            state = WholeState.live_only(runner.state.last_known())
            found = check_promises(state, self.book, runner.ctx.ids, {"I2"}, catching_up=False)
            found = [v for v in found if v.message.split(":")[0] in owed]
            stamp = f"while the store failed ({self.clock.now:%Y-%m-%d %H:%M})"
            self.history.note("check", f"store down: {len(found)} violation(s)")
            self.outcome.findings += [Finding(stamp, v) for v in found]
        return held

    def saw_land(self, change: Change) -> None:
        self.held_once.update(
            op.key
            for op in change.ops
            if isinstance(op, Put) and op.collection in ("fills", "intents", "past_intents")
        )

    def _faults_so_far(self) -> int:
        return sum(self.plan.fired.values()) + self.faults["store_io"]

    async def _check(
        self,
        runner: Runner,
        when: str,
        catching_up: bool,
        promises: Collection[str] = frozenset(PROMISES),
    ) -> None:
        live = await runner.state.snapshot()
        keep = runner.state.history_keep
        state = (
            WholeState.live_only(live)
            if set(promises) <= {"I2"}
            else await WholeState.read(live, runner.state.history)
        )
        found = check_promises(
            state,
            self.book,
            runner.ctx.ids,
            promises,
            catching_up=catching_up,
            state_lost_at=self._state_lost_at,
            kept_since=None if keep is None else self.clock.now - keep,
            held_once=self.held_once,
        )
        stamp = f"{when} ({self.clock.now:%Y-%m-%d %H:%M})"
        self.history.note("check", f"{when}: {len(found)} violation(s)")
        self.outcome.findings += [Finding(stamp, v) for v in found]


def _without_store_fault(scenario: Scenario) -> Scenario:
    return replace(scenario, store_fault=None)


def _in_namespace(config: BotConfig, namespace: str) -> BotConfig:
    """The config with its server store's records under `namespace`."""
    state = config.state
    if state.backend == "redis":
        state = state.model_copy(
            update={"redis": state.redis.model_copy(update={"key_prefix": namespace})}
        )
    elif state.backend == "postgres":
        state = state.model_copy(
            update={"postgres": state.postgres.model_copy(update={"db_schema": namespace})}
        )
    return config.model_copy(update={"state": state})


async def _reach(config: BotConfig) -> None:
    """One clear error, before any seed runs, if the server store cannot be reached."""
    config = _in_namespace(config, f"bwtorture_reach_{uuid.uuid4().hex[:12]}")
    store = open_store(config.state, config.bot_id, Path.cwd())
    try:
        await store.open()
    except StateError as error:
        raise ConfigError(f"--store {config.state.backend}: {error}") from None
    finally:
        await store.close()
    await _drop_namespace(config)


async def _drop_namespace(config: BotConfig) -> None:
    """Remove what a seed left in a server store."""
    state = config.state
    if state.backend == "redis":
        import redis.asyncio as redis

        client = redis.from_url(state.redis.url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{state.redis.key_prefix}:*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()
    elif state.backend == "postgres":
        import psycopg

        async with await psycopg.AsyncConnection.connect(state.postgres.dsn) as conn:
            name = psycopg.sql.Identifier(state.postgres.db_schema)
            await conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(name))


async def simulate(seed: int, options: Options, workdir: Path) -> Outcome:
    """Run one seed in `workdir` (which should be empty: its files are the seed's)."""
    return await Simulation(seed, options, workdir).run()
