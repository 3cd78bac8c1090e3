"""The `botwarden` command. It parses, calls the library, and prints; nothing more.

An operator's mistake (a bad config, an unreadable state file, a server that is down)
is printed as one line on stderr, with exit code 2 for config errors and 1 otherwise.
A traceback means a bug in botwarden.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from botwarden import __version__
from botwarden.config import BotConfig, load_config
from botwarden.errors import BotwardenError, StateError
from botwarden.state.manager import StateManager, utc_now

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="botwarden: a crash-safe runtime for trading bots.",
)
state_app = typer.Typer(no_args_is_help=True, help="Inspect, export and import a bot's state.")
app.add_typer(state_app, name="state")

console = Console()
errors = Console(stderr=True)

ConfigArg = Annotated[Path, typer.Argument(help="The bot's config file (YAML, JSON or TOML).")]


def _version(value: bool) -> None:
    if value:
        console.print(f"botwarden {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """botwarden: a crash-safe runtime for trading bots."""


@asynccontextmanager
async def _existing_state(config: BotConfig) -> AsyncIterator[StateManager]:
    """The opened state of a bot that has some. Looking never creates a state file, and
    a mistyped bot id is an error rather than an empty report."""
    state = StateManager.from_config(config.bot_id, config)
    path = getattr(state.store, "path", None)
    if path is not None and not path.exists():
        raise StateError(f"bot {config.bot_id} has no state yet: {path} does not exist")
    async with state:
        if config.bot_id not in await state.store.flows():
            raise StateError(f"bot {config.bot_id} has no state in {state.store.describe()}")
        yield state


@state_app.command("show")
def state_show(
    config: ConfigArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Positions, pending order intents, risk, signals and status of one bot."""
    from botwarden.views import render_state, state_as_json

    settings = load_config(config)

    async def show() -> None:
        async with _existing_state(settings) as state:
            snapshot = await state.snapshot()
            where = state.store.describe()
        if as_json:
            retention = settings.state.signal_retention
            document = state_as_json(snapshot, where, utc_now(), retention)
            sys.stdout.write(json.dumps(document, indent=2) + "\n")
        else:
            render_state(console, snapshot, where, utc_now())

    asyncio.run(show())


@state_app.command("export")
def state_export(
    config: ConfigArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write all of one bot's state as JSON (to move it to another store, or keep a copy)."""
    from botwarden.state.transfer import export_state

    settings = load_config(config)

    async def export() -> dict:
        async with _existing_state(settings) as state:
            return await export_state(state.store, settings.bot_id, utc_now())

    text = json.dumps(asyncio.run(export()), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        errors.print(f"exported bot {settings.bot_id} to {output}")


@state_app.command("import")
def state_import(
    config: ConfigArg,
    file: Annotated[Path, typer.Argument(help="A file written by `botwarden state export`.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the state the store already holds.")
    ] = False,
) -> None:
    """Load an export into the store this config names, in one atomic write."""
    from botwarden.state.transfer import import_state

    settings = load_config(config)
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StateError(f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StateError(f"{file}: not a readable JSON export: {error}") from None

    async def load() -> tuple[int, str]:
        async with StateManager.from_config(settings.bot_id, settings) as state:
            count = await import_state(
                state.store, settings.bot_id, document, str(file), replace=replace
            )
            return count, state.store.describe()

    count, where = asyncio.run(load())
    errors.print(f"imported {count} records of bot {settings.bot_id} into {where}")


@app.command("demo")
def demo(config: ConfigArg) -> None:
    """One trading cycle of a demo bot on the embedded store: no keys, no servers.

    Run it twice: the second run finds what the first one left, checks its stop and
    closes the position before it opens a new one.
    """
    from botwarden.demo import run_demo

    settings = load_config(config)
    asyncio.run(run_demo(settings, console, config))


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
        errors.print(f"botwarden: error: {error}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
