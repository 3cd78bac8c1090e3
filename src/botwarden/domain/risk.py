"""Pure rules over `RiskState` and `SignalState`: each takes the time it needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from botwarden.domain.models import DomainModel, Duration, RiskState

HOUR = timedelta(hours=1)


class RiskLimits(DomainModel):
    """The guards a bot trades under; every one survives restarts (RiskState)."""

    daily_loss_limit: Decimal | None = Field(default=None, gt=0)
    """Realised loss in a trading day (account currency) that trips the breaker."""
    max_consecutive_losses: int | None = Field(default=None, ge=1)
    max_drawdown_pct: Decimal | None = Field(default=None, gt=0, lt=100)
    """Equity this far below its peak trips the breaker."""
    max_trades_per_day: int | None = Field(default=None, ge=1)
    max_trades_per_hour: int | None = Field(default=10, ge=1)
    """A runaway loop cannot fire 27 trades in 14 minutes."""
    cooldown_after_exit: Duration = timedelta(0)
    """No new entry in a symbol for this long after a position in it closed."""
    breaker_duration: Duration = timedelta(hours=12)
    day_starts_at: time = time(0, 0)
    """When the daily counters reset, in `timezone` (`09:30`: a stock market's day)."""
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (e.g. UTC, America/New_York)") from None
        return name

    def trading_day(self, now: datetime) -> date:
        """The trading day `now` belongs to: a day starts at the first instant its local
        time reaches `day_starts_at`, and never goes backwards. (In a daylight-saving
        fall-back hour the clock passes `day_starts_at` twice: the second pass, with its
        local time briefly behind again, is still the same day.)"""
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        day = local.date()
        if local.time() >= self.day_starts_at:
            return day
        if local.fold == 1 and _repeated(day, self.day_starts_at, zone):
            return day  # reached in the first pass through the repeated hour
        return day - timedelta(days=1)

    def day_start(self, day: date) -> datetime:
        """When trading day `day` starts, in UTC: the first instant local time reaches
        `day_starts_at` (in a spring-forward gap, the instant the clock jumps past it)."""
        zone = ZoneInfo(self.timezone)
        naive = datetime.combine(day, self.day_starts_at)
        first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
        if first.astimezone(zone).replace(tzinfo=None) == naive:
            return first
        # In the gap: the start is the jump, between the two readings of the wall time.
        low, high = naive.replace(tzinfo=zone, fold=1).astimezone(UTC), first
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if middle.astimezone(zone).replace(tzinfo=None) >= naive:
                high = middle
            else:
                low = middle
        return high.replace(microsecond=0)

    def next_day_start(self, now: datetime) -> datetime:
        """When the trading day after the one `now` belongs to starts."""
        return self.day_start(self.trading_day(now) + timedelta(days=1))


def _repeated(day: date, at: time, zone: ZoneInfo) -> bool:
    """Does local time `at` occur twice on `day` (a daylight-saving fall-back)?"""
    naive = datetime.combine(day, at)
    return (
        naive.replace(tzinfo=zone, fold=0).utcoffset()
        != naive.replace(tzinfo=zone, fold=1).utcoffset()
    )


@dataclass(frozen=True)
class Refusal:
    """Why a new entry may not be taken now."""

    reason: str
    limit: str | None = None
    """The trade-frequency limit that refused it (`max_trades_per_hour`,
    `max_trades_per_day`): an operator is told once per window."""
    until: datetime | None = None
    """When that limit's window ends."""
    breaker: bool = False
    """Refused by the circuit breaker."""

    def __str__(self) -> str:
        return self.reason


def entry_refused(risk: RiskState, limits: RiskLimits, now: datetime) -> Refusal | None:
    """Why a new entry may not be taken now, or None. (Exits and stops are never refused:
    the guards stop new risk, never the protection of what is held.)"""
    if breaker_active(risk, now):
        return Refusal(
            f"circuit breaker until {risk.breaker_until:%Y-%m-%d %H:%M} UTC: {risk.breaker_reason}",
            breaker=True,
        )
    today = limits.trading_day(now)
    taken_today = risk.daily_trade_count if risk.trading_day == today else 0
    if limits.max_trades_per_day is not None and taken_today >= limits.max_trades_per_day:
        return Refusal(
            f"{taken_today} entries today, the daily limit is {limits.max_trades_per_day}",
            "max_trades_per_day",
            limits.next_day_start(now),
        )
    last_hour = [t for t in risk.recent_entries if now - t < HOUR]
    if limits.max_trades_per_hour is not None and len(last_hour) >= limits.max_trades_per_hour:
        return Refusal(
            f"{len(last_hour)} entries in the last hour, the limit is {limits.max_trades_per_hour}",
            "max_trades_per_hour",
            # the window reopens when enough of its entries are an hour old
            sorted(last_hour)[len(last_hour) - limits.max_trades_per_hour] + HOUR,
        )
    return None


def limit_alert_due(risk: RiskState, refusal: Refusal, now: datetime) -> bool:
    """Should an operator be told of this refusal? Once per window of its limit."""
    if refusal.limit is None:
        return False
    told_until = risk.limit_alerts.get(refusal.limit)
    return told_until is None or now >= told_until


def limit_alerted(risk: RiskState, refusal: Refusal) -> RiskState:
    """Remember that an operator was told of `refusal`'s limit, until its window ends."""
    assert refusal.limit is not None, "only a limit's refusal is alerted"
    assert refusal.until is not None
    return risk.evolve(limit_alerts={**risk.limit_alerts, refusal.limit: refusal.until})


def trip_on_limits(
    risk: RiskState, limits: RiskLimits, now: datetime
) -> tuple[RiskState, str | None]:
    """Trip the breaker if a loss limit is reached; returns the new state and why.

    A trip uses up what caused it, so the breaker can expire: the losing streak starts
    again from zero, and the drawdown is measured from the equity at the trip. (A daily
    loss holds for the day: its breaker lasts until the next trading day starts, when
    the day's counters reset, and yesterday's loss is never read again.)
    Without that, a streak of losses would re-trip the breaker the moment it expired,
    and since only a winning trade ends a streak, the bot would never trade again."""
    if breaker_active(risk, now):
        return risk, None
    until = now + limits.breaker_duration
    if (
        limits.daily_loss_limit is not None
        and risk.trading_day == limits.trading_day(now)
        and -risk.daily_pnl >= limits.daily_loss_limit
    ):
        reason = f"daily loss {-risk.daily_pnl:.2f} reached the limit {limits.daily_loss_limit}"
        return trip_breaker(risk, reason, limits.next_day_start(now)), reason
    if (
        limits.max_consecutive_losses is not None
        and risk.consecutive_losses >= limits.max_consecutive_losses
    ):
        reason = f"{risk.consecutive_losses} losing trades in a row"
        return trip_breaker(risk.evolve(consecutive_losses=0), reason, until), reason
    if limits.max_drawdown_pct is not None and risk.drawdown * 100 >= limits.max_drawdown_pct:
        reason = f"drawdown {risk.drawdown * 100:.1f}% from the peak equity"
        equity = (risk.peak_equity or Decimal(0)) * (1 - risk.drawdown)
        fresh = risk.evolve(peak_equity=equity, drawdown=Decimal(0))
        return trip_breaker(fresh, reason, until), reason
    return risk, None


def record_entry(risk: RiskState, now: datetime, today: date) -> RiskState:
    """One more entry taken: the day's count, and the last hour's times."""
    risk = count_trade(risk, today)
    recent = [t for t in risk.recent_entries if now - t < HOUR] + [now]
    return risk.evolve(recent_entries=recent)


def roll_day(risk: RiskState, today: date) -> RiskState:
    """Start a new trading day: the daily counters reset, everything else carries over.
    A day never goes backwards: an older `today` (a fill of yesterday's recorded late)
    changes nothing."""
    if risk.trading_day is not None and today <= risk.trading_day:
        return risk
    return risk.evolve(trading_day=today, daily_pnl=Decimal(0), daily_trade_count=0)


def add_realized_pnl(
    risk: RiskState,
    pnl: Decimal,
    day: date,
    *,
    position_pnl: Decimal | None = None,
    part: bool = False,
) -> RiskState:
    """Book one closed trade's realized PnL (closed on trading day `day`) into the day's
    PnL unless that day is already over, and into the losing streak what its position
    made (`position_pnl`, the whole position's when it closed in parts; else the trade's
    own). A `part` taken out of a position still held leaves the streak as it is."""
    risk = roll_day(risk, day)
    whole = position_pnl if position_pnl is not None else pnl
    losses = risk.consecutive_losses if part else (risk.consecutive_losses + 1 if whole < 0 else 0)
    if risk.trading_day != day:  # a past day's trade: today's loss is today's
        return risk.evolve(consecutive_losses=losses)
    return risk.evolve(daily_pnl=risk.daily_pnl + pnl, consecutive_losses=losses)


def count_trade(risk: RiskState, day: date) -> RiskState:
    """One more trade taken on trading day `day` (the daily trade limit counts these)."""
    risk = roll_day(risk, day)
    if risk.trading_day != day:
        return risk
    return risk.evolve(daily_trade_count=risk.daily_trade_count + 1)


DRAWDOWN_STEP = Decimal("0.000001")


def mark_equity(risk: RiskState, equity: Decimal) -> RiskState:
    """Track the peak and the current drawdown from it."""
    peak = equity if risk.peak_equity is None else max(risk.peak_equity, equity)
    drawdown = (peak - equity) / peak if peak > 0 else Decimal(0)
    # To a millionth (0.0001%): what a limit in percent can tell apart, not 28 digits.
    return risk.evolve(peak_equity=peak, drawdown=drawdown.quantize(DRAWDOWN_STEP))


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
