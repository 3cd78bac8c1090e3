"""An entry is as big as asked, rounded down to the lot, or refused with the reason; an
exit closes what was asked, or all of it when the rest would be dust."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from math import floor

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from botwarden.domain.markets import MarketRules, OrderRefused
from botwarden.domain.models import Side
from botwarden.domain.sizing import (
    FINEST_QTY,
    ExitQty,
    Size,
    SizeMode,
    SizeRefused,
    entry_qty,
    exit_qty,
)

D = Decimal
BTC = MarketRules(symbol="BTC/USDT", qty_step=D("0.001"), min_qty=D("0.001"), min_notional=D("5"))
ETH = MarketRules(
    symbol="ETH/USDT", qty_step=D("0.0001"), min_qty=D("0.0001"), min_notional=D("10")
)
SHARES = MarketRules(symbol="SPY", qty_step=D("1"), min_qty=D("1"))
FRACTIONAL = MarketRules(symbol="AAPL")
"""No lot step: fractional shares, the quantity as computed."""

RICH = D("1000000")


def enter(size: Size, rules: MarketRules = SHARES, **world: object) -> Decimal:
    """`entry_qty` in a world with plenty of equity and buying power unless told."""
    args: dict[str, object] = {
        "side": Side.LONG,
        "price": D("100"),
        "equity": RICH,
        "buying_power": RICH,
        "rules": rules,
        "stop_price": None,
    }
    args.update(world)
    return entry_qty(size, **args)  # type: ignore[arg-type]


# --- the four modes, worked by hand ---------------------------------------------------


def test_units_are_the_quantity_asked_rounded_down_to_the_lot_step() -> None:
    assert enter(Size.units(10)) == D("10")
    # 0.0129 BTC on a 0.001 lot: 12.9 lots -> 12 lots = 0.012, never 0.013.
    assert enter(Size.units("0.0129"), BTC, price=D("60000")) == D("0.012")
    assert enter(Size.units("0.0129999"), BTC, price=D("60000")) == D("0.012")


def test_notional_is_a_value_in_the_account_currency() -> None:
    # 1000 at 30 a share = 33.33 shares -> 33 whole shares (990 spent).
    assert enter(Size.notional(1000), price=D("30")) == D("33")
    # 1000 at 60000 = 0.01666 BTC -> 0.016 (960 spent).
    assert enter(Size.notional(1000), BTC, price=D("60000")) == D("0.016")
    # No lot step: 1000 / 400 = 2.5 shares exactly.
    assert enter(Size.notional(1000), FRACTIONAL, price=D("400")) == D("2.5")


def test_without_a_lot_step_a_quantity_goes_down_to_nine_decimal_places() -> None:
    # 1000 / 3 = 333.333...: to 9 places (Alpaca's fractional shares), rounded down.
    qty = enter(Size.notional(1000), FRACTIONAL, price=D("3"))
    assert qty == D("333.333333333") and qty * 3 <= 1000
    # 2000 / 3 = 666.666...: rounding to nearest would end in 7 (more than asked).
    assert enter(Size.notional(2000), FRACTIONAL, price=D("3")) == D("666.666666666")
    # Sums of such quantities stay exact in Decimal's default context: a fill of the
    # whole order never seems to exceed it.
    assert D(0) + qty == qty and qty + qty == 2 * qty


def test_equity_pct_is_a_share_of_the_accounts_equity() -> None:
    # 5% of 25000 = 1250; at 40 a share = 31.25 -> 31 shares (1240).
    assert enter(Size.equity_pct(5), price=D("40"), equity=D("25000")) == D("31")
    # 100% of 10000 = 10000; at 60000 = 0.1666 BTC -> 0.166 (9960).
    assert enter(Size.equity_pct(100), BTC, price=D("60000"), equity=D("10000")) == D("0.166")


def test_risk_pct_for_a_long_sizes_by_the_loss_at_the_stop_below() -> None:
    # 1% of 20000 = 200 at risk; entry 50, stop 48: 2 a share -> 100 shares.
    # At the stop: 100 x 2 = 200 lost, the 1% asked.
    qty = enter(Size.risk_pct(1), price=D("50"), stop_price=D("48"), equity=D("20000"))
    assert qty == D("100")


def test_risk_pct_for_a_short_sizes_by_the_loss_at_the_stop_above() -> None:
    # 1% of 20000 = 200 at risk; a short at 50 stopped at 53: 3 a share -> 66.67 -> 66.
    # At the stop: 66 x 3 = 198 lost, under the 200 asked.
    qty = enter(
        Size.risk_pct(1), side=Side.SHORT, price=D("50"), stop_price=D("53"), equity=D("20000")
    )
    assert qty == D("66")


def test_a_small_risk_pct_on_a_lot_stepped_coin() -> None:
    # 0.25% of 40000 = 100 at risk; entry 60000, stop 58800: 1200 per BTC
    # -> 100 / 1200 = 0.08333 BTC -> 0.083 (loss at the stop 99.6; value 4980).
    qty = enter(
        Size.risk_pct("0.25"), BTC, price=D("60000"), stop_price=D("58800"), equity=D("40000")
    )
    assert qty == D("0.083")


def test_shorts_are_sized_like_longs() -> None:
    for size in (Size.units(7), Size.notional(700), Size.equity_pct(7)):
        # 7 units; 700 / 100 = 7; 7% of 10000 = 700 / 100 = 7.
        long = enter(size, equity=D("10000"))
        short = enter(size, side=Side.SHORT, equity=D("10000"))
        assert long == short == D("7")


# --- refusals --------------------------------------------------------------------------


def test_a_size_that_rounds_to_nothing_is_refused_never_made_bigger() -> None:
    # 0.25% of 100 = 0.25 at risk, 1200 per BTC: 0.000208 BTC, under one lot of 0.001.
    with pytest.raises(SizeRefused) as refused:
        enter(Size.risk_pct("0.25"), BTC, price=D("60000"), stop_price=D("58800"), equity=D("100"))
    message = str(refused.value)
    assert message.startswith(
        "BTC/USDT: risk_pct 0.25% of the equity 100 is 0.25 at risk; the stop 58800 is 1200"
        " from the entry 60000, so ~0.0002083333333 units; quantity ~0.000208"
    )
    assert message.endswith("is below the minimum 0.001 (lot step 0.001)")
    assert isinstance(refused.value, OrderRefused)  # the engine's existing catch holds


def test_a_size_below_the_minimum_quantity_is_refused() -> None:
    stock = MarketRules(symbol="XYZ", qty_step=D("1"), min_qty=D("10"))
    # 900 at 100 = 9 shares; the venue takes 10 or more.
    with pytest.raises(SizeRefused, match=r"XYZ: notional 900 at the price 100 is 9 units;"):
        enter(Size.notional(900), stock)
    assert enter(Size.notional(1000), stock) == D("10")


def test_an_order_worth_less_than_the_minimum_value_is_refused() -> None:
    # 9 at 3000 = 0.003 ETH, worth 9: under the 10 minimum.
    with pytest.raises(
        SizeRefused, match=r"order value 9 is below the minimum 10 \(0\.003 at 3000\)"
    ):
        enter(Size.notional(9), ETH, price=D("3000"))
    # 10 at 3000 = 0.003333 -> 0.0033 on the lot, worth 9.90: the lot's rounding takes
    # it under the minimum; refused, not bumped up to 0.0034.
    with pytest.raises(
        SizeRefused, match=r"order value 9\.9 is below the minimum 10 \(0\.0033 at 3000\)"
    ):
        enter(Size.notional(10), ETH, price=D("3000"))
    # 10.5 at 3000 = 0.0035 ETH, worth 10.5.
    assert enter(Size.notional("10.5"), ETH, price=D("3000")) == D("0.0035")


def test_an_order_worth_more_than_the_buying_power_is_refused_by_how_much() -> None:
    # 50% of 20000 = 10000; at 40 = 250 shares worth 10000; 8000 can be paid.
    with pytest.raises(SizeRefused) as refused:
        enter(Size.equity_pct(50), price=D("40"), equity=D("20000"), buying_power=D("8000"))
    assert str(refused.value) == (
        "SPY: equity_pct 50% of the equity 20000 is 10000, at the price 40 250 units;"
        " the order's value 10000 (250 at 40) is more than the buying power 8000, by 2000"
    )
    # Exactly the buying power is payable; a cent less is not, and the order is not
    # shrunk to fit.
    assert enter(Size.units(250), price=D("40"), buying_power=D("10000")) == D("250")
    with pytest.raises(SizeRefused, match=r"by 0\.01$"):
        enter(Size.units(250), price=D("40"), buying_power=D("9999.99"))


def test_buying_power_applies_to_shorts_and_to_risk_sizing() -> None:
    # 2% of 50000 = 1000 at risk, 0.5 a share: 2000 shares worth 100000 at 50.
    with pytest.raises(SizeRefused, match="more than the buying power 60000, by 40000"):
        enter(
            Size.risk_pct(2),
            side=Side.SHORT,
            price=D("50"),
            stop_price=D("50.5"),
            equity=D("50000"),
            buying_power=D("60000"),
        )


def test_risk_pct_without_a_stop_is_refused_saying_so() -> None:
    with pytest.raises(
        SizeRefused,
        match=r"SPY: risk_pct 1% sizes by the loss at the stop, and the entry has no stop",
    ):
        enter(Size.risk_pct(1))


@pytest.mark.parametrize(
    ("side", "stop", "words"),
    [
        (Side.LONG, "101", "a long's stop must be below the entry: the stop 101 is on the wrong"),
        (Side.LONG, "100", "a long's stop must be below the entry: the stop 100 is at the entry"),
        (Side.SHORT, "99", "a short's stop must be above the entry: the stop 99 is on the wrong"),
        (Side.SHORT, "100", "a short's stop must be above the entry: the stop 100 is at the"),
    ],
)
def test_a_stop_at_or_past_the_entry_is_refused(side: Side, stop: str, words: str) -> None:
    with pytest.raises(SizeRefused, match=words):
        enter(Size.risk_pct(1), side=side, stop_price=D(stop))
    # Whatever the mode: such a stop would trigger at once or not protect.
    with pytest.raises(SizeRefused, match=words):
        enter(Size.units(1), side=side, stop_price=D(stop))


def test_a_percentage_of_no_equity_is_refused() -> None:
    for size in (Size.equity_pct(10), Size.risk_pct(1)):
        with pytest.raises(SizeRefused, match="of the equity -5: there is nothing to size"):
            enter(size, equity=D("-5"), stop_price=D("90"))
    assert enter(Size.units(1), equity=D("0")) == D("1")  # units need no equity


def test_a_price_of_zero_is_a_bug_not_a_refusal() -> None:
    with pytest.raises(ValueError, match="SPY: the entry price must be above 0, not 0"):
        enter(Size.units(1), price=D("0"))


# --- writing a size ----------------------------------------------------------------------


def test_sizes_read_well_and_keep_their_numbers_exact() -> None:
    assert Size.units(10) == Size(mode=SizeMode.UNITS, amount=D("10"))
    assert Size.notional(0.1).amount == D("0.1")  # a float as it prints, not its binary
    assert Size.equity_pct(100).amount == D("100")
    assert Size.risk_pct(0.25).amount == D("0.25")
    assert str(Size.risk_pct("0.25")) == "risk_pct 0.25%"
    assert str(Size.units("1.50")) == "units 1.50"
    # A size carried in a stored signal comes back as it went.
    size = Size.risk_pct("0.5")
    assert Size.model_validate_json(size.model_dump_json()) == size


@pytest.mark.parametrize(
    ("make", "value", "message"),
    [
        (Size.units, 0, "qty: 0 must be above 0"),
        (Size.notional, -5, "notional: -5 must be above 0"),
        (Size.equity_pct, 0, "equity_pct: 0 is not a percentage of equity"),
        (Size.equity_pct, "100.01", "equity_pct: 100.01 is not a percentage of equity"),
        (Size.risk_pct, 150, "risk_pct: 150 is not a percentage of equity"),
        (Size.units, float("nan"), "qty: nan is not a finite number"),
        (Size.notional, "Infinity", "notional: Infinity is not a finite number"),
        (Size.units, True, "qty: True is not a number"),
        (Size.units, "ten", "qty: 'ten' is not a number"),
    ],
)
def test_a_bad_size_is_refused_naming_the_field(make: object, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(value)  # type: ignore[operator]


def test_a_size_built_directly_is_checked_too() -> None:
    with pytest.raises(ValidationError, match="equity_pct: 101 is not a percentage"):
        Size(mode=SizeMode.EQUITY_PCT, amount=D("101"))
    with pytest.raises(ValidationError):
        Size(mode=SizeMode.UNITS, amount=D("0"))


@pytest.mark.parametrize(
    ("mapping", "size"),
    [
        ({"qty": 1}, Size.units(1)),
        ({"notional": 500}, Size.notional(500)),
        ({"equity_pct": 10}, Size.equity_pct(10)),
        ({"risk_pct": "0.5"}, Size.risk_pct("0.5")),
    ],
)
def test_a_size_is_read_from_a_config_mapping(mapping: dict[str, object], size: Size) -> None:
    assert Size.from_config(mapping) == size
    assert Size.from_config(size.as_config()) == size


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({}, "give exactly one of qty, notional, equity_pct, risk_pct; got none"),
        ({"qty": 1, "notional": 5}, "give exactly one of .*; got qty, notional"),
        ({"units": 1}, r"units: not a way to size an entry; .* \(units are written qty\)"),
        ({"qty": 1, "risk": 1}, "risk: not a way to size an entry"),
        ({"risk_pct": 0}, "risk_pct: 0 is not a percentage of equity"),
        ({"qty": "1x"}, "qty: '1x' is not a number"),
    ],
)
def test_a_bad_config_size_names_the_field(mapping: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Size.from_config(mapping)


# --- exits -------------------------------------------------------------------------------


def test_a_fraction_of_a_position_is_rounded_down_to_the_lot() -> None:
    # Half of 0.0105 = 0.00525 -> 0.005; 0.0055 stays, above the 0.001 minimum.
    assert exit_qty(D("0.0105"), fraction=D("0.5"), rules=BTC) == ExitQty(D("0.005"), full=False)
    # A third of 0.01 = 0.00333 -> 0.003.
    assert exit_qty(D("0.01"), fraction=D(1) / D(3), rules=BTC).qty == D("0.003")
    # 95% of 10 shares = 9.5 -> 9; 1 share stays.
    assert exit_qty(D("10"), fraction=D("0.95"), rules=SHARES) == ExitQty(D("9"), full=False)


def test_all_of_a_position_is_closed_as_held() -> None:
    # Not rounded to the lot: 0.01049 on a 0.001 lot closes 0.01049, leaving no dust.
    assert exit_qty(D("0.01049"), fraction=D("1"), rules=BTC) == ExitQty(D("0.01049"), full=True)
    assert exit_qty(D("3"), qty=D("3"), rules=SHARES) == ExitQty(D("3"), full=True)


def test_a_partial_exit_leaving_dust_closes_the_whole_position_and_says_so() -> None:
    # 0.01 of 0.0105 would leave 0.0005 BTC, below the 0.001 the venue will close.
    result = exit_qty(D("0.0105"), qty=D("0.01"), rules=BTC)
    assert result.qty == D("0.0105")
    assert result.full
    assert result.why == (
        "BTC/USDT: closing all 0.0105 instead of 0.01 (asked 0.01 of the position 0.0105):"
        " the 0.0005 left would be below the minimum quantity 0.001, and the venue would"
        " refuse to close it later"
    )
    # 90% of 0.0015 = 0.00135 -> 0.001, leaving 0.0005: the same.
    assert exit_qty(D("0.0015"), fraction=D("0.9"), rules=BTC).qty == D("0.0015")


def test_dust_by_value_counts_when_the_price_is_known() -> None:
    # 0.0075 of 0.01 ETH leaves 0.0025, worth 7.5 at 3000: under the 10 minimum.
    widened = exit_qty(D("0.01"), qty=D("0.0075"), rules=ETH, price=D("3000"))
    assert widened.full
    assert widened.qty == D("0.01")
    assert "worth 7.5 at 3000, below the minimum value 10" in (widened.why or "")
    # Without a price only the quantity rule is known: the part is closed as asked.
    assert exit_qty(D("0.01"), qty=D("0.0075"), rules=ETH) == ExitQty(D("0.0075"), full=False)


@pytest.mark.parametrize(
    ("ask", "message"),
    [
        ({"qty": D("0.02")}, "an exit of 0.02 is not part of the position of 0.0105"),
        ({"qty": D("0")}, "an exit of 0 is not part of the position"),
        ({"fraction": D("0")}, "fraction must be above 0 and at most 1 .*, not 0"),
        ({"fraction": D("1.5")}, "fraction must be above 0 and at most 1 .*, not 1.5"),
        ({"fraction": D("-0.5")}, "fraction must be above 0 and at most 1 .*, not -0.5"),
        (
            {"fraction": D("0.05")},
            r"a partial exit of 0.05 of the position 0.0105 is too small: quantity 0.000525"
            r" is below the minimum 0.001 \(lot step 0.001\); close more, or all of it",
        ),
        ({"qty": D("0.0009")}, "a partial exit of 0.0009 of the position 0.0105 is too small"),
    ],
)
def test_an_exit_that_cannot_be_met_is_refused(ask: dict[str, Decimal], message: str) -> None:
    with pytest.raises(SizeRefused, match=message):
        exit_qty(D("0.0105"), rules=BTC, **ask)  # type: ignore[arg-type]


def test_a_partial_exit_worth_less_than_the_minimum_value_is_refused() -> None:
    # 0.003 ETH at 3000 = 9: the venue takes 10 or more.
    with pytest.raises(
        SizeRefused, match=r"order value 9 is below the minimum 10 \(0\.003 at 3000\)"
    ):
        exit_qty(D("0.01"), qty=D("0.003"), rules=ETH, price=D("3000"))


def test_an_exit_names_one_amount() -> None:
    with pytest.raises(ValueError, match="give exactly one of fraction or qty"):
        exit_qty(D("1"), rules=SHARES)
    with pytest.raises(ValueError, match="give exactly one of fraction or qty"):
        exit_qty(D("1"), fraction=D("0.5"), qty=D("1"), rules=SHARES)


# --- properties ----------------------------------------------------------------------------

STEPS = [D("1"), D("0.5"), D("0.05"), D("0.001"), D("0.003"), D("0.00001")]
MONEY = st.decimals(min_value=D("0.01"), max_value=D("10000000"), places=2)
PRICES = st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=4)


@st.composite
def markets(draw: st.DrawFn) -> MarketRules:
    step = draw(st.sampled_from(STEPS))
    return MarketRules(
        symbol="ANY",
        qty_step=step,
        min_qty=draw(st.sampled_from([None, step, step * 10])),
        min_notional=draw(st.sampled_from([None, D("1"), D("10")])),
    )


@st.composite
def sizes(draw: st.DrawFn) -> Size:
    mode = draw(st.sampled_from(list(SizeMode)))
    if mode.is_pct:
        return Size(mode=mode, amount=draw(st.decimals(D("0.01"), D("100"), places=2)))
    most = D("1000") if mode is SizeMode.UNITS else D("1000000")
    return Size(mode=mode, amount=draw(st.decimals(D("0.0001"), most, places=4)))


def asked(size: Size, price: Decimal, stop: Decimal, equity: Decimal) -> Fraction:
    """The quantity each mode asks for, in exact rational arithmetic: the spec."""
    amount, price_, equity_ = Fraction(size.amount), Fraction(price), Fraction(equity)
    return {
        SizeMode.UNITS: amount,
        SizeMode.NOTIONAL: amount / price_,
        SizeMode.EQUITY_PCT: equity_ * amount / 100 / price_,
        SizeMode.RISK_PCT: equity_ * amount / 100 / abs(price_ - Fraction(stop)),
    }[size.mode]


@given(
    size=sizes(),
    rules=markets(),
    side=st.sampled_from(list(Side)),
    price=PRICES,
    stop_distance=st.decimals(min_value=D("0.0001"), max_value=D("0.99"), places=4),
    equity=MONEY,
    buying_power=MONEY,
)
@example(  # 2 at risk / 3 a unit = 0.666...: half-even would end in 7, past the risk
    size=Size.risk_pct(1),
    rules=MarketRules(symbol="ANY"),
    side=Side.LONG,
    price=D("6"),
    stop_distance=D("0.5"),
    equity=D("200"),
    buying_power=D("10000"),
)
def test_an_entry_never_exceeds_the_buying_power_nor_the_risk_and_sits_on_the_lot(
    size: Size,
    rules: MarketRules,
    side: Side,
    price: Decimal,
    stop_distance: Decimal,
    equity: Decimal,
    buying_power: Decimal,
) -> None:
    # The stop is a fraction of the price away, on the protective side.
    offset = price * stop_distance
    stop = price - offset if side is Side.LONG else price + offset
    want = asked(size, price, stop, equity)
    step = rules.qty_step or FINEST_QTY
    best = Fraction(floor(want / Fraction(step)) * Fraction(step))
    value = best * Fraction(price)
    fits = (
        best > 0
        and (rules.min_qty is None or best >= Fraction(rules.min_qty))
        and (rules.min_notional is None or value >= Fraction(rules.min_notional))
        and value <= Fraction(buying_power)
    )
    try:
        qty = entry_qty(
            size,
            side=side,
            price=price,
            equity=equity,
            buying_power=buying_power,
            rules=rules,
            stop_price=stop,
        )
    except SizeRefused:
        assert not fits, "refused a size the market and the account allow"
        return
    assert fits, "sent a size the market or the account refuses"
    exact = Fraction(qty)
    assert exact * Fraction(price) <= Fraction(buying_power)
    assert exact <= want
    if size.mode is SizeMode.RISK_PCT:
        at_risk = Fraction(equity) * Fraction(size.amount) / 100
        assert exact * abs(Fraction(price) - Fraction(stop)) <= at_risk
    assert qty % step == 0
    assert exact == best  # at most one lot under what was asked, never a lot less


@given(
    # Small positions too: there a part often leaves less than the minimum.
    lots=st.integers(min_value=1, max_value=30) | st.integers(min_value=1, max_value=100000),
    fraction=st.decimals(min_value=D("0.0001"), max_value=D("1"), places=4),
    rules=markets(),
)
@example(  # 0.9 of 15 lots = 13.5 -> 13, leaving 2 lots under a 10-lot minimum
    lots=15, fraction=D("0.9"), rules=MarketRules(symbol="ANY", qty_step=D("1"), min_qty=D("10"))
)
def test_an_exit_closes_at_most_what_was_asked_or_all_and_never_leaves_dust(
    lots: int, fraction: Decimal, rules: MarketRules
) -> None:
    step = rules.qty_step
    assert step is not None
    smallest = max(rules.min_qty or step, step)  # the least quantity the venue takes
    position = lots * step
    part = floor(Fraction(position) * Fraction(fraction) / Fraction(step)) * step
    try:
        result = exit_qty(position, fraction=fraction, rules=rules)
    except SizeRefused:
        assert part < smallest, "refused a part the venue takes"
        return
    if result.full:
        assert result.qty == position
        if fraction < 1:  # widened, only because the rest would be dust
            assert position - part < smallest
            assert result.why is not None
    else:
        assert result.qty == part
        assert result.qty <= position * fraction
        assert result.qty % step == 0
        assert position - result.qty >= smallest
