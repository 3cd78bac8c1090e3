"""How a bot's state is shown to a person (rich tables) or a script (JSON)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from botwarden.config import BotConfig
from botwarden.domain.models import BotStatus
from botwarden.domain.numbers import age, approx, money, plain, span
from botwarden.redact import redact_url
from botwarden.state.factory import StoredBot
from botwarden.state.records import document

if TYPE_CHECKING:
    from botwarden.engine.account import AccountView
    from botwarden.process.supervisor import BotReport
    from botwarden.strategies.catalog import Available

STATUS_STYLE = {
    BotStatus.RUNNING: "green",
    BotStatus.STOPPED: "bright_black",
    BotStatus.ERROR: "red",
    BotStatus.PENDING: "blue",
    BotStatus.STANDBY: "cyan",
    BotStatus.NEEDS_ATTENTION: "yellow",
}

RECENT_FILLS = 10


def state_as_json(
    stored: StoredBot, store: str, now: datetime, retention: timedelta
) -> dict[str, Any]:
    state = stored.state
    pending = list(state.intents.values())
    return {
        "bot_id": state.bot.bot_id,
        "store": store,
        "bot": document(state.bot),
        "positions": [document(p) for p in state.positions.values()],
        "pending_orders": [document(i) for i in pending],
        "risk": document(state.risk),
        "signals": {
            "processed": len(state.signals),
            "retention_seconds": retention.total_seconds(),
            "cooldowns": {s: u.isoformat() for s, u in state.cooldowns.items() if u > now},
            "last_bar_time": state.last_bar.isoformat() if state.last_bar else None,
        },
        "fills": {"count": stored.fill_count, "recent": [document(f) for f in stored.fills]},
    }


def render_state(console: Console, stored: StoredBot, store: str, now: datetime) -> None:
    state = stored.state
    bot = state.bot
    style = STATUS_STYLE.get(bot.status, "white")
    summary = Table.grid(padding=(0, 2))
    summary.add_column(no_wrap=True)
    summary.add_column(overflow="fold")  # (a long store path: whole, on two lines)
    summary.add_row("status", f"[{style}]{bot.status.value}[/]")
    summary.add_row("store", store)
    summary.add_row("heartbeat", age(bot.seen_at or bot.heartbeat_at, now))  # (wall clock)
    summary.add_row(
        "last run", f"{bot.last_run_at:%Y-%m-%d %H:%M:%S} UTC" if bot.last_run_at else "never"
    )
    if bot.instance:
        inst = bot.instance
        summary.add_row("instance", f"pid {inst.pid} on {inst.host}, epoch {inst.epoch}")
    if bot.last_error:
        summary.add_row("last error", f"[red]{bot.last_error}[/]")

    narrow = console.width < WIDE_STATUS
    positions = _position_lines(state, now) if narrow else _position_table(state, now)
    pending = _intent_lines(state) if narrow else _intent_table(state)

    risk = state.risk
    risk_grid = Table.grid(padding=(0, 2))
    risk_grid.add_row("trading day", str(risk.trading_day or "-"))
    risk_grid.add_row("daily PnL", money(risk.daily_pnl))
    risk_grid.add_row("entries today", str(risk.daily_trade_count))
    risk_grid.add_row("losing streak", str(risk.consecutive_losses))
    risk_grid.add_row("drawdown", f"{risk.drawdown:.2%}" if risk.peak_equity else "-")
    breaker = "off"
    if risk.breaker_until and risk.breaker_until > now:
        breaker = f"[red]ON until {risk.breaker_until:%Y-%m-%d %H:%M} UTC: {risk.breaker_reason}[/]"
    risk_grid.add_row("circuit breaker", breaker)

    signals = Table.grid(padding=(0, 2))
    signals.add_row("processed signals", str(len(state.signals)))
    active = {s: u for s, u in state.cooldowns.items() if u > now}
    signals.add_row(
        "cooldowns", ", ".join(f"{s} until {u:%H:%M:%S}" for s, u in active.items()) or "none"
    )
    signals.add_row("last bar", f"{state.last_bar:%Y-%m-%d %H:%M} UTC" if state.last_bar else "-")
    signals.add_row("fills recorded", str(stored.fill_count))

    console.print(Panel(summary, title=f"bot {bot.bot_id}", expand=False))
    console.print(positions if state.positions else "[bright_black]no positions[/]")
    console.print(pending if state.intents else "[bright_black]no pending order intents[/]")
    console.print(
        Group(
            Panel(risk_grid, title="risk", expand=False),
            Panel(signals, title="signals", expand=False),
        )
    )


def _stop_of(p: Any) -> tuple[str, str]:
    stop = approx(p.stop_price) if p.stop_price else "[red]none[/]"
    return stop, p.stop_venue_order_id or p.stop_client_order_id or "[red]none[/]"


def _position_table(state: Any, now: datetime) -> Table:
    positions = Table(title="Positions", title_justify="left", expand=False)
    columns = ("symbol", "side", "size", "entry", "entered", "stop", "stop order", "take-profit")
    for column in (*columns, "best"):
        positions.add_column(column)
    for p in state.positions.values():
        stop, stop_order = _stop_of(p)
        positions.add_row(
            p.symbol, p.side.value, plain(p.size), approx(p.entry_price), age(p.entry_time, now),
            stop, stop_order, _price_or_blank(p.take_profit), _price_or_blank(p.best_price),
        )  # fmt: skip
    return positions


def _position_lines(state: Any, now: datetime) -> Group:
    """The positions in a narrow terminal: two lines each, nothing cut."""
    lines: list[Any] = [Text("Positions", style="italic")]
    for p in state.positions.values():
        stop, stop_order = _stop_of(p)
        lines.append(
            f"  {escape(p.symbol)} {p.side.value} {plain(p.size)} at {approx(p.entry_price)},"
            f" entered {age(p.entry_time, now)}"
        )
        extra = "".join(
            f", {name} {approx(value)}"
            for name, value in (("take-profit", p.take_profit), ("best", p.best_price))
            if value
        )
        lines.append(f"    stop {stop} ({escape(stop_order)}){extra}")
    return Group(*lines)


def _intent_table(state: Any) -> Table:
    pending = Table(title="Pending order intents", title_justify="left")
    for column in (
        "client order id", "symbol", "side", "type", "qty", "filled", "purpose", "status",
    ):  # fmt: skip
        pending.add_column(column)
    for i in state.intents.values():
        pending.add_row(
            i.client_order_id, i.symbol, i.side.value, i.type.value, plain(i.qty),
            plain(i.filled_qty), i.purpose.value, _intent_status(i),
        )  # fmt: skip
    return pending


def _intent_lines(state: Any) -> Group:
    lines: list[Any] = [Text("Pending order intents", style="italic")]
    for i in state.intents.values():
        filled = f", {plain(i.filled_qty)} filled" if i.filled_qty else ""
        lines.append(
            f"  {escape(i.client_order_id)}: {i.purpose.value} order, {i.side.value} {i.type.value}"
            f" {plain(i.qty)} {escape(i.symbol)}{filled}, {_intent_status(i)}"
        )
    return Group(*lines)


def _intent_status(intent: Any) -> str:
    status = intent.status.value
    return f"[yellow]{status}[/]" if status == "unknown" else status


def _price_or_blank(value: Any) -> str:
    return approx(value) if value else ""


def render_status(console: Console, reports: list[BotReport], home: Path) -> None:
    """`botwarden status`: one row per bot, short enough for a terminal 80 columns
    wide; what an operator must read (an error, what needs them, a breaker) follows
    the table, a line for each bot, never folded into a column."""
    if not reports:
        console.print(f"no bots in {home} yet: `botwarden start CONFIG` starts one")
        return
    if console.width < WIDE_STATUS:  # (a script reads `status --json`)
        _render_status_lines(console, reports)
        return
    table = Table(title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("bot", "status", "strategy", "process", "heartbeat"):
        table.add_column(column, no_wrap=True)
    table.add_column("positions (stop)", min_width=12)  # (the one that may wrap)
    table.add_column("today", no_wrap=True)  # PnL (trades)
    table.add_column("all time", no_wrap=True)
    notes = []
    for r in reports:
        style = STATUS_STYLE.get(BotStatus(r.status), "white")
        table.add_row(
            r.bot_id,
            f"[{style}]{r.status.replace('_', ' ')}[/]",
            escape(r.strategy or "-"),
            _process(r),
            _heartbeat(r),
            _positions(r) or "-",
            f"{r.pnl_today} ({r.trades_today})",
            f"{r.pnl_total} ({r.trades_total})",
        )
        notes += [f"[bold]{escape(r.bot_id)}[/]: {note}" for note in _trouble(r)]
    console.print(table)
    for note in notes:
        console.print(note)


WIDE_STATUS = 110
"""Columns a terminal needs for the tables of `status` and `state show`; a narrower one
gets lines instead."""


def _render_status_lines(console: Console, reports: list[BotReport]) -> None:
    """`status` in a narrow terminal (80 columns): a few short lines a bot, nothing cut."""
    for r in reports:
        style = STATUS_STYLE.get(BotStatus(r.status), "white")
        console.print(
            f"[bold]{escape(r.bot_id)}[/]  [{style}]{r.status.replace('_', ' ')}[/]"
            f"  {escape(r.strategy or '-')}  {_process(r, 'no process')},"
            f" heartbeat {_heartbeat(r)}"
        )
        console.print(f"  positions (stop): {_positions(r) or 'none'}")
        console.print(
            f"  PnL today {r.pnl_today} ({r.trades_today} trades),"
            f" all time {r.pnl_total} ({r.trades_total} trades)"
        )
        for note in _trouble(r):
            console.print(f"  {note}")


def _positions(r: BotReport) -> str:
    return ", ".join(
        f"{p.side} {p.size} {p.symbol} ({p.stop_price if p.stop_live else '[red]NO STOP[/]'}"
        + (f", take-profit {p.take_profit})" if p.take_profit else ")")
        for p in r.positions
    )


def _process(r: BotReport, none: str = "[bright_black]-[/]") -> str:
    if r.pid and r.uptime_seconds is not None:
        return f"pid {r.pid}, up {span(r.uptime_seconds)}"
    return f"pid {r.pid}" if r.pid else none


def _heartbeat(r: BotReport) -> str:
    return f"{span(r.heartbeat_seconds)} ago" if r.heartbeat_seconds is not None else "never"


def config_as_json(config: BotConfig) -> dict[str, Any]:
    """A bot's config as the API shows it: keys masked, passwords out of URLs."""
    shown = config.model_dump(mode="json")  # SecretStr fields come out masked
    state = shown["state"]
    state["redis"]["url"] = redact_url(state["redis"]["url"])
    state["postgres"]["dsn"] = redact_url(state["postgres"]["dsn"])
    return shown


def _trouble(report: BotReport) -> list[str]:
    """What an operator should read: the error, what needs them, the breaker, what is
    unread."""
    notes = []
    if report.last_error:
        notes.append(f"[red]{escape(report.last_error)}[/]")
    elif report.attention:
        notes.append(f"[yellow]{escape(report.attention)}[/]")
    elif report.problem:
        notes.append(escape(report.problem))
    if report.breaker:
        notes.append(f"[red]breaker on: {escape(report.breaker)}[/]")
    return notes


def render_account(console: Console, view: AccountView) -> None:
    """`botwarden account`: the venue's side, the bot's side, the differences in red."""
    balance = view.balance
    if balance is not None:
        console.print(
            f"[bold]{view.bot_id}[/] on {escape(view.venue)}: cash {money(balance.cash)}"
            f" {balance.currency}, equity {money(balance.equity)}, buying power"
            f" {money(balance.buying_power)}"
        )
    positions = Table(title="Positions", title_justify="left")
    for column in ("symbol", "the venue", "the bot", "its stop", "difference"):
        positions.add_column(column)
    for row in view.positions:
        positions.add_row(
            row.symbol, row.venue or "-", row.bot or "-", row.stop or "-",
            f"[red]{escape(row.difference)}[/]" if row.difference else "[green]agree[/]",
        )  # fmt: skip
    orders = Table(title="Open orders", title_justify="left")
    for column in ("client order id", "symbol", "order", "the venue", "the bot", "difference"):
        orders.add_column(column)
    for o in view.orders:
        orders.add_row(
            o.client_order_id, o.symbol, o.order, o.venue or "-", o.bot or "-",
            f"[red]{escape(o.difference)}[/]" if o.difference else "",
        )  # fmt: skip
    console.print(positions if view.positions else "[bright_black]no positions[/]")
    console.print(orders if view.orders else "[bright_black]no open orders[/]")
    for note in view.notes:
        console.print(f"[yellow]{escape(note)}[/]")
    if view.differences:
        console.print(f"[red]{view.differences} difference(s)[/]")
    else:
        console.print("[green]the venue and the bot agree[/]")


def render_strategies(console: Console, found: list[Available], folder: Path) -> None:
    """`botwarden strategies`: one row per strategy, what cannot be used in red."""
    table = Table(title_justify="left")
    table.add_column("strategy", overflow="fold")
    table.add_column("from", overflow="fold")
    table.add_column("in a config", no_wrap=True)  # whole, on one line: it is copied
    table.add_column("about", ratio=1)
    for s in found:
        where = s.origin.where
        if s.origin.kind == "file":
            where = _shown_path(Path(where))
        naming = ", ".join(f"{key}: {value}" for key, value in s.config.items())
        about = Text(s.problem, style="red") if s.problem else Text(s.summary)
        # Text, not markup: a user's docstring or error is shown as written (no
        # [markup], no :emoji: codes).
        table.add_row(Text(s.name), Text(f"{s.origin.kind}: {where}"), Text(naming), about)
    console.print(table)
    if not (folder / "strategies").is_dir():
        console.print(
            f"no strategies/ folder in {escape(str(folder))}: `botwarden new-strategy NAME`"
            " writes one to start from",
            highlight=False,
        )


def _shown_path(path: Path) -> str:
    """`path` from the working directory when it is below it, else in full."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


TRADE_COLUMNS = (
    "exit_time", "symbol", "side", "qty", "entry_price", "exit_price", "fees", "pnl",
    "held_seconds", "entry_time", "closed_by", "position_id",
)  # fmt: skip
"""The columns of `botwarden trades --csv`, in order."""


def since_time(text: str, now: datetime, name: str = "--since") -> datetime:
    """`--since` as a UTC time: a date, a time, or a length of time before `now` (`7d`:
    by the bot's clock, which on a paper exchange running fast is the exchange's)."""
    from datetime import UTC

    from botwarden.domain.models import parse_duration
    from botwarden.errors import ConfigError

    try:
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            return now - parse_duration(text)
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except (ValueError, OverflowError):  # (not a time; or before the year 1)
        raise ConfigError(
            f"{name} {text!r}: give a UTC date or time (2026-11-01, 2026-11-01T14:00)"
            " or a length of time ago (7d, 24h)"
        ) from None


def trades_as_csv(trades: list[Any]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TRADE_COLUMNS)
    for t in trades:
        held = (t.exit_time - t.entry_time).total_seconds()
        writer.writerow([
            t.exit_time.isoformat(), t.symbol, t.side.value, t.qty, t.entry_price,
            t.exit_price, t.fees, t.pnl, f"{held:g}", t.entry_time.isoformat(), t.closed_by,
            t.position_id,
        ])  # fmt: skip
    return out.getvalue()


PERIODS = {"today": "today", "7d": "7 days", "30d": "30 days", "all": "all time"}


def pnl_periods(book: Any, days: dict[Any, Any], today: Any) -> dict[str, Any]:
    """PnlSum of today, of the last 7 and 30 trading days and of all time (`PERIODS`)."""
    from datetime import timedelta as days_ago

    from botwarden.domain.models import PnlSum

    def since(first: Any) -> Any:
        return sum((s for d, s in days.items() if first <= d <= today), PnlSum())

    return {
        "today": days.get(today, PnlSum()),
        "7d": since(today - days_ago(days=6)),
        "30d": since(today - days_ago(days=29)),
        "all": book.total if book is not None else PnlSum(),
    }


def render_trades(
    console: Console,
    bot_id: str,
    trades: list[Any],
    book: Any,
    days: dict[Any, Any],
    today: Any,
    since: datetime | None = None,
    price_places: dict[str, int | None] | None = None,
    clock: str = "",
) -> None:
    """The trades (closed from `since`), then the PnL of `today` (the bot's trading day
    now), of the last 7 and 30 trading days, and of all time. `price_places`: each
    symbol's, as its market writes prices (from the bot's market view), where known;
    `clock`: said of the times after "UTC" (", by the paper exchange's clock")."""
    places_of = price_places or {}

    def price(symbol: str, value: Any) -> str:
        shown = places_of.get(symbol)
        return str(value) if shown is None else f"{value:.{shown}f}"

    title = f"Closed trades of {bot_id} (times in UTC{clock})"
    table = Table(title=title, title_justify="left", box=box.SIMPLE)
    for column in ("closed", "symbol", "side", "qty", "entry", "exit", "fees", "PnL", "held"):
        table.add_column(column, justify="right" if column in ("qty", "fees", "PnL") else "left")
    for t in trades:
        held = span((t.exit_time - t.entry_time).total_seconds())
        style = "green" if t.pnl > 0 else "red" if t.pnl < 0 else ""
        table.add_row(
            f"{t.exit_time:%Y-%m-%d %H:%M}", t.symbol, t.side.value, str(t.qty),
            price(t.symbol, t.entry_price), price(t.symbol, t.exit_price), money(t.fees),
            f"[{style}]{money(t.pnl)}[/]" if style else money(t.pnl), held,
        )  # fmt: skip
    nothing = f"no closed trades{f' since {since:%Y-%m-%d %H:%M} UTC' if since else ''}"
    console.print(table if trades else f"[bright_black]{nothing}[/]")
    periods = Table(box=box.SIMPLE, title=f"PnL (trading day {today})", title_justify="left")
    for column in ("", "trades", "won", "fees", "PnL"):
        periods.add_column(column, justify="right")
    for key, summed in pnl_periods(book, days, today).items():
        label = PERIODS[key]
        won = f"{summed.wins / summed.trades:.0%}" if summed.trades else "-"
        periods.add_row(label, str(summed.trades), won, money(summed.fees), money(summed.pnl))
    console.print(periods)


def unrealized_pnl(position: Any, price: Any) -> Any:
    """What `position` would make closed at `price`, before the fees of its exit."""
    gain = (price - position.entry_price) * position.size
    return (gain if position.side.value == "long" else -gain) - position.entry_fees


def market_as_json(
    config: BotConfig,
    state: Any,
    seen: dict[str, Any] | None,
    stops_live: dict[str, bool | None],
    trades: list[Any],
    purposes: dict[str, Any],
) -> dict[str, Any]:
    """The dashboard's picture of a bot's market: each symbol's recent bars and price
    (as its last pass saw them: `seen`, the market view file), its position with the
    stop, the take-profit and the unrealized PnL, and the trades closed on those bars
    with what closed each; the account's balance and equity. Money and prices are
    strings at full precision, with the decimal places each market shows them with."""
    from decimal import Decimal

    from botwarden.domain.timeframes import width

    seen = seen or {}
    shown, unrealized = [], Decimal(0)
    positions = {p.symbol: p for p in state.positions.values()}
    for symbol in config.symbols:
        there = seen.get("symbols", {}).get(symbol, {})
        price = Decimal(there["price"]) if "price" in there else None
        held = positions.get(symbol)
        position = None
        if held is not None:
            pnl = None if price is None else unrealized_pnl(held, price)
            unrealized += pnl or 0
            position = {
                "side": held.side.value,
                "size": str(held.size),
                "entry_price": str(held.entry_price),
                "entry_time": held.entry_time.isoformat(),
                "stop_price": None if held.stop_price is None else str(held.stop_price),
                "take_profit": None if held.take_profit is None else str(held.take_profit),
                "stop_live": stops_live.get(symbol),
                "unrealized_pnl": None if pnl is None else str(pnl),
            }
        closed = [
            {
                "side": t.side.value,
                "qty": str(t.qty),
                "entry_time": t.entry_time.isoformat(),
                "entry_price": str(t.entry_price),
                "exit_time": t.exit_time.isoformat(),
                "exit_price": str(t.exit_price),
                "pnl": str(t.pnl),
                "exit_reason": getattr(purposes.get(t.closed_by), "value", "exit"),
            }
            for t in trades
            if t.symbol == symbol
        ]
        shown.append({
            "symbol": symbol,
            "price": there.get("price"),
            "price_places": there.get("price_places"),
            "qty_places": there.get("qty_places"),
            "bars": there.get("bars", {"time": [], "open": [], "high": [], "low": [], "close": []}),
            "position": position,
            "trades": closed,
        })  # fmt: skip
    balance = seen.get("balance")
    timeframe = seen.get("timeframe", config.strategy.timeframe)
    return {
        "bot_id": config.bot_id,
        "seen_at": seen.get("time"),
        "speed": seen.get("speed", 1.0),
        "timeframe": timeframe,
        "bar_seconds": width(timeframe).total_seconds(),
        "balance": balance,
        "equity": None if balance is None else balance["equity"],
        "unrealized_pnl": str(unrealized),
        "symbols": shown,
    }
