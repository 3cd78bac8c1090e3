"""A bot's status moves only through its table, as an order intent's does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from botwarden.domain import BotEvent, BotRecord, BotStatus, IllegalBotTransition
from botwarden.domain.models import BOT_TRANSITIONS, next_bot_status

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize("event", list(BotEvent))
@pytest.mark.parametrize("status", list(BotStatus))
def test_every_pair_is_either_in_the_table_or_illegal(status: BotStatus, event: BotEvent) -> None:
    if (status, event) in BOT_TRANSITIONS:
        assert next_bot_status(status, event) is BOT_TRANSITIONS[(status, event)]
    else:
        with pytest.raises(IllegalBotTransition, match=f"cannot {event.value} from"):
            next_bot_status(status, event, "bot")


def test_any_instance_may_start_or_fail_from_anywhere() -> None:
    """A start follows whatever the last instance left (a SIGKILL leaves running); an
    error can end any of them."""
    for status in BotStatus:
        assert next_bot_status(status, BotEvent.START) is BotStatus.PENDING
        assert next_bot_status(status, BotEvent.FAIL) is BotStatus.ERROR


def test_only_an_operator_clears_needs_attention() -> None:
    leaving = {
        BOT_TRANSITIONS[(BotStatus.NEEDS_ATTENTION, event)]
        for event in BotEvent
        if (BotStatus.NEEDS_ATTENTION, event) in BOT_TRANSITIONS
        and event not in (BotEvent.START, BotEvent.FAIL, BotEvent.RESOLVE, BotEvent.RECOVER)
    }
    assert leaving <= {BotStatus.NEEDS_ATTENTION, BotStatus.PENDING}
    assert next_bot_status(BotStatus.NEEDS_ATTENTION, BotEvent.STOP) is BotStatus.NEEDS_ATTENTION


def test_a_standby_becomes_pending_only_by_being_granted_the_lease() -> None:
    moves = {e: s for (f, e), s in BOT_TRANSITIONS.items() if f is BotStatus.STANDBY}
    assert moves == {
        BotEvent.START: BotStatus.PENDING,
        BotEvent.FAIL: BotStatus.ERROR,
        BotEvent.STAND_BY: BotStatus.STANDBY,
        BotEvent.STOP: BotStatus.STOPPED,
    }


def test_a_record_moves_with_its_times() -> None:
    record = BotRecord(bot_id="bot", status=BotStatus.STOPPED).move(BotEvent.START, T0)
    assert (record.status, record.last_updated_at, record.last_run_at) == (
        BotStatus.PENDING,
        T0,
        None,
    )
    running = record.move(BotEvent.RECOVER, T0)
    assert running.last_run_at == T0
    with pytest.raises(IllegalBotTransition, match="bot bot: cannot resolve from running"):
        running.move(BotEvent.RESOLVE, T0)
