"""Pure rules over `RiskState` and `SignalState`: each takes the time it needs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal

from botwarden.domain.models import RiskState


def roll_day(risk: RiskState, today: date) -> RiskState:
    """Start a new trading day: the daily counters reset, everything else carries over."""
    if risk.trading_day == today:
        return risk
    return risk.evolve(trading_day=today, daily_pnl=Decimal(0), daily_trade_count=0)


def add_realized_pnl(risk: RiskState, pnl: Decimal, today: date) -> RiskState:
    """Book one closed trade's realized PnL into the day and the losing streak."""
    risk = roll_day(risk, today)
    losses = risk.consecutive_losses + 1 if pnl < 0 else 0
    return risk.evolve(daily_pnl=risk.daily_pnl + pnl, consecutive_losses=losses)


def count_trade(risk: RiskState, today: date) -> RiskState:
    """One more trade taken today (the daily trade limit counts these)."""
    risk = roll_day(risk, today)
    return risk.evolve(daily_trade_count=risk.daily_trade_count + 1)


def mark_equity(risk: RiskState, equity: Decimal) -> RiskState:
    """Track the peak and the current drawdown from it."""
    peak = equity if risk.peak_equity is None else max(risk.peak_equity, equity)
    drawdown = (peak - equity) / peak if peak > 0 else Decimal(0)
    return risk.evolve(peak_equity=peak, drawdown=drawdown)


def trip_breaker(risk: RiskState, reason: str, until: datetime) -> RiskState:
    """Halt new entries until `until`; a later trip never shortens an earlier one."""
    if risk.breaker_until is not None and risk.breaker_until > until:
        until = risk.breaker_until
    return risk.evolve(breaker_until=until, breaker_reason=reason)


def breaker_active(risk: RiskState, now: datetime) -> bool:
    return risk.breaker_until is not None and now < risk.breaker_until


def clear_expired_breaker(risk: RiskState, now: datetime) -> RiskState:
    if risk.breaker_until is None or breaker_active(risk, now):
        return risk
    return risk.evolve(breaker_until=None, breaker_reason=None)


def expired_signals(
    processed: Mapping[str, datetime], now: datetime, retention: timedelta
) -> list[str]:
    """Processed signal ids older than `retention`: safe to forget.

    `processed` is in time order (as `SignalState.processed` is kept), so the scan
    stops at the first id still inside the window: pruning costs what it prunes."""
    horizon = now - retention
    expired = []
    for signal_id, at in processed.items():
        if at >= horizon:
            break
        expired.append(signal_id)
    return expired


def on_cooldown(cooldowns: Mapping[str, datetime], symbol: str, now: datetime) -> bool:
    until = cooldowns.get(symbol)
    return until is not None and now < until
