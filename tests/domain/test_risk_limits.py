"""The risk guards' rules: when an entry is refused, when the breaker trips, and when a
trading day starts."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from botwarden.domain.models import RiskState
from botwarden.domain.risk import (
    RiskLimits,
    entry_refused,
    limit_alert_due,
    limit_alerted,
    record_entry,
    trip_on_limits,
)

NOW = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def test_a_day_starts_at_the_configured_local_time() -> None:
    new_york = RiskLimits(day_starts_at=time(9, 30), timezone="America/New_York")
    # 14:29 UTC is 09:29 in New York (EST): still the previous trading day.
    assert new_york.trading_day(datetime(2026, 3, 2, 14, 29, tzinfo=UTC)) == date(2026, 3, 1)
    assert new_york.trading_day(datetime(2026, 3, 2, 14, 30, tzinfo=UTC)) == date(2026, 3, 2)
    assert RiskLimits().trading_day(datetime(2026, 3, 2, 0, 0, tzinfo=UTC)) == date(2026, 3, 2)
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        RiskLimits(timezone="Mars/Olympus")


def test_a_runaway_loop_is_stopped_by_the_hourly_limit() -> None:
    limits = RiskLimits(max_trades_per_hour=3)
    risk = RiskState()
    for minute in range(3):
        assert entry_refused(risk, limits, NOW + timedelta(minutes=minute)) is None
        risk = record_entry(risk, NOW + timedelta(minutes=minute), NOW.date())
    refused = str(entry_refused(risk, limits, NOW + timedelta(minutes=3)))
    assert refused == "3 entries in the last hour, the limit is 3"
    assert entry_refused(risk, limits, NOW + timedelta(minutes=61)) is None, "an hour later"


def test_the_daily_trade_limit_resets_with_the_day() -> None:
    limits = RiskLimits(max_trades_per_day=2, max_trades_per_hour=None)
    risk = record_entry(record_entry(RiskState(), NOW, NOW.date()), NOW, NOW.date())
    assert "daily limit is 2" in str(entry_refused(risk, limits, NOW))
    assert entry_refused(risk, limits, NOW + timedelta(days=1)) is None


@pytest.mark.parametrize(
    ("risk", "reason"),
    [
        (
            RiskState(trading_day=NOW.date(), daily_pnl=Decimal(-500)),
            "daily loss 500.00 reached the limit 500",
        ),
        (RiskState(consecutive_losses=3), "3 losing trades in a row"),
        (RiskState(drawdown=Decimal("0.2")), "drawdown 20.0% from the peak equity"),
        (RiskState(daily_pnl=Decimal(-499), consecutive_losses=2), None),
    ],
)
def test_the_breaker_trips_on_each_loss_limit(risk: RiskState, reason: str | None) -> None:
    limits = RiskLimits(
        daily_loss_limit=Decimal(500), max_consecutive_losses=3, max_drawdown_pct=Decimal(20)
    )
    tripped, why = trip_on_limits(risk, limits, NOW)
    assert why == reason
    until = (
        limits.next_day_start(NOW) if "daily" in (reason or "") else NOW + limits.breaker_duration
    )
    assert (tripped.breaker_until == until) is (reason is not None)


def test_a_breaker_uses_up_its_cause_so_it_can_expire() -> None:
    """Only a win ends a losing streak, and a bot that may not enter cannot win: a
    breaker that kept the streak would trip again the moment it expired, forever."""
    limits = RiskLimits(max_consecutive_losses=3, max_drawdown_pct=Decimal(20))
    streak, _ = trip_on_limits(RiskState(consecutive_losses=3), limits, NOW)
    later = NOW + limits.breaker_duration
    assert trip_on_limits(streak, limits, later) == (streak, None)
    assert entry_refused(streak, limits, later) is None
    deep = RiskState(peak_equity=Decimal(1000), drawdown=Decimal("0.25"))
    tripped, _ = trip_on_limits(deep, limits, NOW)
    assert (tripped.peak_equity, tripped.drawdown) == (Decimal(750), Decimal(0))
    assert trip_on_limits(tripped, limits, later)[1] is None


def test_an_active_breaker_refuses_entries_until_it_expires() -> None:
    risk = RiskState(breaker_until=NOW + timedelta(hours=1), breaker_reason="by hand")
    assert (
        str(entry_refused(risk, RiskLimits(), NOW))
        == "circuit breaker until 2026-03-02 15:30 UTC: by hand"
    )
    assert entry_refused(risk, RiskLimits(), NOW + timedelta(hours=1)) is None


# Where a fall-back repeats the hour holding `day_starts_at`: (zone, start, the day,
# the UTC instant of the first pass through `day_starts_at`).
FALL_BACK = [
    ("America/New_York", time(1, 30), date(2026, 11, 1), datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
    ("Europe/London", time(1, 30), date(2026, 10, 25), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ("Australia/Sydney", time(2, 30), date(2026, 4, 5), datetime(2026, 4, 4, 15, 30, tzinfo=UTC)),
]


@pytest.mark.parametrize(("zone", "start", "day", "first_pass"), FALL_BACK)
def test_the_trading_day_never_goes_back_in_a_fall_back_hour(
    zone: str, start: time, day: date, first_pass: datetime
) -> None:
    limits = RiskLimits(day_starts_at=start, timezone=zone)
    assert limits.trading_day(first_pass - timedelta(seconds=1)) == day - timedelta(days=1)
    assert limits.day_start(day) == first_pass, "the first instant the clock reads it"
    seen = [limits.trading_day(first_pass + timedelta(minutes=m)) for m in range(0, 6 * 60, 5)]
    assert seen == [day] * len(seen), "the second pass through the hour is the same day"


def test_a_day_starting_in_a_spring_forward_gap_starts_when_the_clock_jumps() -> None:
    # New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC); 02:30 never exists.
    limits = RiskLimits(day_starts_at=time(2, 30), timezone="America/New_York")
    jump = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert limits.day_start(date(2026, 3, 8)) == jump
    assert limits.trading_day(jump - timedelta(seconds=1)) == date(2026, 3, 7)
    assert limits.trading_day(jump) == date(2026, 3, 8)


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/London", "Australia/Sydney"])
def test_trading_days_only_ever_move_forward_through_a_year(zone: str) -> None:
    limits = RiskLimits(day_starts_at=time(1, 30), timezone=zone)
    instant = datetime(2026, 1, 1, tzinfo=UTC)
    previous = limits.trading_day(instant)
    while instant < datetime(2027, 1, 1, tzinfo=UTC):
        day = limits.trading_day(instant)
        assert previous <= day <= previous + timedelta(days=1), instant
        if day != previous:
            assert limits.day_start(day) <= instant < limits.day_start(day) + timedelta(days=1)
        previous, instant = day, instant + timedelta(minutes=15)


def test_a_daily_loss_halts_until_the_next_trading_day_not_for_good() -> None:
    limits = RiskLimits(daily_loss_limit=Decimal(100), timezone="America/New_York")
    lost = RiskState(trading_day=date(2026, 3, 2), daily_pnl=Decimal(-150))
    tripped, why = trip_on_limits(lost, limits, NOW)
    assert why == "daily loss 150.00 reached the limit 100"
    assert tripped.breaker_until == datetime(2026, 3, 3, 5, 0, tzinfo=UTC), "NY midnight"
    tomorrow = datetime(2026, 3, 3, 5, 0, tzinfo=UTC)
    assert entry_refused(tripped, limits, tomorrow) is None
    assert trip_on_limits(tripped, limits, tomorrow)[1] is None, "yesterday's loss is not read"


def test_a_frequency_refusal_names_its_limit_and_when_its_window_reopens() -> None:
    limits = RiskLimits(max_trades_per_hour=2)
    risk = record_entry(
        record_entry(RiskState(), NOW, NOW.date()), NOW + timedelta(minutes=10), NOW.date()
    )
    refusal = entry_refused(risk, limits, NOW + timedelta(minutes=20))
    assert refusal is not None and refusal.limit == "max_trades_per_hour"
    assert refusal.until == NOW + timedelta(hours=1)
    assert limit_alert_due(risk, refusal, NOW)
    told = limit_alerted(risk, refusal)
    assert not limit_alert_due(told, refusal, NOW + timedelta(minutes=59))
    assert limit_alert_due(told, refusal, NOW + timedelta(hours=1))
