"""The `botwarden` command. It parses, calls the library, and prints; nothing more.

An operator's mistake (a bad config, an unreadable state file, a server that is down)
is printed as one line on stderr, with exit code 2 for config errors and 1 otherwise.
A traceback means a bug in botwarden.

The commands are click's: typer (which it was written with) builds a pydantic adapter
for every parameter it parses and imports its rich help at every `--help`, about
0.1 s before any command begins; a command here imports what it uses, in its body.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from botwarden import __version__
from botwarden.errors import BotwardenError, ConfigError, StateError
from botwarden.process.logs import LogFormat
from botwarden.venues.emulators.apis import EmulatedApi

if TYPE_CHECKING:
    from rich.console import Console

    from botwarden.config import BotConfig
    from botwarden.state.base import StateStore


class _ListedWhole:
    """A command listed in its group's help with the whole first paragraph of its help
    (click cuts it at the first sentence, to 45 characters)."""

    help: str | None

    def get_short_help_str(self, limit: int = 45) -> str:
        return " ".join(inspect.cleandoc(self.help or "").split("\n\n")[0].split())


class _Command(_ListedWhole, click.Command):
    pass


class _Group(_ListedWhole, click.Group):
    """Its commands listed as they are defined (not sorted), the groups last."""

    command_class = _Command
    group_class = type

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands, key=lambda name: isinstance(self.commands[name], click.Group))


@functools.cache
def _rich(stderr: bool = False) -> Console:
    """A rich console, for the commands that draw tables or progress bars (what prints a
    line prints it with click, and never imports rich)."""
    from rich.console import Console

    return Console(stderr=stderr)


def _run(work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, imported by the commands that run something (not by `--help`)."""
    import asyncio

    return asyncio.run(work)


T = TypeVar("T")

FILE = click.Path(path_type=Path)
config_argument = click.argument(
    "config", type=FILE, help="The bot's config file (YAML, JSON or TOML)."
)
bot_argument = click.argument("bot", help="The bot's id (`bot_id` in its config).")
timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    help="Seconds to wait after SIGTERM before SIGKILL.",
)

takeover_option = click.option(
    "--takeover",
    is_flag=True,
    help="Take the bot over from an instance on another host that holds its lease (a"
    " store hosts share): that instance is fenced out, its next write and order refused.",
)

standby_option = click.option(
    "--standby",
    is_flag=True,
    help="While an instance on another host holds the bot's lease, stand by (status"
    " `standby`) and take over, recovery first, once its lease runs out.",
)


def _json_option(instead_of: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--json", "as_json", is_flag=True, help=f"Print JSON instead of {instead_of}."
    )


def _version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        click.echo(f"botwarden {__version__}")
        ctx.exit()


@click.group(cls=_Group, no_args_is_help=True, context_settings={"show_default": True})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version,
    help="Show the version.",
)
def app() -> None:
    """botwarden: a crash-safe runtime for trading bots."""


@app.group("state", no_args_is_help=True)
def state_app() -> None:
    """Inspect, export and import a bot's state."""


@app.group("venue", no_args_is_help=True)
def venue_app() -> None:
    """Run local emulators of real venues."""


@app.group("keys", no_args_is_help=True)
def keys_app() -> None:
    """Venue keys stored through the API."""


@asynccontextmanager
async def _opened_store(config: BotConfig, *, existing: bool) -> AsyncIterator[StateStore]:
    """The bot's store, opened. With `existing` (the commands that only look), the bot
    must already have state there and the store is read-only: looking never creates,
    changes or moves a state file, and a mistyped bot id is an error, not an empty
    report. The records are not decoded here, so a broken one can still be exported,
    mended and imported back."""
    from botwarden.state.factory import open_store

    store = open_store(config.state, config.bot_id, config.base_dir, readonly=existing)
    path = getattr(store, "path", None)
    if existing and path is not None and not path.exists():
        raise StateError(f"bot {config.bot_id} has no state yet: {path} does not exist")
    await store.open()
    try:
        if existing and config.bot_id not in await store.flows():
            raise StateError(f"bot {config.bot_id} has no state in {store.describe()}")
        yield store
    finally:
        await store.close()


@state_app.command("show")
@config_argument
@_json_option("tables")
def state_show(config: Path, as_json: bool) -> None:
    """Positions, pending order intents, risk, signals and status of one bot."""
    from botwarden.config import load_config
    from botwarden.state.factory import StoredBot
    from botwarden.state.manager import utc_now
    from botwarden.views import RECENT_FILLS, render_state, state_as_json

    settings = load_config(config)

    async def show() -> None:
        async with _opened_store(settings, existing=True) as store:
            where = store.describe()
            stored = await StoredBot.read(
                store, settings.bot_id, newest_fills=RECENT_FILLS, count_fills=True
            )
        if as_json:
            retention = settings.state.signal_retention
            document = state_as_json(stored, where, utc_now(), retention)
            sys.stdout.write(json.dumps(document, indent=2) + "\n")
        else:
            render_state(_rich(), stored, where, utc_now())

    _run(show())


@state_app.command("export")
@config_argument
@click.option("--output", "-o", type=FILE, help="Write here instead of stdout.")
def state_export(config: Path, output: Path | None) -> None:
    """Write all of one bot's state as JSON, record for record (to move it to another
    store, keep a copy, or mend a broken record by hand and import it back)."""
    from botwarden.config import load_config
    from botwarden.state.manager import utc_now
    from botwarden.state.transfer import export_state

    settings = load_config(config)

    async def export() -> dict:
        async with _opened_store(settings, existing=True) as store:
            return await export_state(store, settings.bot_id, utc_now())

    text = json.dumps(_run(export()), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"exported bot {settings.bot_id} to {output}", err=True)


@state_app.command("import")
@config_argument
@click.argument("file", type=FILE, help="A file written by `botwarden state export`.")
@click.option("--replace", is_flag=True, help="Replace the state the store already holds.")
def state_import(config: Path, file: Path, replace: bool) -> None:
    """Load an export into the store this config names: every record checked first,
    then all of them in one atomic write."""
    from botwarden.config import load_config
    from botwarden.state.transfer import import_state

    settings = load_config(config)

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not a number an export can hold")

    try:
        document = json.loads(file.read_text(encoding="utf-8"), parse_constant=refuse)
    except FileNotFoundError:
        raise StateError(f"{file}: no such file") from None
    except (OSError, ValueError) as error:  # ValueError: bad JSON, bad text, NaN
        raise StateError(f"{file}: not a readable JSON export: {error}") from None

    async def load() -> tuple[int, str]:
        async with _opened_store(settings, existing=False) as store:
            count = await import_state(store, settings.bot_id, document, str(file), replace=replace)
            return count, store.describe()

    count, where = _run(load())
    click.echo(f"imported {count} records of bot {settings.bot_id} into {where}", err=True)


@keys_app.command("master")
def keys_master() -> None:
    """Print a new master key for BOTWARDEN_MASTER_KEY (stored keys are encrypted with
    it; keep it apart from them: a secret manager, a systemd credential)."""
    from botwarden.keystore import new_master_key

    sys.stdout.write(new_master_key() + "\n")


@keys_app.command("list")
def keys_list() -> None:
    """The stored keys: name, last four characters, when stored (never the key)."""
    from botwarden.keystore import KeyStore
    from botwarden.process.home import botwarden_home

    for key in KeyStore(botwarden_home()).list():
        click.echo(f"{key.name}  ...{key.last4}  {key.created_at}")


@venue_app.command("serve")
@click.option(
    "--api", type=click.Choice(EmulatedApi), default=EmulatedApi.alpaca, help="Whose API to speak."
)
@click.option("--port", default=8710, help="TCP port.")
@click.option("--host", default="127.0.0.1", help="Address to listen on.")
@click.option(
    "--key", envvar="BOTWARDEN_EMULATOR_KEY", show_envvar=True, help="Accept only this API key."
)
@click.option(
    "--secret", envvar="BOTWARDEN_EMULATOR_SECRET", show_envvar=True, help="...and this secret."
)
@click.option(
    "--faults", default="", show_default=False, help="Faults to inject (see docs/venues.md)."
)
@click.option(
    "--book",
    type=FILE,
    help="The exchange's book, kept across restarts [default: state/emulator-API.db].",
)
@click.option("--seed", default=7, help="Decides the price path.")
@click.option("--speed", default=1.0, help="Exchange time per wall-clock time.")
@click.option("--access-log", is_flag=True, help="Print a line for every request served.")
def venue_serve(
    api: EmulatedApi,
    port: int,
    host: str,
    key: str | None,
    secret: str | None,
    faults: str,
    book: Path | None,
    seed: int,
    speed: float,
    access_log: bool,
) -> None:
    """Serve a venue's real API on this machine, backed by the paper exchange: point an
    unmodified SDK (alpaca-py, ccxt) or bot at it to rehearse fills, stops and outages."""
    import uvicorn

    from botwarden.config import describe_validation_error
    from botwarden.venues.emulators.apis import create_app, paper_settings
    from botwarden.venues.factory import open_paper_venue
    from botwarden.venues.settings import PaperVenueSettings

    if (key is None) != (secret is None):
        raise ConfigError("--key and --secret go together (or set neither)")
    from pydantic import ValidationError

    try:
        path = str(book or f"state/emulator-{api.value}.db")
        settings = PaperVenueSettings(
            path=path, faults=faults, seed=seed, speed=speed, **paper_settings(api)
        )
    except ValidationError as error:
        raise ConfigError(
            f"venue serve: {describe_validation_error(error, PaperVenueSettings)}"
        ) from None
    venue = open_paper_venue(settings, api.value, Path.cwd())
    auth = "only the given key" if key else "any key"
    click.echo(
        f"{api.value} emulator on http://{host}:{port}, book {venue.book.path}, {auth}", err=True
    )
    app = create_app(api, venue, key, secret)
    server = uvicorn.Config(app, host=host, port=port, log_level="warning")
    if access_log:  # uvicorn's access lines are at info, below the level of the rest
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    uvicorn.Server(server).run()


@app.command("run")
@config_argument
@click.option("--ticks", type=int, help="Stop after this many passes (default: run until stopped).")
@click.option(
    "--log-format",
    type=click.Choice(LogFormat),
    default=LogFormat.text,
    help="The log file's format.",
)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="Not what each pass decided, symbol by symbol: only orders, fills and worse"
    " (the log file keeps every line).",
)
@takeover_option
@standby_option
def run(
    config: Path,
    ticks: int | None,
    log_format: LogFormat,
    quiet: bool,
    takeover: bool,
    standby: bool,
) -> None:
    """Run a bot in the foreground until SIGTERM or Ctrl-C: recovery first, then the loop.

    Each pass says what the strategy made of each symbol (waiting for bars, no signal,
    a signal and what became of it); --quiet leaves that to the log file. One instance
    per bot: a second one exits at once, naming the first one's PID (on this host) or
    its host, PID and lease (on a store hosts share), unless --takeover, or --standby
    (then it waits, and takes over once that instance's lease runs out).
    """
    from botwarden.config import load_config
    from botwarden.process.home import bot_files
    from botwarden.process.lock import holder, lock_path
    from botwarden.process.run import run_bot

    settings = load_config(config)
    settings.require_markets()
    strategy = settings.load_strategy()  # a broken one is one line, before anything is made
    files = bot_files(settings.bot_id)
    if holder(lock_path(settings)) is None:  # (a running one: "already running", first)
        files.refuse_if_driven_by_code(settings.default_strategy)
    files.make()
    path = files.log
    _log_to(path, log_format, decisions=not quiet)
    click.echo(f"bot {settings.bot_id}: log in {path}", err=True)
    # Remembered for status, stop and logs once this config really runs the bot (its
    # lock held, its state open): a run refused earlier takes nothing over.
    remember = lambda: files.remember(config, lock_path(settings))  # noqa: E731
    if takeover and standby:
        raise click.UsageError("--takeover and --standby: one or the other")
    _run(
        run_bot(
            settings,
            ticks=ticks,
            on_running=remember,
            strategy=strategy,
            takeover=takeover,
            standby=standby,
        )
    )


def _log_to(path: Path, log_format: LogFormat, decisions: bool = True) -> None:
    """The bot's log file, and its progress on the console (with `decisions`, what
    each pass decided too)."""
    from botwarden.process.logs import bot_log_handler

    root = logging.getLogger("botwarden")
    root.setLevel(logging.INFO)
    root.addHandler(bot_log_handler(path, log_format))
    from botwarden.process.home import READY_FD

    if READY_FD in os.environ:
        return  # started detached: the console is console.log, for warnings and worse
    for console_handler in logging.getLogger().handlers:
        console_handler.setLevel(logging.INFO)
        if not decisions:
            console_handler.addFilter(lambda record: record.name != "botwarden.decisions")


@app.command("start")
@config_argument
@takeover_option
@standby_option
def start(config: Path, takeover: bool, standby: bool) -> None:
    """Start a bot in the background (its own session and process group), once.

    Refused, naming the PID, if the bot already runs (on another host sharing its
    store: naming the host, unless --takeover). Returns once the new process holds the
    bot's lock and lease; if it exits first, its reason is the error.
    """
    from botwarden.config import load_config
    from botwarden.process.supervisor import Supervisor

    supervisor = Supervisor()
    if takeover and standby:
        raise click.UsageError("--takeover and --standby: one or the other")
    launch = supervisor.start(config, takeover=takeover, standby=standby)
    files = supervisor.files(load_config(config).bot_id)
    if launch.confirmed:
        said = f"started bot {files.bot_id} (pid {launch.pid}); log: {files.log}"
    else:
        said = (
            f"launched bot {files.bot_id} (pid {launch.pid}), but it has not said it started"
            f" after {supervisor.start_wait:g}s: see `botwarden status` and {files.log}"
        )
    click.echo(said)


@app.command("stop")
@bot_argument
@timeout_option
def stop(bot: str, timeout: float) -> None:
    """Stop a bot: SIGTERM to its process group, SIGKILL after the timeout; returns once
    nothing of it is left and its lock is free."""
    from botwarden.process.supervisor import Supervisor

    done = Supervisor().stop(bot, timeout)
    if done.pid is None:
        click.echo(f"bot {bot} is not running")
    elif done.killed:
        click.echo(
            f"bot {bot} (pid {done.pid}) ignored SIGTERM for {timeout:g}s: killed with SIGKILL"
        )
    else:
        click.echo(f"stopped bot {bot} (pid {done.pid}) in {done.seconds:.1f}s")


@app.command("restart")
@bot_argument
@timeout_option
def restart(bot: str, timeout: float) -> None:
    """Stop the bot (as `stop`), then start it again from the config it last ran."""
    from botwarden.process.supervisor import Supervisor

    launch = Supervisor().restart(bot, timeout)
    click.echo(f"restarted bot {bot} (pid {launch.pid})")


@app.command("resolve")
@bot_argument
def resolve(bot: str) -> None:
    """Clear "needs attention" once you have looked: a running bot recovers again, now
    acting on what the venue says (manual mode reconciles as sync, a stale state is
    accepted); a stopped one does so at its next start. What is still wrong asks for
    attention again."""
    from botwarden.process.supervisor import Supervisor

    done = Supervisor().resolve(bot)
    if done.pid is None:
        say = f"bot {bot} resolved; it is not running: its next start recovers, acting"
    elif done.status is None:
        say = f"bot {bot} (pid {done.pid}) told; its answer will be in `botwarden logs {bot}`"
    else:
        say = f"bot {bot} resolved: {done.status.replace('_', ' ')}"
        say += "".join(f"\n  {note}" for note in done.notes)
    click.echo(say)


@app.command("account")
@config_argument
@_json_option("tables")
def account(config: Path, as_json: bool) -> None:
    """The balance, positions and open orders as the venue sees them, beside what the
    bot believes, with every difference named. Reads only: nothing is sent or written."""
    from dataclasses import asdict

    from botwarden.config import load_config
    from botwarden.process.account import account_of
    from botwarden.views import render_account

    view = _run(account_of(load_config(config)))
    if as_json:
        balance = view.balance.model_dump(mode="json") if view.balance else None
        shown = {**asdict(view), "balance": balance, "differences": view.differences}
        sys.stdout.write(json.dumps(shown, indent=2) + "\n")
    else:
        render_account(_rich(), view)


@app.command("flatten")
@bot_argument
@click.option("--symbol", help="Only this market [default: every one].")
@click.option("--yes", is_flag=True, help="Mean it: positions are closed at market.")
@timeout_option
def flatten(bot: str, symbol: str | None, yes: bool, timeout: float) -> None:
    """Emergency: stop the bot, cancel its orders and close its positions at market.

    Each exit is written ahead and recorded like any other (its fills, its trade, its
    PnL). The bot is left stopped: `botwarden start` when you are ready.
    """
    from botwarden.process.supervisor import Supervisor

    if not yes:
        raise ConfigError(
            f"flatten closes bot {bot}'s positions at market and leaves it stopped:"
            " add --yes to mean it"
        )
    supervisor = Supervisor()
    files = supervisor.files(bot)
    files.read_record()  # an unknown bot is named before anything else
    _log_to(files.log, LogFormat.text)
    stopped, done = supervisor.flatten(bot, symbol, timeout)
    lines = [
        f"bot {bot} stopped (pid {stopped.pid})" if stopped.pid else f"bot {bot} was not running"
    ]
    lines.append(f"closed at market: {', '.join(done.closed) or 'nothing was held'}")
    if done.still_held or done.still_open:
        lines.append(
            f"NOT FLAT YET: still held {', '.join(done.still_held) or 'nothing'}; orders still"
            f" open {', '.join(done.still_open) or 'none'} (the next start resolves them)"
        )
    click.echo("\n".join(lines))
    if done.still_held or done.still_open:
        sys.exit(1)


@app.command("status")
@click.argument("bot", required=False, help="One bot [default: every bot].")
@_json_option("a table")
def status(bot: str | None, as_json: bool) -> None:
    """Every bot (or one): status, process, uptime, heartbeat, positions and their
    stops, today's PnL and trades, the breaker and the last error."""
    from botwarden.process.supervisor import Supervisor

    supervisor = Supervisor()
    reports = _run(supervisor.reports()) if bot is None else [_run(supervisor.report(bot))]
    if as_json:
        sys.stdout.write(json.dumps([r.as_json() for r in reports], indent=2) + "\n")
    else:
        from botwarden.views import render_status  # (rich: not for --json)

        render_status(_rich(), reports, supervisor.root)


@app.command("trades")
@bot_argument
@click.option(
    "--since",
    help="From this UTC date or time (2026-11-01, 2026-11-01T14:00), or"
    " this long ago (7d, 24h) [default: all].",
)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
def trades(bot: str, since: str | None, as_csv: bool) -> None:
    """The bot's closed trades, oldest first: entry, exit, fees, PnL and how long each
    was held; then its PnL per day, week and all time."""
    from datetime import datetime

    from botwarden.config import load_config
    from botwarden.process.clock import BotTime, bot_time
    from botwarden.process.home import bot_files
    from botwarden.process.market import read_market
    from botwarden.state.factory import StoredBot
    from botwarden.state.history import History
    from botwarden.state.manager import utc_now
    from botwarden.views import render_trades, since_time, trades_as_csv

    config = load_config(Path(bot_files(bot).read_record()["config"]))

    async def read() -> tuple[StoredBot, BotTime, datetime | None, list[Any], dict[Any, Any]]:
        async with _opened_store(config, existing=True) as store:
            history = History(store, config.bot_id)
            stored = await StoredBot.read(store, config.bot_id)
            when = bot_time(config, stored.state, utc_now())
            start = since_time(since, when.now) if since is not None else None
            return stored, when, start, await history.trades(since=start), await history.days()

    stored, when, start, closed, days = _run(read())
    if as_csv:
        sys.stdout.write(trades_as_csv(closed))
    else:
        book = stored.state.pnl
        seen = read_market(bot_files(bot).market) or {}
        places = {s: m.get("price_places") for s, m in seen.get("symbols", {}).items()}
        clock = ", by the paper exchange's clock" if when.own else ""
        render_trades(_rich(), config.bot_id, closed, book, days, when.today, start, places, clock)


@app.command("backtest")
@config_argument
@click.option(
    "--from", "start", metavar="DATE", help="The first day traded [default: the data's first]."
)
@click.option(
    "--to",
    "end",
    metavar="DATE",
    help="The last day traded, itself included [default: the data's last].",
)
@click.option(
    "--data",
    type=FILE,
    help="A CSV or Parquet file of bars, or a folder of them (a file a symbol)"
    " [default: the config's backtest.data].",
)
@click.option(
    "--out",
    type=FILE,
    help="A new folder for trades.csv, equity.csv, summary.json and report.html"
    " [default: print the summary only].",
)
@click.option(
    "--kills",
    type=click.IntRange(min=0),
    default=0,
    help="Run it again in a process killed with SIGKILL this many times (and started"
    " again), and compare the two.",
)
@click.option("--seed", type=int, default=0, help="Draws the moments of the kills.")
def backtest(
    config: Path,
    start: str | None,
    end: str | None,
    data: Path | None,
    out: Path | None,
    kills: int,
    seed: int,
) -> None:
    """Run the bot's strategy, sizing, stops, take-profits and risk guards over recorded
    bars, through the same engine and paper book it trades with (docs/backtesting.md)."""
    from botwarden.backtest.report import render_summary
    from botwarden.backtest.run import Plan
    from botwarden.backtest.session import backtest as run_backtest

    plan = Plan.read(config, data, start, end)
    passes = len(plan.passes())
    argv = [str(config.resolve()), str(data.resolve()) if data else "-", start or "-", end or "-"]
    console = _rich(stderr=True)
    with console.status(f"backtest: {passes} bars", spinner="line") as shown:
        done = 0

        def each_pass(at: object) -> None:
            nonlocal done
            done += 1
            if done % 25 == 0:
                shown.update(f"backtest: bar {done} of {passes}")

        outcome = run_backtest(plan, argv, out, kills, seed, each_pass)
    render_summary(_rich(), outcome.results, f"backtest of {plan.config.bot_id}")
    if outcome.kills is not None:
        record = outcome.kills
        same = "the same trades and final equity" if not outcome.differences else "DIFFERENT"
        click.echo(
            f"killed with SIGKILL {len(record.done)} times of {record.wanted} asked"
            f" (started {record.starts} times): {same} as the run never killed"
        )
        for line in outcome.differences:
            click.echo(f"  {line}")
    if outcome.written is not None:
        click.echo(
            f"written in {outcome.written}: trades.csv, equity.csv, summary.json, report.html"
            " (open it in a browser)"
        )
    if outcome.differences:
        raise SystemExit(1)


@app.command("logs")
@bot_argument
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines.")
@click.option("--lines", "-n", type=click.IntRange(min=0), default=50, help="How many last lines.")
def logs(bot: str, follow: bool, lines: int) -> None:
    """The bot's log (the last lines; with -f, then every new line until Ctrl-C)."""
    from botwarden.process.home import bot_files
    from botwarden.process.logs import follow_log, last_lines

    files = bot_files(bot)
    files.read_record()  # an unknown bot is an error, not an empty log
    for line in last_lines(files.log, lines):
        sys.stdout.write(line)
    sys.stdout.flush()
    if follow:
        for line in follow_log(files.log):
            sys.stdout.write(line)
            sys.stdout.flush()


@app.command("serve")
@click.option(
    "--host",
    envvar="BOTWARDEN_API_HOST",
    show_envvar=True,
    default="127.0.0.1",
    help="Address to listen on.",
)
@click.option(
    "--port", envvar="BOTWARDEN_API_PORT", show_envvar=True, default=8700, help="TCP port."
)
def serve(host: str, port: int) -> None:
    """The control API and the live dashboard, over every bot of this home.

    Every route but /healthz asks for the API token (`Authorization: Bearer TOKEN`),
    made at the first start, kept in $BOTWARDEN_HOME/api-token (mode 0600) and shown
    that once.
    """
    import uvicorn

    from botwarden.api.app import create_app
    from botwarden.api.auth import load_or_create_token, token_path
    from botwarden.process.supervisor import Supervisor

    supervisor = Supervisor()
    token, new = load_or_create_token(supervisor.root)
    address = f"http://{host}:{port}/"
    if new:
        click.echo(
            f"a new API token, shown this once (kept in {token_path(supervisor.root)},"
            f" mode 0600):\n  {token}\ndashboard, signed in: {address}#token={token}",
            err=True,
        )
    else:
        click.echo(f"dashboard: {address} (the token: {token_path(supervisor.root)})", err=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("botwarden").warning(
            "listening on %s: beyond this machine the token is the only guard, and plain"
            " HTTP carries it in clear; put TLS in front (a reverse proxy)",
            host,
        )
    app = create_app(supervisor, token)
    # Event streams stay open until their browser goes: a stop waits for them a moment.
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)


dir_option = click.option(
    "--dir",
    "directory",
    type=FILE,
    default=Path("."),
    show_default="the current one",
    help="The project's folder.",
)


@app.command("new-strategy")
@click.argument("name", help="Its name, a Python name: rsi, mean_reversion.")
@dir_option
def new_strategy(name: str, directory: Path) -> None:
    """Write a strategy to start from (strategies/NAME.py), its tests
    (tests/test_NAME.py) and, unless there is one, a bot trading it on the paper
    exchange (NAME.yaml). Nothing is ever overwritten."""
    import shlex

    from botwarden.strategies.template import write_new_strategy

    written = write_new_strategy(directory, name)
    width = max(len(str(w.path)) for w in written)
    lines = [f"{'kept ' if w.kept else 'wrote'} {w.path!s:<{width}}  {w.what}" for w in written]
    test, config = (shlex.quote(str(w.path)) for w in written[1:])
    lines += ["next:", f"  pytest {test}"]
    if not written[2].kept:
        lines += [f"  botwarden run {config} --ticks 5", f"  botwarden torture --config {config}"]
    click.echo("\n".join(lines))


@app.command("strategies")
@dir_option
@_json_option("a table")
def strategies(directory: Path, as_json: bool) -> None:
    """The strategies a config can name, and where each comes from: botwarden's, those
    installed packages register, and the classes in strategies/*.py, with how a
    config names each. Reads only (no file is written, no bytecode cache either)."""
    from botwarden.strategies.catalog import available
    from botwarden.views import render_strategies

    if not directory.is_dir():
        raise ConfigError(f"strategies: --dir {directory}: no such folder")
    found = available(directory)
    if as_json:
        sys.stdout.write(json.dumps([s.as_json() for s in found], indent=2) + "\n")
    else:
        render_strategies(_rich(), found, directory)


@app.command("demo")
@click.argument(
    "config",
    type=FILE,
    required=False,
    help="A bot on the paper exchange [default: examples/golden_cross.yaml].",
)
@click.option("--kills", type=click.IntRange(min=1), default=3, help="SIGKILLs during the run.")
@click.option("--seconds", type=float, default=60, help="How long to trade, in wall-clock seconds.")
@click.option("--seed", type=int, help="Replays a run's kill times.")
@click.option(
    "--dir",
    "directory",
    type=FILE,
    help="Where the bot's files go [default: a new temp folder].",
)
def demo(
    config: Path | None, kills: int, seconds: float, seed: int | None, directory: Path | None
) -> None:
    """The golden-cross bot on the paper exchange, killed with SIGKILL and restarted;
    then every promise (I1 to I6) checked against the exchange's own records."""
    from botwarden.demo import run_demo

    code = run_demo(_rich(), config, kills=kills, seconds=seconds, seed=seed, workdir=directory)
    sys.exit(code)


@app.command("torture")
@click.option(
    "--seeds", type=click.IntRange(min=1), default=100, help="How many seeds to simulate."
)
@click.option("--seed-base", default=0, help="The first seed.")
@click.option(
    "--days", type=click.FloatRange(min=0.01), default=1.0, help="Simulated days per seed."
)
@click.option(
    "--faults",
    default="all",
    show_default=False,
    help="Fault kinds to inject, comma-separated, or 'none' [default: all].",
)
@click.option(
    "--config",
    type=FILE,
    help="Simulate this bot (its strategy, sizing, stops, guards, recovery).",
)
@click.option(
    "--store",
    default="sqlite",
    help="The state backend: sqlite, duckdb, jsonfile, redis or postgres.",
)
@click.option("--store-url", help="The Redis URL or PostgreSQL DSN [default: the config's].")
@click.option(
    "--jobs",
    type=click.IntRange(min=0),
    default=0,
    show_default=False,
    help="Seeds run in this many processes [default: one per CPU]; real trials"
    " this many at a time [default: three per CPU].",
)
@click.option(
    "--history-dir",
    type=FILE,
    default=Path("torture-histories"),
    help="Where a failing seed's history is written.",
)
@click.option("--real", is_flag=True, help="Real processes killed with SIGKILL, not a simulation.")
@click.option(
    "--trials", type=click.IntRange(min=1), default=20, help="With --real: how many trials."
)
@click.option(
    "--history",
    type=click.IntRange(min=0),
    default=0,
    help="With --real: each trial's bot starts beside a past of this many records"
    " (closed round trips: intents and fills) on the exchange and in its state.",
)
def torture(
    seeds: int,
    seed_base: int,
    days: float,
    faults: str,
    config: Path | None,
    store: str,
    store_url: str | None,
    jobs: int,
    history_dir: Path,
    real: bool,
    trials: int,
    history: int,
) -> None:
    """Deterministic simulation: the real engine and store on the paper exchange, with
    the seed's faults and crashes, every promise checked; a failing seed is printed
    with its history and the command that replays it. With --real: the exchange and
    the bot as real processes, the bot killed, frozen and doubled, its disk filled
    (as root: a tmpfs). Exit status 1 on any failure."""
    if history and not real:
        raise click.UsageError("--history is for real trials: add --real")
    if real:
        from botwarden.torture.real import default_jobs, print_real_summary, run_real_campaign

        outcome = _with_progress(
            "killing",
            trials,
            lambda advance: run_real_campaign(
                range(seed_base, seed_base + trials),
                jobs=jobs or default_jobs(),
                progress=advance,
                history=history,
            ),
        )
        print_real_summary(_rich(), outcome)
        sys.exit(1 if outcome.failed else 0)

    from botwarden.torture.campaign import print_summary, run_campaign
    from botwarden.torture.simulation import parse_options

    options = parse_options(
        days=days, faults=faults, config=config, store=store, store_url=store_url
    )
    if options.config is not None:
        _warn_if_its_venue_refuses(options.config)
    summary = _with_progress(
        "simulating",
        seeds,
        lambda advance: run_campaign(
            range(seed_base, seed_base + seeds),
            options,
            jobs=jobs or os.cpu_count() or 1,
            history_dir=history_dir,
            progress=advance,
        ),
    )
    print_summary(_rich(), summary, options, config)
    sys.exit(1 if summary.failures or summary.strategy_failures else 0)


def _warn_if_its_venue_refuses(config: BotConfig) -> None:
    """The simulation runs a bot on the paper exchange: what its own venue would refuse
    (a take-profit where none can rest beside a stop) is said before it runs. A paper
    venue is asked on a book of its own in a scratch folder: the bot's book is never
    opened (opening it starts its exchange's clock, or meets the bot's running one)."""
    import tempfile

    from botwarden.engine.runner import require_fit
    from botwarden.process.run import open_bot_venue
    from botwarden.venues.settings import PaperVenueSettings

    with tempfile.TemporaryDirectory(prefix="botwarden-fit-") as scratch:
        if isinstance(config.venue, PaperVenueSettings):
            book = str(Path(scratch) / "book.db")
            config = config.model_copy(
                update={"venue": config.venue.model_copy(update={"path": book})}
            )
        try:
            venue = open_bot_venue(config)  # (nothing connected)
        except BotwardenError:
            return  # its keys are not here, say: its venue cannot be asked
        try:
            require_fit(config.bot_settings(), venue)
        except BotwardenError as error:
            click.echo(
                f"warning: {error}\n  `run` and `start` refuse this config on its venue; the"
                " simulation runs it on the paper exchange all the same",
                err=True,
            )


def _with_progress(label: str, total: int, work: Callable[[Callable[[object], None]], T]) -> T:
    """Run `work`, which calls the function it is given once per unit done, behind a
    progress bar on stderr (stdout keeps the report)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), console=_rich(stderr=True)
    ) as bar:
        task = bar.add_task(label, total=total)
        return work(lambda done: bar.advance(task))


class _OperatorFormatter(logging.Formatter):
    """`botwarden: warning: ...`, the same shape as the CLI's own error line."""

    def format(self, record: logging.LogRecord) -> str:
        return f"botwarden: {record.levelname.lower()}: {record.getMessage()}"


def main() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_OperatorFormatter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    try:
        app()
    except BotwardenError as error:
        click.echo(f"botwarden: error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
