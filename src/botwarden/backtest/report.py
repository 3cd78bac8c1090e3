"""A backtest's results for people: the summary in the terminal, and `report.html`
(plotly, its script written beside the page: no network needed to open it) with the
equity curve beside buy-and-hold, and each symbol's candles with every entry, exit,
stop and take-profit drawn from the paper book's own orders."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botwarden.backtest.results import ClosedTrade, Results
from botwarden.backtest.run import instruments
from botwarden.domain.models import Side
from botwarden.domain.numbers import money, plain
from botwarden.domain.orders import OrderType, Purpose
from botwarden.venues.base import OrderState, VenueOrder

if TYPE_CHECKING:
    from rich.console import Console

ROWS = (
    ("period", lambda s: f"{s['start'][:10]} to {s['end'][:10]} ({s['bars']} bars)"),
    ("timeframe", lambda s: s["timeframe"]),
    ("symbols", lambda s: ", ".join(s["symbols"])),
    ("fill model", lambda s: f"{s['fill']}, fees {s['fee_rate']}, slippage {s['slippage']}"),
    ("starting cash", lambda s: s["starting_cash"]),
    ("final equity", lambda s: s["final_equity"]),
    ("total return", lambda s: _pct(s["total_return_pct"])),
    ("buy and hold", lambda s: _pct(s["buy_and_hold_return_pct"])),
    ("CAGR", lambda s: _pct(s["cagr_pct"])),
    ("max drawdown", lambda s: _pct(s["max_drawdown_pct"])),
    ("Sharpe / Sortino", lambda s: f"{_number(s['sharpe'])} / {_number(s['sortino'])}"),
    ("trades", lambda s: f"{s['trades']} ({_exits(s['exits'])})"),
    ("win rate", lambda s: _pct(s["win_rate_pct"])),
    ("profit factor", lambda s: _number(s["profit_factor"])),
    ("net PnL / fees", lambda s: f"{s['net_pnl']} / {s['fees']}"),
    ("exposure", lambda s: _pct(s["exposure_pct"])),
)  # fmt: skip


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _exits(exits: dict[str, int]) -> str:
    return ", ".join(f"{n} by {reason.replace('_', '-')}" for reason, n in exits.items()) or "none"


def render_summary(console: Console, results: Results, title: str) -> None:
    from rich.table import Table

    summary = results.summary
    table = Table(title=title, title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for name, shown in ROWS:
        table.add_row(name, shown(summary))
    ticks = _ticks(results)
    for held in summary["open_at_end"]:
        price = Decimal(held["avg_price"]).quantize(ticks[held["symbol"]])
        qty = Decimal(held["qty"])
        side = "long" if qty > 0 else "short"
        table.add_row(
            "open at the end",
            f"{side} {plain(abs(qty))} {held['symbol']} from {price},"
            f" unrealized {held['unrealized']} (after its entry's fees)",
        )
    for symbol, missing in summary["calendars"].items():
        table.add_row(
            "calendars differ",
            f"{symbol} had no bar at {missing} of the passes (another symbol's bar opened):"
            " its market orders then filled at its last close",
        )
    for gap in summary["gaps"]:
        missing = gap["missing_bars"]
        after = datetime.fromisoformat(gap["after"])
        when = (
            f"{after:%Y-%m-%d}"
            if summary["timeframe"] in ("1d", "1w")
            else f"{after:%Y-%m-%d %H:%M}"
        )
        table.add_row(
            "gap in the data",
            f"{gap['symbol']}: {missing} bar{'s' if missing > 1 else ''} missing after {when}",
        )
    console.print(table)


def _spans(orders: Iterable[VenueOrder], price: str, end: datetime) -> tuple[list, list]:
    """Each resting order's price as a segment from when it was placed to when it
    ended (None between two: a gap in the line)."""
    xs: list[Any] = []
    ys: list[Any] = []
    for order in orders:
        ended = order.updated_at if order.state is not OrderState.OPEN else end
        value = getattr(order, price)
        xs += [order.created_at, ended, None]
        ys += [float(value), float(value), None]
    return xs, ys


def write_html(results: Results, path: Path) -> None:
    """`report.html` at `path`, and plotly's script beside it."""
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs
    from plotly.subplots import make_subplots

    plan, summary, ticks = results.plan, results.summary, _ticks(results)
    symbols = list(plan.config.symbols)
    fig = make_subplots(
        rows=1 + len(symbols),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        subplot_titles=["equity", *symbols],
    )
    equity = results.equity
    fig.add_trace(go.Scatter(x=equity.index, y=equity.values, name="equity"), row=1, col=1)
    start_cash = float(Decimal(summary["starting_cash"]))
    first_opens = {s: next(b.open for b in rows if b.time >= plan.start)
                   for s, rows in plan.history.bars.items()}  # fmt: skip
    hold = [
        start_cash
        * sum(float(closes[s] / first_opens[s]) for s in symbols if s in closes)
        / max(1, len([s for s in symbols if s in closes]))
        for closes in _closes_by_time(results)
    ]
    fig.add_trace(
        go.Scatter(x=equity.index, y=hold, name="buy and hold", line={"dash": "dot"}),
        row=1,
        col=1,
    )
    end = plan.end
    for row, symbol in enumerate(symbols, start=2):
        bars = [b for b in plan.history.bars[symbol] if plan.start <= b.time < plan.end]
        fig.add_trace(
            go.Candlestick(
                x=[b.time for b in bars],
                open=[float(b.open) for b in bars],
                high=[float(b.high) for b in bars],
                low=[float(b.low) for b in bars],
                close=[float(b.close) for b in bars],
                name=symbol,
                showlegend=False,
            ),
            row=row,
            col=1,
        )
        mine = [o for o in results.orders if o.symbol == symbol]
        stops = [o for o in mine if o.type is OrderType.STOP]
        limits = [o for o in mine if results.purposes.get(o.client_order_id) is Purpose.TAKE_PROFIT]
        for name, picked, attr, color in (
            ("stop", stops, "stop_price", "darkorange"),
            ("take-profit", limits, "limit_price", "mediumpurple"),
        ):
            xs, ys = _spans(picked, attr, end)
            if xs:
                fig.add_trace(
                    go.Scatter(x=xs, y=ys, mode="lines", name=f"{symbol} {name}",
                               line={"color": color, "width": 1.5, "dash": "dash"}),
                    row=row, col=1,
                )  # fmt: skip
        closed = [c for c in results.trades if c.trade.symbol == symbol]
        tick = ticks[symbol]
        for side, shape in ((Side.LONG, "triangle-up"), (Side.SHORT, "triangle-down")):
            opened = [c.trade for c in closed if c.trade.side is side]
            _markers(fig, row, f"{symbol} {side.value} entry",
                     [(t.entry_time, t.entry_price,
                       f"{side.value} {plain(t.qty)} at {t.entry_price.quantize(tick):f}")
                      for t in opened],
                     {"symbol": shape, "size": 10, "color": "royalblue"})  # fmt: skip
        _markers(fig, row, f"{symbol} exit",
                 [(c.trade.exit_time, c.trade.exit_price,
                   f"{c.exit_reason.replace('_', '-')} at {c.trade.exit_price.quantize(tick):f},"
                   f" PnL {money(c.trade.pnl)}") for c in closed],
                 {"symbol": "x", "size": 9, "color": "black"})  # fmt: skip
        fig.update_xaxes(rangeslider_visible=False, row=row, col=1)
    fig.update_layout(
        title=f"{plan.config.bot_id}: backtest {summary['start'][:10]} to {summary['end'][:10]}"
        f" · return {_pct(summary['total_return_pct'])}"
        f" · max drawdown {_pct(summary['max_drawdown_pct'])}"
        f" · {summary['trades']} trades",
        height=320 * (1 + len(symbols)),
        template="plotly_white",
    )
    chart = fig.to_html(include_plotlyjs=False, full_html=False)
    (path.parent / "plotly.min.js").write_text(get_plotlyjs())
    path.write_text(_page(results, chart, ticks))


def _markers(fig: Any, row: int, name: str, points: list[tuple], marker: dict) -> None:
    """Points at (time, price), each with a line of text shown on hover."""
    import plotly.graph_objects as go

    if not points:
        return
    fig.add_trace(
        go.Scatter(
            x=[at for at, _, _ in points],
            y=[float(price) for _, price, _ in points],
            text=[said for _, _, said in points],
            hoverinfo="text+x",
            mode="markers",
            marker=marker,
            name=name,
        ),
        row=row,
        col=1,
    )


def _page(results: Results, chart: str, ticks: dict[str, Decimal]) -> str:
    """report.html: the summary, the charts, then every closed trade."""
    summary = results.summary
    rows = "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(shown(summary))}</td></tr>" for name, shown in ROWS
    )
    trades = "".join(
        "<tr>"
        + "".join(f"<td>{escape(value)}</td>" for value in _shown_trade(c, ticks[c.trade.symbol]))
        + "</tr>"
        for c in results.trades
    )
    head = "".join(f"<th>{h}</th>" for h in TRADE_HEADINGS)
    title = escape(f"{results.plan.config.bot_id}: backtest")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<script charset="utf-8" src="plotly.min.js"></script>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-variant-numeric: tabular-nums; }}
th, td {{ padding: 0.2em 0.8em; text-align: left; border-bottom: 1px solid #ddd; }}
td.n {{ text-align: right; }}
</style></head>
<body>
<h1>{title}</h1>
<table class="summary">{rows}</table>
{chart}
<h2>Trades</h2>
<table class="trades"><thead><tr>{head}</tr></thead><tbody>{trades}</tbody></table>
</body></html>
"""


TRADE_HEADINGS = ("symbol", "side", "qty", "entry", "at", "exit", "at", "PnL", "closed by")


def _ticks(results: Results) -> dict[str, Decimal]:
    """Each symbol's price tick, to show prices with (a fill's price, slippage on it,
    may be finer: trades.csv and summary.json keep it whole)."""
    plan = results.plan
    return {s: i.tick for s, i in instruments(plan.config, plan.history).items()}


def _shown_trade(closed: ClosedTrade, tick: Decimal) -> tuple[str, ...]:
    t = closed.trade
    return (
        t.symbol, t.side.value, plain(t.qty), f"{t.entry_time:%Y-%m-%d %H:%M}",
        f"{t.entry_price.quantize(tick):f}", f"{t.exit_time:%Y-%m-%d %H:%M}",
        f"{t.exit_price.quantize(tick):f}", money(t.pnl), closed.exit_reason.replace("_", "-"),
    )  # fmt: skip


def _closes_by_time(results: Results) -> list[dict[str, Decimal]]:
    """Each symbol's last close at each point of the equity curve."""
    plan = results.plan
    last: dict[str, Decimal] = {}
    by_time: dict[datetime, dict[str, Decimal]] = {}
    for symbol, rows in plan.history.bars.items():
        for bar in rows:
            by_time.setdefault(bar.time, {})[symbol] = bar.close
    out = []
    for at in results.equity.index:
        last.update(by_time.get(at, {}))
        out.append(dict(last))
    return out
