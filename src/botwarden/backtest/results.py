"""What a backtest made, read back from its folder once it has run: the equity from the
paper book's own fills and the bars (the exchange's side), the closed trades from the
bot's trade history (with why each closed), and the statistics of both.

The statistics of returns are empyrical's (Sharpe, Sortino, CAGR, drawdown, volatility);
the trade counts (win rate, profit factor, exposure) are sums over the trades.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botwarden.backtest.run import STATE, Plan
from botwarden.domain.models import Fill, OrderSide
from botwarden.domain.numbers import money, plain, span
from botwarden.domain.orders import Purpose
from botwarden.domain.positions import Trade
from botwarden.domain.timeframes import width
from botwarden.state.manager import StateManager
from botwarden.state.sqlite import SqliteStore
from botwarden.venues.base import VenueOrder

if TYPE_CHECKING:
    import pandas as pd

TRADE_COLUMNS = (
    "symbol", "side", "qty", "entry_time", "entry_price", "exit_time", "exit_price", "pnl",
    "exit_reason", "fees",
)  # fmt: skip


@dataclass(frozen=True)
class ClosedTrade:
    trade: Trade
    exit_reason: str
    """What closed it: `stop`, `take_profit`, or `exit` (the strategy's signal)."""

    def row(self) -> dict[str, str]:
        t = self.trade
        return {
            "symbol": t.symbol,
            "side": t.side.value,
            "qty": plain(t.qty),
            "entry_time": t.entry_time.isoformat(),
            "entry_price": plain(t.entry_price),
            "exit_time": t.exit_time.isoformat(),
            "exit_price": plain(t.exit_price),
            "pnl": plain(t.pnl),
            "exit_reason": self.exit_reason,
            "fees": plain(t.fees),
        }


@dataclass(frozen=True)
class Held:
    """A position still open when the backtest ended, marked at the last close."""

    symbol: str
    qty: Decimal
    """Signed: below 0 is short."""
    avg_price: Decimal
    last_close: Decimal
    fees: Decimal = Decimal(0)
    """What its entry paid (not yet any trade's): the unrealized PnL is after them, as
    a trade's PnL is after its fees."""

    @property
    def unrealized(self) -> Decimal:
        return (self.last_close - self.avg_price) * self.qty - self.fees


@dataclass(frozen=True)
class Results:
    plan: Plan
    fills: list[Fill]
    """The book's, oldest first."""
    orders: list[VenueOrder]
    """The book's, oldest first."""
    trades: list[ClosedTrade]
    purposes: dict[str, Purpose]
    """What each of the bot's orders was for, by client order id."""
    equity: pd.Series
    """Cash and positions at each bar's close, labelled with the bar's time."""
    held: list[Held]
    summary: dict[str, Any]

    def trades_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, TRADE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(t.row() for t in self.trades)
        return out.getvalue()

    def write(self, folder: Path) -> None:
        """`trades.csv`, `equity.csv` and `summary.json` in `folder`."""
        (folder / "trades.csv").write_text(self.trades_csv())
        rows = [f"{at.isoformat()},{value:.2f}" for at, value in self.equity.items()]
        (folder / "equity.csv").write_text("\n".join(["time,equity", *rows]) + "\n")
        (folder / "summary.json").write_text(json.dumps(self.summary, indent=2) + "\n")


async def _from_the_bot(plan: Plan, folder: Path) -> tuple[list[ClosedTrade], dict[str, Purpose]]:
    """The bot's closed trades, with what closed each; what each of its orders was for."""
    state = StateManager(plan.config.bot_id, SqliteStore(folder / STATE, readonly=True))
    await state.open()
    try:
        trades = await state.history.trades()
        intents = [*await state.history.orders(), *(await state.snapshot()).intents.values()]
    finally:
        await state.close()
    purposes = {i.client_order_id: i.purpose for i in intents}
    closed = [
        ClosedTrade(t, purposes[t.closed_by].value if t.closed_by in purposes else "?")
        for t in trades
    ]
    return closed, purposes


@dataclass(frozen=True)
class Account:
    equity: pd.Series
    """Cash and positions at each bar's close, labelled with the bar's time."""
    final: Decimal
    """The last of them, exactly."""
    held: list[Held]
    exposure: Decimal
    """The share of bars that closed with something held."""


def _account(plan: Plan, fills: list[Fill], trades: list[ClosedTrade]) -> Account:
    """The account bar by bar, from the fills and the bars alone."""
    import pandas as pd

    closes: dict[datetime, dict[str, Decimal]] = defaultdict(dict)
    for symbol, rows in plan.history.bars.items():
        for bar in rows:
            if plan.start <= bar.time < plan.end:
                closes[bar.time][symbol] = bar.close
    cash = plan.config.backtest.starting_cash
    held: dict[str, Decimal] = defaultdict(Decimal)
    cost: dict[str, Decimal] = defaultdict(Decimal)
    last: dict[str, Decimal] = {}
    pending = iter(fills)
    fill = next(pending, None)
    values, holding, value = {}, 0, cash
    for at in sorted(closes):
        while fill is not None and fill.time <= at:
            signed = fill.qty if fill.side is OrderSide.BUY else -fill.qty
            cash -= signed * fill.price + fill.fee
            before = held[fill.symbol]
            held[fill.symbol] += signed
            if held[fill.symbol] == 0:
                cost[fill.symbol] = Decimal(0)
            elif before == 0 or (before > 0) != (held[fill.symbol] > 0):
                cost[fill.symbol] = fill.price  # opened, or turned the other way
            elif (signed > 0) == (before > 0):  # more of it: the average moves
                cost[fill.symbol] = (cost[fill.symbol] * before + fill.price * signed) / (
                    before + signed
                )
            fill = next(pending, None)
        last.update(closes[at])
        value = cash + sum((q * last[s] for s, q in held.items() if q), Decimal(0))
        values[at] = float(value)
        holding += any(held.values())
    paid = defaultdict(Decimal)  # by symbol: every fill's fee, less the closed trades'
    for f in fills:
        paid[f.symbol] += f.fee
    for t in trades:
        paid[t.trade.symbol] -= t.trade.fees
    ended = [Held(s, q, cost[s], last[s], paid[s]) for s, q in sorted(held.items()) if q]
    series = pd.Series(values, dtype="float64")
    return Account(series, value, ended, Decimal(holding) / max(len(values), 1))


def _periods_a_year(plan: Plan) -> float:
    """Bars a year: 52 weekly ones; 252 trading days of a market closed at weekends (365
    otherwise), times its bars a trading day (the median the data holds: a stock's
    hourly bars are 7 a day, a coin's 24)."""
    timeframe = plan.history.timeframe
    if timeframe == "1w":
        return 52.0
    bars = [b for rows in plan.history.bars.values() for b in rows]
    days = 365 if any(b.time.weekday() >= 5 for b in bars) else 252
    if timeframe == "1d":
        return float(days)
    counts = sorted(Counter((b.time.date(), s) for s, rows in plan.history.bars.items()
                            for b in rows).values())  # fmt: skip
    return float(days * counts[len(counts) // 2])


def _ratio(value: float | None, places: int = 4) -> float | None:
    import math

    if value is None or not math.isfinite(value):
        return None
    return round(float(value), places)


def _summary(plan: Plan, account: Account, trades: list[ClosedTrade]) -> dict[str, Any]:
    import empyrical
    import pandas as pd

    settings = plan.config.backtest
    start_cash = settings.starting_cash
    equity, final = account.equity, account.final
    with_start = pd.concat([pd.Series([float(start_cash)]), equity.reset_index(drop=True)])
    returns = with_start.pct_change().dropna()
    year = _periods_a_year(plan)
    pnls = [t.trade.pnl for t in trades]
    wins, losses = [p for p in pnls if p > 0], [p for p in pnls if p < 0]
    hold_times = [t.trade.exit_time - t.trade.entry_time for t in trades]
    held_for = sum(hold_times, timedelta()) / len(hold_times) if hold_times else None
    first = {
        s: next(b for b in rows if b.time >= plan.start) for s, rows in plan.history.bars.items()
    }
    final_close = {
        s: [b for b in rows if b.time < plan.end][-1] for s, rows in plan.history.bars.items()
    }
    hold_returns = [final_close[s].close / first[s].open - 1 for s in plan.history.bars]
    return {
        "symbols": list(plan.config.symbols),
        "timeframe": plan.history.timeframe,
        "start": min(b.time for b in first.values()).isoformat(),
        "end": max(b.time for b in final_close.values()).isoformat(),
        "bars": len(equity),
        "fill": settings.fill,
        "fee_rate": str(settings.fee_rate),
        "slippage": str(settings.slippage),
        "starting_cash": money(start_cash),
        "final_equity": money(final),
        "total_return_pct": _ratio(float(final / start_cash - 1) * 100, 2),
        "cagr_pct": _ratio(empyrical.cagr(returns, annualization=year) * 100, 2),
        "max_drawdown_pct": _ratio(empyrical.max_drawdown(returns) * 100, 2),
        "sharpe": _ratio(empyrical.sharpe_ratio(returns, annualization=year), 3),
        "sortino": _ratio(empyrical.sortino_ratio(returns, annualization=year), 3),
        "volatility_pct": _ratio(empyrical.annual_volatility(returns, annualization=year) * 100, 2),
        "trades": len(trades),
        "win_rate_pct": _ratio(100 * len(wins) / len(pnls), 2) if pnls else None,
        "profit_factor": _ratio(float(sum(wins) / -sum(losses)), 3) if losses else None,
        "net_pnl": money(sum(pnls, Decimal(0))),
        "fees": money(sum((t.trade.fees for t in trades), Decimal(0))),
        "best_trade": money(max(pnls)) if pnls else None,
        "worst_trade": money(min(pnls)) if pnls else None,
        "average_hold": span(held_for.total_seconds()) if held_for is not None else None,
        "average_hold_seconds": held_for.total_seconds() if held_for is not None else None,
        "exposure_pct": _ratio(float(account.exposure) * 100, 2),
        "buy_and_hold_return_pct": _ratio(float(sum(hold_returns) / len(hold_returns)) * 100, 2),
        "exits": dict(sorted(Counter(t.exit_reason for t in trades).items())),
        "open_at_end": [
            {"symbol": h.symbol, "qty": str(h.qty), "avg_price": str(h.avg_price),
             "last_close": str(h.last_close), "fees": str(h.fees),
             "unrealized": money(h.unrealized)}
            for h in account.held
        ],
        "calendars": _calendars(plan),
        "gaps": [
            {"symbol": g.symbol, "after": g.after.isoformat(), "resumes": g.resumes.isoformat(),
             "missing_bars": g.missing}
            for g in plan.history.gaps
        ],
    }  # fmt: skip


def _calendars(plan: Plan) -> dict[str, int]:
    """For each symbol that had no bar at some of the passes (another's bar opened
    then), how many: its market orders of those passes filled at its last close."""
    size = width(plan.history.timeframe)
    shift = size if plan.config.backtest.fill == "close" else timedelta(0)
    looked = [t - shift for t in plan.passes()[:-1]]
    found = {}
    for symbol, rows in plan.history.bars.items():
        opens = {b.time for b in rows}
        missing = sum(t not in opens for t in looked)
        if missing:
            found[symbol] = missing
    return found


async def read_results(plan: Plan, folder: Path) -> Results:
    book = plan.book(folder, readonly=True)
    try:
        fills = [fill for _, fill in book.fills()]
        orders = book.all_orders()
    finally:
        book.close()
    trades, purposes = await _from_the_bot(plan, folder)
    account = _account(plan, fills, trades)
    summary = _summary(plan, account, trades)
    return Results(plan, fills, orders, trades, purposes, account.equity, account.held, summary)
