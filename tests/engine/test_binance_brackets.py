"""A stop and a take-profit on Binance, through the real ccxt over HTTP to the Binance
emulators: on spot as one OCO order list, on USD-M as two reduce-only orders in the
algo service (a STOP_MARKET and a TAKE_PROFIT_MARKET). Every check of what rests and
what filled is made on the exchange's own book, never on the bot's state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest

from botwarden.config import BotConfig
from botwarden.domain.models import Bar, OrderSide, Position, Stop, TakeProfit
from botwarden.domain.orders import IntentStatus, OrderType, Purpose
from botwarden.engine.crash import CRASH, SimulatedCrash
from botwarden.engine.runner import Runner
from botwarden.strategies.base import Signal
from botwarden.venues.base import OrderState, VenueOrder
from botwarden.venues.emulators.binance import Flavour
from botwarden.venues.paper.venue import PaperVenue
from tests.conftest import whole
from tests.engine.harness import CONFIG, started
from tests.support.strategies import OnceLong
from tests.venues.test_paper import Clock

SYMBOLS: dict[Flavour, str] = {"spot": "BTC/USDT", "usdm": "BTC/USDT:USDT"}


@dataclass
class Binance:
    """A Binance emulator (spot or USD-M) over a paper exchange, served on a free port,
    and the bots run against it through ccxt; the state file outlives them."""

    flavour: Flavour
    tmp_path: Path
    url: str
    exchange: PaperVenue
    calls: dict[str, int]
    clock: Clock
    runners: list[Runner] = field(default_factory=list)

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.flavour]

    async def runner(self, strategy: object | None = None) -> Runner:
        """A new instance (a restart: recovery runs) on the same state and exchange."""
        from tests.venues.test_ccxt_adapter import adapter

        config = BotConfig.model_validate(
            {**CONFIG, "symbols": [self.symbol], "order": {"qty": "0.01"}}
        )
        venue = adapter(self.url, self.flavour, host_clock=self.clock)
        state_path = self.tmp_path / "state.db"
        runner = await started(config, state_path, venue, self.clock, strategy or OnceLong())
        self.runners.append(runner)
        return runner

    async def hours(self, runner: Runner, count: int) -> None:
        for _ in range(count):
            self.clock.now += timedelta(hours=1)
            await runner.tick()
            self.assert_never_both()

    async def until_flat(self, runner: Runner, hours: int = 24 * 30) -> None:
        for _ in range(hours):
            await self.hours(runner, 1)
            if not self.exchange.book.positions():
                await self.hours(runner, 1)  # the pass that learns the fill
                return
        pytest.fail("never closed")

    def resting(self) -> dict[OrderType, VenueOrder]:
        """The exchange's open orders, by type (a stop, a take-profit: one of each)."""
        found = self.exchange.book.open_orders("BTC/USDT")
        by_type = {o.type: o for o in found}
        assert len(by_type) == len(found), f"more than one of a kind rests: {found}"
        return by_type

    def exits(self) -> list:
        return [f for f in self.exchange.book.fills() if f[1].side is OrderSide.SELL]

    def assert_never_both(self) -> None:
        """At most one exit ever filled, and the book never went short (both legs)."""
        assert len(self.exits()) <= 1, f"both legs filled: {self.exits()}"
        assert all(p.side.value == "long" for p in self.exchange.book.positions())

    async def close(self) -> None:
        for runner in self.runners:
            await runner.venue.close()
            await runner.state.close()


@asynccontextmanager
async def binance_world(
    tmp_path: Path, flavour: Flavour, faults: str = ""
) -> AsyncIterator[Binance]:
    pytest.importorskip("ccxt", reason="needs ccxt: pip install 'botwarden[ccxt]'")
    from botwarden.venues.emulators.server import serving
    from tests.venues.test_ccxt_adapter import start

    clock = Clock()
    exchange, app = start(tmp_path, flavour, faults, clock)
    with serving(app) as url:
        world = Binance(flavour, tmp_path, url, exchange, app.state.calls, clock)
        try:
            yield world
        finally:
            await world.close()
    exchange.book.close()


@pytest.fixture(autouse=True)
def disarmed():
    yield
    CRASH.disarm()


def assert_protected_by_both(world: Binance, size: Decimal) -> dict[OrderType, VenueOrder]:
    legs = world.resting()
    assert set(legs) == {OrderType.STOP, OrderType.LIMIT}, legs
    assert legs[OrderType.STOP].qty == legs[OrderType.LIMIT].qty == size
    if world.flavour == "spot":  # one order list, as the exchange keeps it
        assert legs[OrderType.STOP].oco_with == legs[OrderType.LIMIT].client_order_id
    else:  # two reduce-only orders of the algo service, none in the book
        assert all(o.reduce_only for o in legs.values())
        assert world.calls["POST /fapi/v1/algoOrder"] >= 2
        assert world.calls["POST /fapi/v1/order"] == 1, "only the entry went to the book"
    return legs


async def closed_by(runner: Runner) -> Purpose:
    state = await whole(runner.state)
    [trade] = [e for e in state.events.values() if e.kind == "trade"]
    return state.intents[trade.data["closed_by"]].purpose


async def nothing_left_open(runner: Runner) -> None:
    left = [i for i in (await whole(runner.state)).intents.values() if not i.status.is_terminal]
    assert left == [], "the state knows the other leg went: nothing blocks a new entry"


@pytest.mark.parametrize("flavour", ["spot", "usdm"])
async def test_a_take_profit_reached_closes_it_and_the_stop_goes(
    tmp_path: Path, flavour: Flavour
) -> None:
    async with binance_world(tmp_path, flavour) as world:
        strategy = OnceLong(stop=Stop.percent(20), take_profit=TakeProfit.percent("0.3"))
        runner = await world.runner(strategy)
        await world.hours(runner, 1)
        legs = assert_protected_by_both(world, Decimal("0.01"))
        stop = legs[OrderType.STOP]
        await world.until_flat(runner)
        assert await closed_by(runner) is Purpose.TAKE_PROFIT
        assert world.resting() == {}, "the stop went with its position"
        gone = world.exchange.book.order(stop.client_order_id)
        if flavour == "spot":  # Binance expired it: the list's other leg filled
            assert (await runner.venue.order(stop.client_order_id, world.symbol)).state is (
                OrderState.EXPIRED
            )
        else:  # Binance leaves it resting: the bot canceled it at the fill
            assert gone.reason is None and world.calls["DELETE /fapi/v1/algoOrder"] == 1
        await nothing_left_open(runner)


@pytest.mark.parametrize("flavour", ["spot", "usdm"])
async def test_a_stop_that_fires_takes_the_take_profit_with_it(
    tmp_path: Path, flavour: Flavour
) -> None:
    async with binance_world(tmp_path, flavour) as world:
        strategy = OnceLong(stop=Stop.percent("0.3"), take_profit=TakeProfit.percent(20))
        runner = await world.runner(strategy)
        await world.hours(runner, 1)
        target = assert_protected_by_both(world, Decimal("0.01"))[OrderType.LIMIT]
        await world.until_flat(runner)
        assert await closed_by(runner) is Purpose.STOP
        assert world.resting() == {}, "the take-profit went with its position"
        found = await runner.venue.order(target.client_order_id, world.symbol)
        assert found.state is (OrderState.EXPIRED if flavour == "spot" else OrderState.CANCELED)
        await nothing_left_open(runner)


@pytest.mark.parametrize("flavour", ["spot", "usdm"])
async def test_both_legs_crossed_while_the_bot_is_away_fill_once(
    tmp_path: Path, flavour: Flavour
) -> None:
    """The bot is down for a month while the price crosses both legs: the exchange
    alone keeps the second from filling (an OCO's other leg expires; a reduce-only
    order finds nothing to reduce)."""
    async with binance_world(tmp_path, flavour) as world:
        strategy = OnceLong(stop=Stop.percent("0.2"), take_profit=TakeProfit.percent("0.2"))
        runner = await world.runner(strategy)
        await world.hours(runner, 1)
        legs = assert_protected_by_both(world, Decimal("0.01"))
        world.clock.now += timedelta(days=30)  # no tick: nobody is looking
        world.exchange.book.advance(world.clock.now)  # the exchange moved on meanwhile
        assert world.resting() == {} and world.exchange.book.positions() == []
        [(_, exit_fill)] = world.exits()
        crossed = {o.type: world.exchange.book.order(o.client_order_id) for o in legs.values()}
        assert sorted(o.state for o in crossed.values()) == [OrderState.CANCELED, OrderState.FILLED]
        await world.hours(runner, 1)  # the bot comes back: it learns, and nothing is left
        state = await whole(runner.state)
        [trade] = [e for e in state.events.values() if e.kind == "trade"]
        assert trade.data["closed_by"] == exit_fill.client_order_id, "the bot knows which"
        await nothing_left_open(runner)


@pytest.mark.parametrize("flavour", ["spot", "usdm"])
async def test_a_lost_answer_to_the_take_profit_is_resolved_not_sent_twice(
    tmp_path: Path, flavour: Flavour
) -> None:
    """The take-profit reaches the exchange and its answer is lost (a timeout after
    acceptance): the bot finds it by its client id; it is never sent again. On spot it
    went with its stop in one OCO submission (the entry is the first submission, the
    list the second); on USD-M it is the third (entry, stop, take-profit)."""
    nth = 2 if flavour == "spot" else 3
    async with binance_world(tmp_path, flavour, f"timeout_after:on=submit,nth={nth}") as world:
        strategy = OnceLong(stop=Stop.percent(20), take_profit=TakeProfit.percent(20))
        runner = await world.runner(strategy)
        await world.hours(runner, 1)
        state = await whole(runner.state)
        unknown = [i for i in state.intents.values() if i.status is IntentStatus.UNKNOWN]
        assert unknown, "the answer was lost"
        await world.hours(runner, 2)
        assert_protected_by_both(world, Decimal("0.01"))
        sent = "POST /api/v3/orderList/oco" if flavour == "spot" else "POST /fapi/v1/algoOrder"
        assert world.calls[sent] == (1 if flavour == "spot" else 2), "sent once, never again"
        every = world.exchange.book.all_orders("BTC/USDT")
        assert len(every) == 3, f"the entry and one of each leg, ever: {every}"
        state = await whole(runner.state)
        [position] = state.positions.values()
        for cid in (position.stop_client_order_id, position.take_profit_client_order_id):
            assert state.intents[cid].status is IntentStatus.ACCEPTED


CRASHES: dict[Flavour, list[str]] = {
    "spot": ["stop_stored_not_sent", "stop_sent_answer_not_stored"],
    "usdm": [
        "stop_stored_not_sent",
        "stop_sent_answer_not_stored",
        "take_profit_sent_answer_not_stored",
    ],
}
"""Between the legs: on spot both go in one call (its crash points are the stop's); on
USD-M both are written ahead together (at the stop's points) and sent at once, one call
each, each answer stored at its own point."""


@pytest.mark.parametrize(
    ("flavour", "point"), [(f, p) for f, points in CRASHES.items() for p in points]
)
async def test_a_kill_between_the_legs_is_recovered_with_both_once(
    tmp_path: Path, flavour: Flavour, point: str
) -> None:
    async with binance_world(tmp_path, flavour) as world:
        strategy = OnceLong(stop=Stop.percent(20), take_profit=TakeProfit.percent(20))
        first = await world.runner(strategy)
        CRASH.arm(point)
        with pytest.raises(SimulatedCrash):
            await world.hours(first, 1)
        CRASH.disarm()
        world.clock.now += timedelta(minutes=5)  # past the unknown-order grace
        again = await world.runner(OnceLong())
        await world.hours(again, 1)
        legs = assert_protected_by_both(world, Decimal("0.01"))
        every = world.exchange.book.all_orders("BTC/USDT")
        names = [o.client_order_id for o in every]
        assert len(names) == len(set(names)), f"an order sent twice: {names}"
        [position] = (await whole(again.state)).positions.values()
        assert legs[OrderType.STOP].client_order_id == position.stop_client_order_id
        assert legs[OrderType.LIMIT].client_order_id == position.take_profit_client_order_id
        entries = [o for o in every if o.type is OrderType.MARKET]
        assert len(entries) == 1, "recovery never enters again"


@pytest.mark.parametrize("flavour", ["spot", "usdm"])
async def test_a_trailing_stop_moves_and_its_take_profit_stays(
    tmp_path: Path, flavour: Flavour
) -> None:
    async with binance_world(tmp_path, flavour) as world:
        strategy = OnceLong(stop=Stop.percent(2, trailing=True), take_profit=TakeProfit.multiple(3))
        runner = await world.runner(strategy)
        await world.hours(runner, 1)
        target = assert_protected_by_both(world, Decimal("0.01"))[OrderType.LIMIT].limit_price
        stops_seen = set()
        for _ in range(48):
            await world.hours(runner, 1)
            if not world.exchange.book.positions():
                break
            legs = assert_protected_by_both(world, Decimal("0.01"))
            assert legs[OrderType.LIMIT].limit_price == target, "the take-profit never moves"
            stops_seen.add(legs[OrderType.STOP].stop_price)
        assert len(stops_seen) > 1, "the stop trailed"


async def test_a_leg_left_by_binance_after_the_bot_died_is_canceled_at_start(
    tmp_path: Path,
) -> None:
    """USD-M leaves the other leg resting once one closed the position: a stop that
    outlives its position would close the next one opened on that side. The bot died
    before it saw the fill; the restart cancels the leftover before anything else."""
    async with binance_world(tmp_path, "usdm") as world:
        strategy = OnceLong(stop=Stop.percent(20), take_profit=TakeProfit.percent("0.3"))
        first = await world.runner(strategy)
        await world.hours(first, 1)
        legs = assert_protected_by_both(world, Decimal("0.01"))
        await first.venue.close()  # killed
        world.clock.now += timedelta(days=2)
        world.exchange.book.advance(world.clock.now)
        assert world.exchange.book.positions() == [], "the take-profit closed it meanwhile"
        assert set(world.resting()) == {OrderType.STOP}, "Binance leaves the stop resting"
        await world.runner(OnceLong())  # the restart: recovery, no tick yet
        assert world.resting() == {}, "the leftover stop is canceled at start"
        stop = world.exchange.book.order(legs[OrderType.STOP].client_order_id)
        assert stop.state is OrderState.CANCELED and stop.reason is None, "by the bot"


class LongThenOut:
    """Enters long once, with a far stop and take-profit, and exits on the pass after."""

    name = "long-then-out"
    bars_needed = 1

    def __init__(self) -> None:
        self.entered = False

    def decide(self, symbol: str, bars: list[Bar], position: Position | None) -> Signal | None:
        if position is not None:
            return Signal.exit(symbol, bars[-1], "out")
        if self.entered:
            return None
        self.entered = True
        far = {"stop": Stop.percent(20), "take_profit": TakeProfit.percent(20)}
        return Signal.long(symbol, bars[-1], "in", **far)


async def test_the_bots_own_exit_goes_while_both_legs_rest(tmp_path: Path) -> None:
    """USD-M: a take-profit in the book would claim the position and Binance would
    refuse the bot's exit (-4118); in the algo service it leaves the exit free. Once
    out, both legs go."""
    async with binance_world(tmp_path, "usdm") as world:
        runner = await world.runner(LongThenOut())
        await world.hours(runner, 1)
        assert_protected_by_both(world, Decimal("0.01"))
        await world.hours(runner, 1)
        assert world.exchange.book.positions() == [], "the exit filled"
        assert await closed_by(runner) is Purpose.EXIT
        await world.hours(runner, 1)
        assert world.resting() == {}, "the stop and the take-profit went with it"


async def test_a_trailing_stop_alone_on_spot_moves_by_cancel_replace_never_bare(
    tmp_path: Path,
) -> None:
    """Spot locks the coins a stop sells: no second stop can rest beside it, and a
    cancel then a new stop would leave the coins bare between the two. Each move is
    one cancel-replace: the exchange's book shows every stop but the last replaced by
    the next, and no plain cancel was ever sent."""
    async with binance_world(tmp_path, "spot") as world:
        runner = await world.runner(OnceLong(stop=Stop.percent(2, trailing=True)))
        for _ in range(48):
            await world.hours(runner, 1)
            if not world.exchange.book.positions():
                break
            assert [o.type for o in world.exchange.book.open_orders()] == [OrderType.STOP]
        stops = [o for o in world.exchange.book.all_orders() if o.type is OrderType.STOP]
        assert len(stops) > 2, "the stop trailed"
        for old, new in pairwise(stops):
            assert (old.state, old.reason) == (
                OrderState.CANCELED,
                f"replaced by {new.client_order_id}",
            )
        assert world.calls["POST /api/v3/order/cancelReplace"] == len(stops) - 1
        assert world.calls["DELETE /api/v3/order"] == 0
