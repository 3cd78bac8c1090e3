"""A stop and a take-profit at Alpaca: the whole bot (a Runner, its state in SQLite)
trading through the real alpaca-py against the Alpaca emulator, where they rest as one
OCO. Checked on the paper book behind the emulator, never on the bot's word: whichever
leg fills, the other goes, and never do both fill; a lost answer and a killed bot find
the pair instead of sending another; a fractional position gets its stop alone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("alpaca", reason="needs alpaca-py: pip install 'botwarden[alpaca]'")

from botwarden.config import BotConfig
from botwarden.domain.models import Stop, TakeProfit
from botwarden.domain.orders import IntentStatus, OrderType, Purpose
from botwarden.engine.checks import check_promises
from botwarden.engine.runner import Runner
from botwarden.process.run import open_bot_venue
from botwarden.venues.emulators.alpaca import book_trade_id
from botwarden.venues.emulators.server import serving
from botwarden.venues.paper.venue import PaperVenue
from tests.conftest import whole
from tests.engine.harness import CONFIG, started
from tests.support.alpaca import KEY, SECRET, adapter, start
from tests.support.strategies import OnceLong
from tests.venues.test_paper import Clock


@dataclass
class AlpacaExchange:
    exchange: PaperVenue
    """The paper exchange behind the emulator: what really rests and filled."""
    clock: Clock
    url: str
    state_path: Path
    runners: list[Runner] = field(default_factory=list)

    @property
    def book(self) -> Any:
        return self.exchange.book

    async def runner(self, deciding: object, venue: Any = None, **overrides: object) -> Runner:
        """A new instance of the bot on the same state and exchange; its venue as its
        config makes it (through the factory, with its symbols), unless given."""
        section = {"type": "alpaca", "base_url": self.url, "data_url": self.url}
        keys = {"api_key": KEY, "secret_key": SECRET}
        config = BotConfig.model_validate({**CONFIG, "venue": {**section, **keys}, **overrides})
        venue = venue or open_bot_venue(config)
        runner = await started(config, self.state_path, venue, self.clock, deciding)
        self.runners.append(runner)
        return runner

    async def hours(self, runner: Runner, count: int) -> None:
        """Tick once an hour; after every tick, every promise holds on the book."""
        for _ in range(count):
            self.clock.now += timedelta(hours=1)
            await runner.tick()
            state = await whole(runner.state)
            violations = check_promises(
                state, self.book, runner.ctx.ids, book_trade_id=book_trade_id
            )
            assert violations == [], "\n".join(map(str, violations))
            assert never_both_legs_filled(self.book)

    async def until_flat(self, runner: Runner, hours: int = 24 * 30) -> None:
        for _ in range(hours):
            await self.hours(runner, 1)
            if not (await whole(runner.state)).positions:
                return
        pytest.fail("never closed")

    def resting(self) -> dict[OrderType, Any]:
        return {o.type: o for o in self.book.open_orders("SPY")}


def never_both_legs_filled(book: Any) -> bool:
    orders = {o.client_order_id: o for o in book.all_orders()}
    return not any(
        o.filled_qty > 0 and o.oco_with is not None and orders[o.oco_with].filled_qty > 0
        for o in orders.values()
    )


@asynccontextmanager
async def alpaca_exchange(tmp_path: Path, faults: str = "") -> AsyncIterator[AlpacaExchange]:
    clock = Clock()
    exchange, app = start(tmp_path, faults, clock)
    with serving(app) as url:
        world = AlpacaExchange(exchange, clock, url, tmp_path / "state.db")
        yield world
        for runner in world.runners:
            await runner.venue.close()
            await runner.state.close()
    exchange.book.close()


@contextmanager
def no_new_orders(world: AlpacaExchange) -> Iterator[None]:
    before = [(o.venue_order_id, o.client_order_id) for o in world.book.all_orders()]
    yield
    after = [(o.venue_order_id, o.client_order_id) for o in world.book.all_orders()]
    assert after == before, "nothing sent again"


async def test_a_take_profit_reached_closes_it_and_the_stop_goes(tmp_path: Path) -> None:
    async with alpaca_exchange(tmp_path) as world:
        strategy = OnceLong(stop=Stop.percent(20), take_profit=TakeProfit.percent("0.3"))
        runner = await world.runner(strategy)
        await world.hours(runner, 1)
        [position] = (await whole(runner.state)).positions.values()
        legs = world.resting()
        assert set(legs) == {OrderType.STOP, OrderType.LIMIT}, "one OCO: the take-profit, its leg"
        assert legs[OrderType.LIMIT].qty == legs[OrderType.STOP].qty == position.size
        assert legs[OrderType.STOP].oco_with == legs[OrderType.LIMIT].client_order_id
        await world.until_flat(runner)
        state = await whole(runner.state)
        [trade] = [e for e in state.events.values() if e.kind == "trade"]
        assert state.intents[trade.data["closed_by"]].purpose is Purpose.TAKE_PROFIT
        await world.hours(runner, 1)
        assert world.resting() == {}, "the stop went with the take-profit's fill"
        left = [i for i in (await whole(runner.state)).intents.values() if not i.status.is_terminal]
        assert left == [], "the bot knows its stop went: nothing blocks a new entry"


async def test_a_stop_that_fires_takes_the_take_profit_with_it(tmp_path: Path) -> None:
    async with alpaca_exchange(tmp_path) as world:
        strategy = OnceLong(stop=Stop.percent("0.3"), take_profit=TakeProfit.percent(20))
        runner = await world.runner(strategy)
        await world.until_flat(runner)
        await world.hours(runner, 1)
        state = await whole(runner.state)
        [trade] = [e for e in state.events.values() if e.kind == "trade"]
        closed_by = state.intents[trade.data["closed_by"]]
        assert closed_by.purpose is Purpose.STOP, "the stop leg's fill, named by the stop's id"
        assert world.resting() == {}, "the take-profit went with the stop's fill"
        left = [i for i in state.intents.values() if not i.status.is_terminal]
        assert left == []


async def test_a_lost_answer_to_the_pair_is_resolved_without_sending_it_again(
    tmp_path: Path,
) -> None:
    async with alpaca_exchange(tmp_path, "timeout_after:on=submit,nth=2") as world:
        strategy = OnceLong(stop=Stop.percent(20), take_profit=TakeProfit.percent(20))
        runner = await world.runner(strategy)
        await world.hours(runner, 3)
        assert len(world.book.all_orders()) == 3, "the entry and one OCO: sent once"
        position = next(iter((await whole(runner.state)).positions.values()))
        intents = (await whole(runner.state)).intents
        legs = [
            intents[position.stop_client_order_id],
            intents[position.take_profit_client_order_id],
        ]
        assert [i.status for i in legs] == [IntentStatus.ACCEPTED, IntentStatus.ACCEPTED]
        assert {o.client_order_id for o in world.book.open_orders()} == {
            i.client_order_id for i in legs
        }


async def test_a_killed_bot_finds_both_legs_when_it_comes_back(tmp_path: Path) -> None:
    async with alpaca_exchange(tmp_path) as world:
        strategy = OnceLong(stop=Stop.percent(20), take_profit=TakeProfit.percent(20))
        first = await world.runner(strategy)
        await world.hours(first, 1)
        held = next(iter((await whole(first.state)).positions.values()))
        await first.state.close()  # killed: nothing said, nothing saved beyond what was
        entered = OnceLong()
        entered.done = True  # it entered before it was killed
        with no_new_orders(world):
            second = await world.runner(entered)
            await world.hours(second, 2)
        again = next(iter((await whole(second.state)).positions.values()))
        assert (again.stop_client_order_id, again.take_profit_client_order_id) == (
            held.stop_client_order_id,
            held.take_profit_client_order_id,
        )


async def test_a_fractional_position_gets_its_stop_alone(tmp_path: Path) -> None:
    """Alpaca refuses an OCO for a fraction of a share ("fractional orders must be simple
    orders"): the stop goes alone, and the position is never bare for its take-profit."""
    async with alpaca_exchange(tmp_path) as world:
        fractional = adapter(world.url, fractional=True)
        strategy = OnceLong(stop=Stop.percent(20), take_profit=TakeProfit.percent(20))
        runner = await world.runner(strategy, fractional, order={"qty": "2.5"})
        await world.hours(runner, 1)
        [stop] = world.book.open_orders("SPY")
        assert (stop.type, stop.qty, stop.oco_with) == (OrderType.STOP, Decimal("2.5"), None)
        state = await whole(runner.state)
        refused = [e.message for e in state.events.values() if e.kind == "alert"]
        assert any("fractional orders must be simple orders" in m for m in refused)
        await world.hours(runner, 6)  # every promise held through every pass


async def test_a_stop_that_fired_while_the_bot_was_down_is_found_as_its_stop(
    tmp_path: Path,
) -> None:
    """Alpaca's fill names only the leg's order, whose client id Alpaca made up: the
    bot coming back must still know the fill as its stop's, and the take-profit gone."""
    async with alpaca_exchange(tmp_path) as world:
        strategy = OnceLong(stop=Stop.percent("0.3"), take_profit=TakeProfit.percent(20))
        first = await world.runner(strategy)
        await world.hours(first, 1)
        await first.state.close()  # killed
        while world.book.open_orders("SPY"):  # the stop fires while nobody looks
            world.clock.now += timedelta(hours=1)
            await world.exchange.positions()
        entered = OnceLong()
        entered.done = True  # it entered before it was killed
        second = await world.runner(entered)
        await world.hours(second, 1)
        state = await whole(second.state)
        assert state.positions == {}
        [trade] = [e for e in state.events.values() if e.kind == "trade"]
        assert state.intents[trade.data["closed_by"]].purpose is Purpose.STOP
        assert [i for i in state.intents.values() if not i.status.is_terminal] == []


async def test_a_refused_pair_is_not_tried_again_at_every_pass(tmp_path: Path) -> None:
    async with alpaca_exchange(tmp_path) as world:
        fractional = adapter(world.url, fractional=True)
        strategy = OnceLong(stop=Stop.percent(20), take_profit=TakeProfit.percent(20))
        runner = await world.runner(strategy, fractional, order={"qty": "2.5"})
        await world.hours(runner, 6)
        stops = [o for o in world.book.all_orders() if o.type is OrderType.STOP]
        assert len(stops) == 1, f"{len(stops)} stops sent for one position in 6 passes"
        state = await whole(runner.state)
        (position,) = state.positions.values()
        assert position.take_profit is None and position.stop_client_order_id
        told = [e.message for e in state.events.values() if "refused its stop and" in e.message]
        assert len(told) == 1 and "fractional" in told[0], told


async def test_a_trailing_stop_alone_moves_by_alpacas_replace_never_bare(tmp_path: Path) -> None:
    """Alpaca holds the shares a stop sells: no second stop can rest beside it. Each
    move of a trailing stop is one replace, which Alpaca shows as the old order
    `replaced` by the new: never a moment without a stop, and every promise holds."""
    from tests.support.alpaca import client

    async with alpaca_exchange(tmp_path) as world:
        runner = await world.runner(OnceLong(stop=Stop.percent(2, trailing=True)))
        for _ in range(48):
            await world.hours(runner, 1)
            if not world.book.positions():
                break
            assert list(world.resting()) == [OrderType.STOP]
        stops = [o for o in world.book.all_orders() if o.type is OrderType.STOP]
        assert len(stops) > 2, "the stop trailed"
        trading = client(world.url)
        for old, new in pairwise(stops):
            shown = trading.get_order_by_client_id(old.client_order_id)
            assert shown.status.value == "replaced"
            assert shown.replaced_by is not None
            assert (
                str(shown.replaced_by)
                == trading.get_order_by_client_id(new.client_order_id).id.__str__()
            )
