"""A bot's engine on a paper exchange and a SQLite store, with a clock the test moves:
what the engine tests build on. `restart()` is what a killed process comes back to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from botwarden.config import BotConfig
from botwarden.domain.models import TakeProfit
from botwarden.domain.positions import StopPolicy
from botwarden.engine.checks import check_promises
from botwarden.engine.ids import ClientIds
from botwarden.engine.orders import Context, OrderDesk
from botwarden.engine.protection import Protector
from botwarden.engine.recovery import Recovery, RecoveryReport
from botwarden.engine.runner import Runner
from botwarden.state.manager import StateManager
from botwarden.state.settings import RecoverySettings
from botwarden.state.sqlite import SqliteStore
from botwarden.strategies.loading import LoadedStrategy, Origin
from botwarden.venues.base import Venue, VenueOrder
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.faults import FaultPlan
from botwarden.venues.paper.venue import PaperVenue
from tests.conftest import whole
from tests.venues.test_paper import FEED, Clock

BOT = "golden"


@dataclass
class Bot:
    ctx: Context
    desk: OrderDesk
    protector: Protector
    venue: PaperVenue
    clock: Clock

    async def open_orders(self) -> dict[str, VenueOrder]:
        return {o.client_order_id: o for o in await self.venue.open_orders()}

    async def recover(self, **settings: object) -> RecoveryReport:
        recovery = Recovery(self.ctx, self.desk, self.protector, RecoverySettings(**settings))
        return await recovery.run()

    async def protect(self) -> list[str]:
        price = self.venue.book.feed.price("SPY", self.clock.now)
        return await self.protector.protect_all(await self.open_orders(), {"SPY": price})


class World:
    """One paper exchange and one state file, outliving the bots that use them."""

    def __init__(
        self,
        tmp_path: Path,
        faults: str = "",
        client_ids: str = "alpaca",
        stop: StopPolicy | None = None,
        grace: timedelta = timedelta(seconds=15),
        reduce_only: bool = False,
        take_profit: TakeProfit | None = None,
        shorting: bool = True,
        replaces: bool = True,
    ) -> None:
        self.clock = Clock()
        self.book = PaperBook(
            tmp_path / "paper.db",
            FEED,
            BookSettings(
                client_ids=client_ids,
                shorting=shorting,
                reduce_only=reduce_only,
                replaces=replaces,
            ),
        )
        self.faults = faults
        self.state_path = tmp_path / "state.db"
        self.stop = stop or StopPolicy()
        self.grace = grace
        self.take_profit = take_profit
        self.epoch = 0
        self.bots: list[Bot] = []

    async def start(self) -> Bot:
        """A new instance: a new manager on the same file, a new epoch."""
        state = StateManager(BOT, SqliteStore(self.state_path), clock=self.clock)
        await state.open()
        self.epoch = await state.claim(self.epoch + 1)
        venue = PaperVenue(self.book, self.clock, FaultPlan.parse(self.faults), self._late)
        ctx = Context(
            bot_id=BOT,
            state=state,
            venue=venue,
            ids=ClientIds(BOT, self.epoch),
            clock=self.clock,
            stop=self.stop,
            unknown_order_grace=self.grace,
            take_profit=self.take_profit,
        )
        desk = OrderDesk(ctx)
        bot = Bot(ctx, desk, Protector(ctx, desk), venue, self.clock)
        self.bots.append(bot)
        return bot

    async def _late(self, seconds: float) -> None:
        """A `slow` answer: the exchange's time moves on while the bot waits for it."""
        self.clock.now += timedelta(seconds=seconds)

    async def close(self) -> None:
        for bot in self.bots:
            await bot.ctx.state.close()
        self.book.close()

    def venue_orders(self, client_order_id: str) -> int:
        return sum(o.client_order_id == client_order_id for o in self.book.all_orders())


def price(at=None) -> Decimal:
    from tests.venues.test_paper import T0

    return FEED.price("SPY", at or T0)


# -- the whole bot: a Runner on a paper exchange and a SQLite file ------------------------

CONFIG = {
    "bot_id": "golden",
    "symbols": ["SPY"],
    "order": {"qty": 10},
    "strategy": {"name": "golden_cross", "params": {"fast": 3, "slow": 8}, "timeframe": "1h"},
    "stop": {"distance": 1.5},
}


async def started(
    config: BotConfig,
    state_path: Path,
    venue: Venue,
    clock: Callable[[], datetime],
    deciding: object | None = None,
) -> Runner:
    """A new instance of the bot on the state file at `state_path` and `venue`, its
    recovery run; `deciding`: a strategy object to decide with, instead of the
    config's."""
    keep = config.state.history.keep
    state = StateManager("golden", SqliteStore(state_path), clock=clock, history_keep=keep)
    await state.open()
    loaded = LoadedStrategy(deciding, Origin("module", "tests")) if deciding else None
    runner = Runner(config.bot_settings(), state, venue, clock, None, loaded)
    await runner.start()
    return runner


class Exchange:
    def __init__(self, tmp_path: Path, **book: object) -> None:
        self.clock = Clock()
        self.book = PaperBook(tmp_path / "paper.db", FEED, BookSettings(**book))
        self.state_path = tmp_path / "state.db"
        self.held_once: set[str] = set()
        """The trade ids and client order ids the bot's history was seen to hold."""

    async def runner(self, deciding: object | None = None, **overrides: object) -> Runner:
        """A new instance on the same state and exchange; `deciding`: a strategy object
        to decide with, instead of the config's."""
        config = BotConfig.model_validate({**CONFIG, **overrides})
        venue = PaperVenue(self.book, self.clock)
        return await started(config, self.state_path, venue, self.clock, deciding)

    async def hours(self, runner: Runner, count: int) -> None:
        """Tick once an hour; after every tick, every promise holds (for what the bot's
        history keeps, if it keeps it a while only)."""
        keep = runner.state.history_keep
        for _ in range(count):
            self.clock.now += timedelta(hours=1)
            await runner.tick()
            state = await whole(runner.state)
            self.held_once |= {*state.fills, *state.intents}  # (checked every hour)
            since = None if keep is None else self.clock.now - keep
            violations = check_promises(
                state, self.book, runner.ctx.ids, kept_since=since, held_once=self.held_once
            )
            assert violations == [], "\n".join(map(str, violations))
