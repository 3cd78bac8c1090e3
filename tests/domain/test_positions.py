"""What fills do to a position, and the trades they close: PnL net of every fee."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from botwarden.domain.models import Fill, OrderSide, Position, Side
from botwarden.domain.positions import Trade, apply_fill

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def fill(n: int, side: str, qty: str, price: str, fee: str = "0") -> Fill:
    return Fill(
        trade_id=f"T{n}",
        client_order_id=f"c{n}",
        symbol="SPY",
        side=OrderSide(side),
        qty=Decimal(qty),
        price=Decimal(price),
        fee=Decimal(fee),
        time=T0 + timedelta(minutes=n),
    )


def replay(fills: list[Fill]) -> tuple[Position | None, list[Trade]]:
    position, trades = None, []
    for each in fills:
        outcome = apply_fill(position, each, bot_id="bot", new_position_id=f"pos-{each.trade_id}")
        position = outcome.position
        if outcome.trade is not None:
            trades.append(outcome.trade)
    return position, trades


def test_a_trade_pays_its_share_of_the_entry_fees_and_its_exit_fee() -> None:
    position, trades = replay(
        [
            fill(1, "buy", "10", "100", fee="1.0"),
            fill(2, "sell", "4", "110", fee="0.4"),  # a part: 4/10 of the entry's fee
        ]
    )
    [part] = trades
    assert part.fees == Decimal("0.8") and part.pnl == Decimal("40") - Decimal("0.8")
    assert part.exit_fill == "T2" and part.position_pnl is None
    assert position is not None and position.entry_fees == Decimal("0.6")
    rest = apply_fill(position, fill(3, "sell", "6", "90", fee="0.6"), bot_id="bot",
                      new_position_id="pos-T3").trade  # fmt: skip
    assert rest is not None
    assert rest.fees == Decimal("1.2") and rest.pnl == Decimal("-60") - Decimal("1.2")
    assert rest.position_pnl == part.pnl + rest.pnl


def test_a_fill_through_the_position_shares_its_fee_between_the_two() -> None:
    position, [closed] = replay(
        [fill(1, "buy", "2", "100", fee="0.2"), fill(2, "sell", "5", "101", fee="0.5")]
    )
    assert closed.qty == 2 and closed.fees == Decimal("0.2") + Decimal("0.2")
    assert position is not None and position.side is Side.SHORT and position.size == 3
    assert position.entry_fees == Decimal("0.3"), "the rest of the fill's fee opened it"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["buy", "sell"]),
            st.integers(min_value=1, max_value=20),
            st.integers(min_value=90, max_value=110),
            st.integers(min_value=0, max_value=30),
        ),
        max_size=25,
    )
)
def test_the_trades_add_up_to_what_the_fills_paid_and_received(
    moves: list[tuple[str, int, int, int]],
) -> None:
    """Flat at the end, the trades' PnL is the cash the fills moved, less every fee:
    nothing is counted twice or lost between the parts and the flips (to Decimal's 28
    digits: an average entry price of thirds is not exact)."""
    fills = [
        fill(n, side, str(q), str(p), f"0.{fee:02d}") for n, (side, q, p, fee) in enumerate(moves)
    ]
    held = sum((f.qty if f.side is OrderSide.BUY else -f.qty) for f in fills)
    if held:  # end flat: the last fill takes out what is left
        fills.append(fill(len(fills), "sell" if held > 0 else "buy", str(abs(held)), "100", "0.07"))
    position, trades = replay(fills)
    assert position is None
    cash = sum(
        (f.qty * f.price * (1 if f.side is OrderSide.SELL else -1) - f.fee for f in fills),
        Decimal(0),
    )
    paid = sum((f.fee for f in fills), Decimal(0))
    assert abs(sum((t.pnl for t in trades), Decimal(0)) - cash) < Decimal("1e-18")
    assert abs(sum((t.fees for t in trades), Decimal(0)) - paid) < Decimal("1e-18")
