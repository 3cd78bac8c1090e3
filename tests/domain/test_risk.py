"""Pure risk rules: daily roll-over, streaks, drawdown, breaker expiry, signal pruning."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from botwarden.domain import risk as rules
from botwarden.domain.models import RiskState

MONDAY, TUESDAY = date(2026, 3, 2), date(2026, 3, 3)
NOON = datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_daily_counters_reset_on_a_new_trading_day_and_nothing_else() -> None:
    risk = rules.count_trade(rules.add_realized_pnl(RiskState(), Decimal("-5"), MONDAY), MONDAY)
    assert (risk.daily_pnl, risk.daily_trade_count, risk.consecutive_losses) == (-5, 1, 1)

    tuesday = rules.add_realized_pnl(risk, Decimal("-2"), TUESDAY)
    assert tuesday.trading_day == TUESDAY
    assert (tuesday.daily_pnl, tuesday.daily_trade_count) == (Decimal("-2"), 0)
    assert tuesday.consecutive_losses == 2, "a losing streak spans days"


def test_a_win_ends_the_losing_streak() -> None:
    risk = RiskState()
    for pnl in ("-1", "-1", "-1"):
        risk = rules.add_realized_pnl(risk, Decimal(pnl), MONDAY)
    assert risk.consecutive_losses == 3
    assert rules.add_realized_pnl(risk, Decimal("0.5"), MONDAY).consecutive_losses == 0


def test_drawdown_is_measured_from_the_peak() -> None:
    risk = rules.mark_equity(RiskState(), Decimal("1000"))
    risk = rules.mark_equity(risk, Decimal("1200"))
    risk = rules.mark_equity(risk, Decimal("900"))
    assert risk.peak_equity == 1200
    assert risk.drawdown == Decimal("0.25")


def test_the_breaker_expires_by_itself_and_a_later_trip_never_shortens_it() -> None:
    risk = rules.trip_breaker(RiskState(), "daily loss", NOON + timedelta(hours=2))
    risk = rules.trip_breaker(risk, "streak", NOON + timedelta(hours=1))
    assert risk.breaker_until == NOON + timedelta(hours=2) and risk.breaker_reason == "streak"
    assert rules.breaker_active(risk, NOON + timedelta(hours=1, minutes=59))
    assert not rules.breaker_active(risk, NOON + timedelta(hours=2))
    cleared = rules.clear_expired_breaker(risk, NOON + timedelta(hours=3))
    assert cleared.breaker_until is None and cleared.breaker_reason is None
    assert rules.clear_expired_breaker(risk, NOON) is risk


def test_signals_are_forgotten_by_age_not_by_count() -> None:
    processed = {f"s{i}": NOON + timedelta(minutes=i) for i in range(500)}
    expired = rules.expired_signals(
        processed, NOON + timedelta(minutes=600), timedelta(minutes=200)
    )
    assert expired == [f"s{i}" for i in range(400)]
    assert rules.expired_signals(processed, NOON, timedelta(days=1)) == []


def test_cooldown_lasts_until_its_time() -> None:
    cooldowns = {"SPY": NOON}
    assert rules.on_cooldown(cooldowns, "SPY", NOON - timedelta(seconds=1))
    assert not rules.on_cooldown(cooldowns, "SPY", NOON)
    assert not rules.on_cooldown(cooldowns, "QQQ", NOON - timedelta(days=1))


def test_a_trade_of_a_day_already_over_never_takes_the_day_back() -> None:
    today = rules.add_realized_pnl(RiskState(), Decimal("-5"), TUESDAY)
    late = rules.add_realized_pnl(today, Decimal("-40"), MONDAY)  # recorded after a restart
    assert late.trading_day == TUESDAY and late.daily_pnl == Decimal("-5")
    assert late.consecutive_losses == 2, "it still counts in the streak"
    assert rules.count_trade(late, MONDAY).daily_trade_count == 0
