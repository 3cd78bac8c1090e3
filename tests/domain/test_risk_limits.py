"""The risk guards' rules: when an entry is refused, when the breaker trips, and when a
trading day starts."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from botwarden.domain.models import RiskState
from botwarden.domain.risk import RiskLimits, entry_refused, record_entry, trip_on_limits

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
    refused = entry_refused(risk, limits, NOW + timedelta(minutes=3))
    assert refused == "3 entries in the last hour, the limit is 3"
    assert entry_refused(risk, limits, NOW + timedelta(minutes=61)) is None, "an hour later"


def test_the_daily_trade_limit_resets_with_the_day() -> None:
    limits = RiskLimits(max_trades_per_day=2, max_trades_per_hour=None)
    risk = record_entry(record_entry(RiskState(), NOW, NOW.date()), NOW, NOW.date())
    assert "daily limit is 2" in entry_refused(risk, limits, NOW)
    assert entry_refused(risk, limits, NOW + timedelta(days=1)) is None


@pytest.mark.parametrize(
    ("risk", "reason"),
    [
        (RiskState(daily_pnl=Decimal(-500)), "daily loss 500.00 reached the limit 500"),
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
    assert (tripped.breaker_until == NOW + limits.breaker_duration) is (reason is not None)


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
        entry_refused(risk, RiskLimits(), NOW)
        == "circuit breaker until 2026-03-02 15:30 UTC: by hand"
    )
    assert entry_refused(risk, RiskLimits(), NOW + timedelta(hours=1)) is None
