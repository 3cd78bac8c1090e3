"""Where botwarden keeps its runtime files: `$BOTWARDEN_HOME`, `~/.botwarden` by default.

    bots/<bot_id>/
        bot.json       the config the bot was last run from (for stop, status, logs)
        launch.json    the detached process `botwarden start` launched: its PID and the
                       kernel's start time of that PID (a PID alone may be reused)
        bot.log        the bot's log, whether run in the foreground or started
        console.log    what a detached process printed (a crash before logging began)
        market.json    what the bot's last pass saw of its market (bars, prices, the
                       balance), for the dashboard: a view, not state
        supervise.lock serializes start, stop and resolve of one bot
    backtests/<id>.json  where a backtest written with --out is (the dashboard lists it)

Several installations (and every test) stay apart by pointing `BOTWARDEN_HOME`
elsewhere. A bot's lock is not here: it lives beside the bot's state, so that two
homes sharing one state file still run it once.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from botwarden.errors import BotwardenError, ConfigError
from botwarden.state.files import atomic_write


def botwarden_home() -> Path:
    """Where runtime files live (logs, launch records, the API token, stored keys):
    `$BOTWARDEN_HOME`, `~/.botwarden` by default."""
    configured = os.environ.get("BOTWARDEN_HOME")
    return Path(configured).expanduser().resolve() if configured else Path.home() / ".botwarden"


class UnknownBot(BotwardenError):
    """No bot of that id was ever run from this home."""


@dataclass(frozen=True)
class BotFiles:
    bot_id: str
    dir: Path

    @property
    def record(self) -> Path:
        return self.dir / "bot.json"

    @property
    def launch(self) -> Path:
        return self.dir / "launch.json"

    @property
    def log(self) -> Path:
        return self.dir / "bot.log"

    @property
    def console(self) -> Path:
        return self.dir / "console.log"

    @property
    def market(self) -> Path:
        return self.dir / "market.json"

    @property
    def standby(self) -> Path:
        """There while the bot's process on this host stands by (`run --standby`)."""
        return self.dir / "standby.json"

    @property
    def supervise_lock(self) -> Path:
        return self.dir / "supervise.lock"

    def read_record(self) -> dict[str, str]:
        """{"bot_id", "config": the config it was last run from, "lock": its lock,
        "driven_by": `strategy`, or `code` for a bot its own code runs (`botwarden.Bot`)}."""
        try:
            record = json.loads(self.record.read_text(encoding="utf-8"))
            known = {key: str(record[key]) for key in ("bot_id", "config", "lock")}
            return known | {"driven_by": str(record.get("driven_by", "strategy"))}
        except FileNotFoundError:
            raise UnknownBot(
                f"no bot {self.bot_id!r} in {self.dir.parent}: start it once with"
                " `botwarden start CONFIG` (or run it with `botwarden run CONFIG`)"
            ) from None
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigError(f"{self.record}: unreadable ({error}); start the bot again") from None

    def refuse_if_driven_by_code(self, default_strategy: str | None) -> None:
        """`DrivenByCode` for a bot its own program runs, started from a config that
        names no strategy: `default_strategy`, the one it would trade with (None: the
        config names one)."""
        try:
            driven_by = self.read_record()["driven_by"]
        except (UnknownBot, ConfigError):
            return
        if driven_by == DRIVEN_BY_CODE and default_strategy is not None:
            raise DrivenByCode(
                f"bot {self.bot_id} is run by its own code (botwarden.Bot), and its config"
                f" names no strategy: started by botwarden it would trade {default_strategy},"
                " the default; start that program again, or name a strategy in its config"
            )

    def config_path(self) -> Path:
        return Path(self.read_record()["config"])

    def make(self) -> None:
        """The bot's folder under the home (which holds logs and tokens: the owner's)."""
        self.dir.parent.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)

    def remember(self, config: Path, lock: Path, driven_by: str = "strategy") -> None:
        """Note where the bot's config and lock are, for stop, status and logs, and what
        drives it: its config's `strategy`, or its own `code` (which no command of
        botwarden's can start again)."""
        self.make()
        record = {"bot_id": self.bot_id, "config": str(config.resolve()), "lock": str(lock)}
        atomic_write(self.record, json.dumps(record | {"driven_by": driven_by}).encode())


DRIVEN_BY_CODE = "code"
"""A bot run by its own code (`botwarden.Bot`), not by its config's strategy."""


class DrivenByCode(BotwardenError):
    """The bot is run by its own code (`botwarden.Bot`): no command of botwarden's
    starts it with a strategy it does not name."""


BOT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""A bot's id, as its config allows it (and so a safe folder name)."""


def bot_files(bot_id: str, root: Path | None = None) -> BotFiles:
    if not BOT_ID.match(bot_id):
        raise UnknownBot(
            f"no bot {bot_id!r}: a bot's id is letters, digits, '_', '.', '-' (64 at most)"
        )
    return BotFiles(bot_id, (root or botwarden_home()) / "bots" / bot_id)


def known_bots(root: Path | None = None) -> list[str]:
    """Every bot run from this home, by id."""
    bots = (root or botwarden_home()) / "bots"
    if not bots.is_dir():
        return []
    return sorted(d.name for d in bots.iterdir() if (d / "bot.json").is_file())


READY_FD = "BOTWARDEN_READY_FD"
"""Set by `botwarden start`: a pipe on which the bot says it started (its lock held, its
state open, its recovery done or retrying), as systemd's sd_notify does. A failure
before that closes the pipe unsaid, and the start reports the bot's last words."""
