"""Which markets a look for fills reads where Binance lists trades one market at a
time: through the real ccxt over HTTP to the USD-M emulator (what each witness alone
sees), and the cursor's rules by themselves."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from botwarden.domain.models import OrderSide
from botwarden.domain.orders import OrderType
from botwarden.venues.base import OrderRequest
from botwarden.venues.market_fills import INCOME_PAGE, FillCursor, Witnessed
from tests.support.binance import CALM, binance_markets

MARKETS = list(CALM)


async def first_look(world) -> str:
    """A look at the fills of every market (none yet), as a bot's first: its cursor."""
    venue = world.adapter()
    await venue.connect()
    page = await venue.fills(since=world.clock() - timedelta(days=1))
    await venue.close()
    assert page.fills == []
    return page.cursor


async def look_again(world, cursor: str) -> list[str]:
    """A new process's look from `cursor`: the client order ids of the fills found."""
    world.calls.clear()
    venue = world.adapter()
    await venue.connect()
    page = await venue.fills(cursor=cursor)
    await venue.close()
    return [f.client_order_id for f in page.fills]


async def trade(world, market: str, side: OrderSide, client_order_id: str) -> None:
    await world.exchange.submit(
        OrderRequest(
            client_order_id=client_order_id,
            symbol=market,
            side=side,
            type=OrderType.MARKET,
            qty=Decimal(1),
        )
    )
    world.clock.now += timedelta(minutes=1)


async def test_a_round_trip_that_left_the_position_as_it_was_is_found_by_its_income(
    tmp_path: Path,
) -> None:
    """Bought and sold back between two looks: the positions show nothing, the income
    (a fee paid twice) names the market, and only that market is read."""
    async with binance_markets(tmp_path, "usdm", MARKETS, fee_rate="0.0004") as world:
        cursor = await first_look(world)
        await trade(world, CALM[2], OrderSide.BUY, "round-in")
        await trade(world, CALM[2], OrderSide.SELL, "round-out")
        assert await world.exchange.positions() == []
        assert await look_again(world, cursor) == ["round-in", "round-out"]
        assert world.calls["GET /fapi/v1/userTrades"] == 1


async def test_a_look_after_more_than_a_week_reads_every_market(tmp_path: Path) -> None:
    """Past the window the income is trusted for, every market is read."""
    async with binance_markets(tmp_path, "usdm", MARKETS, fee_rate="0.0004") as world:
        cursor = await first_look(world)
        world.clock.now += timedelta(days=8)
        await trade(world, CALM[0], OrderSide.BUY, "late")
        assert await look_again(world, cursor) == ["late"]
        assert world.calls["GET /fapi/v1/userTrades"] == len(MARKETS)
        assert world.calls.get("GET /fapi/v1/income", 0) == 0


KNOWN = FillCursor({"A": 10, "B": 20, "C": 0}, looked_at=1_000, held={"A": "1"})


def names(entries: list[tuple[str, str]]) -> list[dict]:
    return [{"symbol": market, "tradeId": trade} for market, trade in entries]


def test_a_market_is_read_where_something_may_have_happened_since_the_last_look() -> None:
    income = names([("A", "10"), ("B", "21"), ("X", "5")])
    witnessed = Witnessed(2_000, {"A": "1", "C": "-2"}, income)
    # A's entry is a trade seen already; B's is newer; C's position moved; D was never
    # read; X is not the bot's market.
    markets = witnessed.markets_to_read(["A", "B", "C", "D"], KNOWN, lambda m: m)
    assert markets == ["B", "C", "D"]


def test_an_entry_without_a_trade_id_or_no_income_to_trust_reads_the_market() -> None:
    untold = Witnessed(2_000, {"A": "1"}, names([("A", "")]))
    assert untold.markets_to_read(["A", "B"], KNOWN, lambda m: m) == ["A"]
    unknown = Witnessed(2_000, {"A": "1"}, None)  # (a full page, a window too long)
    assert unknown.markets_to_read(["A", "B"], KNOWN, lambda m: m) == ["A", "B"]


def test_a_full_page_of_income_cannot_vouch() -> None:
    from botwarden.venues.market_fills import vouching

    assert vouching([names([("A", "1")]), []]) == names([("A", "1")])
    assert vouching([names([("A", "1")] * INCOME_PAGE)]) is None


def test_the_cursor_reads_the_older_form_and_is_kept_when_nothing_moved() -> None:
    older = FillCursor.parse('{"A/USDT:USDT": 7}')
    assert older == FillCursor({"A/USDT:USDT": 7})
    assert FillCursor.parse(KNOWN.dump()) == KNOWN
    quiet = Witnessed(2_000, {"A": "1"}, [])
    assert quiet.cursor(KNOWN, dict(KNOWN.last_trade)) is None, "nothing to write"
    moved = quiet.cursor(KNOWN, {**KNOWN.last_trade, "B": 21})
    assert moved == FillCursor({"A": 10, "B": 21, "C": 0}, 2_000, {"A": "1"})
    a_day_on = Witnessed(1_000 + 86_400_000, {"A": "1"}, [])
    assert a_day_on.cursor(KNOWN, dict(KNOWN.last_trade)) is not None, "the look moves on"
