"""The order intent state machine: every (status, event) pair, checked against the table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from botwarden.domain.orders import (
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    IntentEvent,
    IntentStatus,
    OrderIntent,
    next_status,
)

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def intent(**changes: object) -> OrderIntent:
    fields: dict[str, object] = {
        "client_order_id": "bot-1-000001",
        "symbol": "SPY",
        "side": "buy",
        "type": "market",
        "qty": Decimal("10"),
        "purpose": "entry",
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(changes)
    return OrderIntent.model_validate(fields)


@pytest.mark.parametrize("status", list(IntentStatus))
@pytest.mark.parametrize("event", list(IntentEvent))
def test_every_pair_is_either_in_the_table_or_illegal(
    status: IntentStatus, event: IntentEvent
) -> None:
    if (status, event) in TRANSITIONS:
        assert next_status(status, event) is TRANSITIONS[(status, event)]
    else:
        with pytest.raises(IllegalTransition):
            next_status(status, event, "cid")


def test_nothing_leaves_a_terminal_state() -> None:
    assert {IntentStatus.FILLED, IntentStatus.CANCELED, IntentStatus.REJECTED} == TERMINAL
    assert not [pair for pair in TRANSITIONS if pair[0] in TERMINAL]


def test_filled_cannot_go_back_to_accepted() -> None:
    filled = intent().submit(T0, 1).fill(T0, Decimal("10"), Decimal("100"))
    with pytest.raises(IllegalTransition, match="bot-1-000001: cannot accept from filled"):
        filled.accept(T0, "venue-1")


def test_the_happy_path_through_partial_fills() -> None:
    now = T0 + timedelta(seconds=1)
    sent = intent().submit(T0, 1)
    accepted = sent.accept(now, "V1")
    half = accepted.fill(now, Decimal("4"), Decimal("100"))
    full = half.fill(now, Decimal("6"), Decimal("110"))

    assert [sent.status, accepted.status, half.status, full.status] == [
        IntentStatus.SUBMITTING,
        IntentStatus.ACCEPTED,
        IntentStatus.PARTIALLY_FILLED,
        IntentStatus.FILLED,
    ]
    assert half.remaining_qty == Decimal("6")
    assert full.filled_qty == Decimal("10")
    assert full.avg_price == Decimal("106")  # (4*100 + 6*110) / 10
    assert full.venue_order_id == "V1"
    assert full.updated_at == now and full.created_at == T0


def test_an_ambiguous_submission_is_unknown_and_only_evidence_moves_it() -> None:
    unknown = intent().submit(T0, 1).mark_unknown(T0, "timeout after sending")
    assert unknown.status is IntentStatus.UNKNOWN and not unknown.status.is_terminal
    assert unknown.accept(T0, "V9").status is IntentStatus.ACCEPTED
    assert unknown.fill(T0, Decimal("10"), Decimal("5")).status is IntentStatus.FILLED
    assert unknown.reject(T0, "insufficient funds").status is IntentStatus.REJECTED
    # Sent again only under the same client order id: the id is the intent's identity.
    resent = unknown.submit(T0, 1)
    assert resent.status is IntentStatus.SUBMITTING
    assert resent.client_order_id == unknown.client_order_id


def test_an_intent_never_sent_can_be_abandoned() -> None:
    assert intent().cancel(T0, "abandoned at restart").status is IntentStatus.CANCELED
    with pytest.raises(IllegalTransition):
        intent().fill(T0, Decimal("1"), Decimal("1"))


def test_a_fill_beyond_the_order_qty_is_refused() -> None:
    sent = intent().submit(T0, 1)
    with pytest.raises(ValueError, match="would exceed qty 10"):
        sent.fill(T0, Decimal("11"), Decimal("1"))
    with pytest.raises(ValueError, match="must be > 0"):
        sent.fill(T0, Decimal("0"), Decimal("1"))


def test_prices_must_match_the_order_type() -> None:
    with pytest.raises(ValidationError, match="limit order needs limit_price"):
        intent(type="limit")
    with pytest.raises(ValidationError, match="stop order needs stop_price"):
        intent(type="stop", purpose="stop")
    assert intent(type="stop", purpose="stop", stop_price=Decimal("95")).stop_price == 95


def test_times_must_carry_a_timezone_and_are_kept_in_utc() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        intent(created_at=datetime(2026, 3, 2, 14, 30))
    new_york = timezone(timedelta(hours=-5))
    local = intent(created_at=datetime(2026, 3, 2, 9, 30, tzinfo=new_york))
    assert local.created_at == T0 and local.created_at.tzinfo is UTC


def test_quantities_and_prices_reject_nan_and_non_positive_values() -> None:
    for bad in ("NaN", "0", "-1", "Infinity"):
        with pytest.raises(ValidationError):
            intent(qty=Decimal(bad))
