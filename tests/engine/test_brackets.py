"""A stop and a take-profit resting at once, checked on the exchange's book: as one
one-cancels-other pair where the venue does not honour reduce-only orders, as two
reduce-only orders where it does. Whichever fills, the other goes; a trailing stop
moves without dragging the take-profit; a venue that can hold neither is refused.
(At Alpaca, through its emulator: test_alpaca_brackets.py.)"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.config import BotConfig
from botwarden.domain.models import Stop, TakeProfit
from botwarden.domain.orders import OrderType, Purpose
from botwarden.engine.runner import Runner
from botwarden.errors import ConfigError
from botwarden.process.run import open_bot_venue
from botwarden.state.manager import StateManager, utc_now
from botwarden.state.memory import MemoryStore
from botwarden.venues.base import pair_take_profit_id
from botwarden.venues.paper.faults import FaultPlan
from botwarden.venues.paper.venue import PaperVenue
from tests.conftest import whole
from tests.engine.harness import CONFIG, Exchange, started
from tests.support.strategies import OnceLong


def resting(exchange: Exchange) -> list:
    return list(exchange.book.open_orders("SPY"))


async def until_flat(exchange: Exchange, runner: Runner, hours: int = 24 * 30) -> None:
    for _ in range(hours):
        await exchange.hours(runner, 1)  # every promise checked after each pass
        if not (await whole(runner.state)).positions:
            return
    pytest.fail("never closed")


@pytest.mark.parametrize("reduce_only", [False, True])
async def test_a_take_profit_reached_closes_it_and_the_stop_goes(
    tmp_path: Path, reduce_only: bool
) -> None:
    exchange = Exchange(tmp_path, reduce_only=reduce_only)
    strategy = OnceLong(stop=Stop.percent(20), take_profit=TakeProfit.percent("0.3"))
    runner = await exchange.runner(strategy)
    await exchange.hours(runner, 1)
    [position] = (await whole(runner.state)).positions.values()
    legs = {o.type: o for o in resting(exchange)}
    assert set(legs) == {OrderType.STOP, OrderType.LIMIT}
    assert legs[OrderType.LIMIT].qty == legs[OrderType.STOP].qty == position.size
    if not reduce_only:
        assert legs[OrderType.STOP].oco_with == legs[OrderType.LIMIT].client_order_id
        named = pair_take_profit_id(legs[OrderType.STOP].client_order_id)
        assert legs[OrderType.LIMIT].client_order_id == named, "an adapter can tell the legs"
    await until_flat(exchange, runner)
    state = await whole(runner.state)
    [trade] = [e for e in state.events.values() if e.kind == "trade"]
    closed_by = state.intents[trade.data["closed_by"]]
    assert closed_by.purpose is Purpose.TAKE_PROFIT and Decimal(trade.data["pnl"]) > 0
    await exchange.hours(runner, 1)
    assert resting(exchange) == [], "the stop went with its position"
    left = [i for i in (await whole(runner.state)).intents.values() if not i.status.is_terminal]
    assert left == [], "the state knows the other leg went: nothing blocks a new entry"
    await runner.state.close()
    exchange.book.close()


@pytest.mark.parametrize("reduce_only", [False, True])
async def test_a_stop_that_fires_takes_the_take_profit_with_it(
    tmp_path: Path, reduce_only: bool
) -> None:
    exchange = Exchange(tmp_path, reduce_only=reduce_only)
    strategy = OnceLong(stop=Stop.percent("0.3"), take_profit=TakeProfit.percent(20))
    runner = await exchange.runner(strategy)
    await until_flat(exchange, runner)
    await exchange.hours(runner, 1)
    state = await whole(runner.state)
    [trade] = [e for e in state.events.values() if e.kind == "trade"]
    assert state.intents[trade.data["closed_by"]].purpose is Purpose.STOP
    assert resting(exchange) == [], "the take-profit went with its position"
    left = [i for i in state.intents.values() if not i.status.is_terminal]
    assert left == [], "the state knows the other leg went: nothing blocks a new entry"
    await runner.state.close()
    exchange.book.close()


async def test_a_trailing_stop_moves_and_its_take_profit_stays(exchange: Exchange) -> None:
    strategy = OnceLong(stop=Stop.percent(2, trailing=True), take_profit=TakeProfit.multiple(3))
    runner = await exchange.runner(strategy)
    await exchange.hours(runner, 1)
    [position] = (await whole(runner.state)).positions.values()
    target = position.take_profit
    expected = position.entry_price + 3 * (position.entry_price - position.stop_price)
    assert abs(target - expected) <= Decimal("0.01"), "3R from the entry, the stop then"
    stops_seen = set()
    for _ in range(48):
        await exchange.hours(runner, 1)
        held = (await whole(runner.state)).positions
        if not held:
            break
        legs = {o.type: o for o in resting(exchange)}
        assert legs[OrderType.LIMIT].limit_price == target, "the take-profit never moves"
        stops_seen.add(legs[OrderType.STOP].stop_price)
    assert len(stops_seen) > 1, "the stop trailed"
    await runner.state.close()


async def test_the_configs_take_profit_covers_every_position(exchange: Exchange) -> None:
    runner = await exchange.runner(OnceLong(), take_profit={"percent": 5})
    await exchange.hours(runner, 1)
    [position] = (await whole(runner.state)).positions.values()
    [limit] = [o for o in resting(exchange) if o.type is OrderType.LIMIT]
    assert limit.limit_price == position.take_profit
    assert abs(position.take_profit / position.entry_price - Decimal("1.05")) < Decimal("0.0001")
    await runner.state.close()


async def test_a_take_profit_on_the_losing_side_is_skipped_saying_why(exchange: Exchange) -> None:
    runner = await exchange.runner(OnceLong(take_profit=TakeProfit.price(1)))
    await exchange.hours(runner, 1)
    state = await whole(runner.state)
    assert not state.positions and exchange.book.all_orders() == []
    [skipped] = [e.message for e in state.events.values() if e.kind == "signal"]
    assert "a long's take-profit must be above the entry" in skipped
    await runner.state.close()


@pytest.mark.parametrize(
    ("symbols", "refused"),
    [(["BTC/USD"], True), (["SPY", "ETH/USD"], True), (["SPY"], False)],
)
def test_a_take_profit_on_alpaca_crypto_is_refused_with_the_config(
    symbols: list[str], refused: bool
) -> None:
    """Alpaca's crypto orders are simple only (no OCO) and have no reduce-only either:
    a coin's take-profit beside its stop could sell twice. Its stocks hold the pair as
    one OCO."""
    section = {
        "type": "alpaca",
        "api_key": "k",
        "secret_key": "s",
        "base_url": "http://127.0.0.1:9",
    }
    config = BotConfig.model_validate(
        {**CONFIG, "symbols": symbols, "venue": section, "take_profit": {"multiple": 2}}
    )
    venue = open_bot_venue(config)  # as `botwarden run` makes it, with the bot's symbols
    state = StateManager("golden", MemoryStore())
    if not refused:
        Runner(config.bot_settings(), state, venue, utc_now)
        return
    with pytest.raises(ConfigError) as error:
        Runner(config.bot_settings(), state, venue, utc_now)
    assert str(error.value).startswith(
        "config: take_profit: alpaca cannot hold a take-profit beside a stop"
    )
    assert "\n" not in str(error.value)


def test_the_configs_take_profit_is_relative_to_each_position() -> None:
    with pytest.raises(ValueError, match="a price is one position's take-profit"):
        BotConfig.model_validate({**CONFIG, "take_profit": {"price": 100}})


async def test_a_take_profit_filled_while_its_pair_is_moved_sends_nothing_more(
    tmp_path: Path,
) -> None:
    """A pass reads the pair open, then (an answer half an hour late) the price takes
    the take-profit: the trailing stop's pair is not placed again before the fills are
    read. Where the venue does not honour reduce-only orders, a new take-profit for
    the position just closed, below the price, would fill at once and open another
    position, the other way (promise I1)."""
    exchange = Exchange(tmp_path, reduce_only=False)

    async def answered_late(seconds: float) -> None:
        exchange.clock.now += timedelta(seconds=seconds)

    late = FaultPlan.parse("slow:on=fills,p=1,seconds=1800")
    venue = PaperVenue(exchange.book, exchange.clock, late, sleep=answered_late)
    strategy = OnceLong(stop=Stop.percent("0.5", trailing=True), take_profit=TakeProfit.percent(1))
    runner = await started(BotConfig.model_validate(CONFIG), exchange.state_path, venue,
                           exchange.clock, strategy)  # fmt: skip
    await until_flat(exchange, runner)
    await exchange.hours(runner, 3)
    [(_, closing)] = [(s, f) for s, f in exchange.book.fills() if f.client_order_id.endswith("t")]
    sent_after = [o for o in exchange.book.all_orders() if o.created_at >= closing.time]
    assert sent_after == [], "an order sent for a position its take-profit had closed"
    assert exchange.book.positions() == []
    await runner.state.close()
    exchange.book.close()


class TakenInPartAsItIsCanceled(PaperVenue):
    """The first take-profit the bot cancels has `part` of it filled at the venue a
    moment before the cancel lands: the cancel is answered CANCELED with a fill the
    bot has not read yet."""

    def __init__(self, *args: object, part: Decimal) -> None:
        super().__init__(*args)
        self.part, self.taken = part, False

    async def cancel(self, client_order_id: str, symbol: str):
        order = self.book.order(client_order_id)
        if not self.taken and order.type is OrderType.LIMIT:
            self.taken = True
            with self.book._transaction():
                self.book._fill(order, self.part, order.limit_price, self.clock())
        return await super().cancel(client_order_id, symbol)


async def test_a_take_profit_filled_in_part_as_its_pair_moves_is_replaced_for_the_rest(
    tmp_path: Path,
) -> None:
    """Where the venue does not honour reduce-only orders, the trailing stop's new
    pair covers what is left once the fills are read, never the size before the
    take-profit's part: a pair for more than is held would sell it short (I1)."""
    exchange = Exchange(tmp_path, reduce_only=False)
    venue = TakenInPartAsItIsCanceled(exchange.book, exchange.clock, part=Decimal(4))
    strategy = OnceLong(stop=Stop.percent("0.5", trailing=True), take_profit=TakeProfit.percent(5))
    runner = await started(BotConfig.model_validate(CONFIG), exchange.state_path, venue,
                           exchange.clock, strategy)  # fmt: skip
    for _ in range(48):
        await exchange.hours(runner, 1)  # every promise checked after each pass
        if venue.taken:
            break
    assert venue.taken, "the trailing stop never moved its pair"
    await exchange.hours(runner, 2)
    [held] = exchange.book.positions()
    assert held.qty == 6, "10 bought, 4 taken by the take-profit"
    legs = resting(exchange)
    assert len(legs) == 2 and {leg.qty for leg in legs} == {Decimal(6)}, legs
    [position] = (await whole(runner.state)).positions.values()
    assert position.size == 6
    await runner.state.close()
    exchange.book.close()
