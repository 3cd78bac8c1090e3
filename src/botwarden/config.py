"""A bot's configuration: one typed model, read from YAML, JSON or TOML, composed of
each layer's own settings (the store's in `state/settings.py`, the engine's in
`engine/settings.py`, the strategy's in `strategies/settings.py`, the
notifications' in `notify.py`); the venues' are still here.

Every mistake becomes one `ConfigError` line naming the file, the field, the bad value
and what is allowed. Strings may name environment variables as `${NAME}` (or
`${NAME:-default}`), which is how secrets such as a DSN's password stay out of files.
Relative paths are relative to the config file's folder, so a bot started by cron or
systemd from another directory finds the same state.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
import typing
from collections.abc import Hashable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from botwarden.backtest.settings import BacktestSettings
from botwarden.domain.models import TakeProfit
from botwarden.domain.positions import StopPolicy
from botwarden.domain.risk import RiskLimits
from botwarden.engine.settings import BotSettings, EngineSettings, SizingSettings
from botwarden.errors import ConfigError
from botwarden.notify import NotifySettings
from botwarden.settings import Settings
from botwarden.state.settings import BACKENDS, DEFAULT_BACKEND, StateSettings
from botwarden.strategies.settings import BUILTIN_STRATEGIES, StrategySettings
from botwarden.venues.settings import (
    PaperVenueSettings,
    VenueSettings,
)

if TYPE_CHECKING:
    from botwarden.strategies.loading import LoadedStrategy

log = logging.getLogger(__name__)

BotId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
"""Also a file name and a key: letters, digits, `_`, `.`, `-`; 64 characters at most."""


class BotConfig(Settings):
    bot_id: BotId
    state: StateSettings = StateSettings()
    venue: VenueSettings = PaperVenueSettings()
    risk: RiskLimits = RiskLimits()
    """The guards: `{daily_loss_limit: 500, max_trades_per_hour: 10, day_starts_at: "09:30",
    timezone: America/New_York, ...}`."""
    symbols: list[str] = Field(default_factory=list)
    """The markets the bot trades, as its venue names them (`SPY`, `BTC/USDT`)."""
    order: SizingSettings = SizingSettings(qty=Decimal(1))
    strategy: StrategySettings = StrategySettings()
    stop: StopPolicy = StopPolicy()
    """Where every position's stop goes: `{kind: percent, distance: 2, trailing: false,
    max_underwater_pct: 5}`."""
    take_profit: Annotated[TakeProfit | None, BeforeValidator(TakeProfit.from_config)] = None
    """Where every position's take-profit goes, unless its strategy says: `{percent: 4}`
    from the entry, `{distance: 3}`, or `{multiple: 2}` times the stop's distance. It
    rests on the venue beside the stop; at most one of them fills."""

    @field_validator("take_profit")
    @classmethod
    def _relative(cls, rule: TakeProfit | None) -> TakeProfit | None:
        if rule is not None and rule.kind == "price":
            raise ValueError(
                "a price is one position's take-profit, not every position's: give percent,"
                " distance or multiple here (a strategy may give a price with its entry)"
            )
        return rule

    engine: EngineSettings = EngineSettings()
    notify: NotifySettings = NotifySettings()
    backtest: BacktestSettings = BacktestSettings()
    """What `botwarden backtest` trades in: `{fill: next_open, fee_rate: 0.0005,
    starting_cash: 100000, data: data/}`."""
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str = PrivateAttr(default="config")

    @property
    def default_strategy(self) -> str | None:
        """The strategy it runs when its file names none; None: it names one."""
        return None if "strategy" in self.model_fields_set else self.strategy.spec

    def bot_settings(self) -> BotSettings:
        """What the engine is told of this bot (all but its state, venue, notify)."""
        return BotSettings(
            bot_id=self.bot_id,
            symbols=tuple(self.symbols),
            strategy=self.strategy,
            size=self.order.size,
            stop=self.stop,
            take_profit=self.take_profit,
            risk=self.risk,
            recovery=self.state.recovery,
            engine=self.engine,
            base_dir=self.base_dir,
            source=self._source,
        )

    def require_markets(self) -> None:
        """A bot about to trade must name its markets (a config used only to reach a
        store needs none): see `BotSettings.require_markets`."""
        self.bot_settings().require_markets()

    def load_strategy(self) -> LoadedStrategy:
        """The strategy the config names, imported and built with its params (a user's
        code runs here, and only here: commands that only look never call this)."""
        return self.bot_settings().load_strategy()

    def placed_as(self, source: BotConfig) -> BotConfig:
        """This config, its relative paths (the state's, the strategy's file) found
        from where `source` was read: a config made from a file's (the simulator's)."""
        self._base_dir, self._source = source._base_dir, source._source
        return self

    @property
    def source(self) -> str:
        """The file it was read from ("config" for one built in code)."""
        return self._source

    @property
    def base_dir(self) -> Path:
        """Where relative paths start: the config file's folder (the working directory
        for a config built in code). Not a setting: it comes from where the file is."""
        return self._base_dir


# -- loading ---------------------------------------------------------------------------

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(value: Any, source: Path, where: str = "", *, required: bool = True) -> Any:
    """`${NAME}` replaced from the environment. Not `required`: an unset one is left as
    written (the section is not used, so nothing reads it)."""
    if isinstance(value, dict):
        return {
            k: _interpolate(v, source, f"{where}.{k}" if where else str(k), required=required)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _interpolate(v, source, f"{where}[{i}]", required=required) for i, v in enumerate(value)
        ]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        if not required:
            return match.group(0)
        raise ConfigError(f"{source}: {where}: environment variable {name} is not set")

    return _ENV_REFERENCE.sub(substitute, value)


def _interpolate_config(raw: dict[str, Any], source: Path) -> dict[str, Any]:
    """Only the store the bot uses needs its variables: a config naming sqlite may keep
    a postgres section whose `${DSN}` is set only where postgres is chosen."""
    state = raw.get("state")
    if not isinstance(state, dict):
        return _interpolate(raw, source)
    backend = _interpolate(state.get("backend", DEFAULT_BACKEND), source, "state.backend")
    unused = {name for name in BACKENDS if name != backend}
    state = {
        key: _interpolate(value, source, f"state.{key}", required=key not in unused)
        for key, value in state.items()
    }
    rest = _interpolate({k: v for k, v in raw.items() if k != "state"}, source)
    return {**rest, "state": state}


class _DuplicateKey(Exception):
    def __init__(self, key: object, line: int | None, first: int | None) -> None:
        self.key, self.line, self.first = key, line, first

    def message(self, path: Path) -> str:
        where = f"line {self.line}: " if self.line else ""
        first = f" (first at line {self.first})" if self.first else ""
        return f"{path}: {where}{self.key} is given twice{first}; keep one"


_YAML_BOOL = "tag:yaml.org,2002:bool"


class _ConfigLoader(yaml.SafeLoader):
    """YAML as a config means it: a key given twice is an error (pasting two
    alternatives loaded the last one, silently), and only true and false are booleans
    (YAML 1.1 also reads on, off, yes and no as booleans, so `on:` became `true:`;
    a boolean setting still takes yes and no)."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {
        first: [(tag, regex) for tag, regex in resolvers if tag != _YAML_BOOL]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_lines: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<:` merges another mapping in; its keys may be overridden
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, Hashable):
                continue  # not a valid key anyway: validation names it
            if key in first_lines:
                raise _DuplicateKey(key, line, first_lines[key])
            first_lines[key] = line
        return super().construct_mapping(node, deep=deep)


_ConfigLoader.add_implicit_resolver(
    _YAML_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    for i, key in enumerate(keys):
        if key in keys[:i]:
            raise _DuplicateKey(key, None, None)
    return dict(pairs)


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_json_object)
    except _DuplicateKey as duplicate:
        # JSON's parser keeps no positions; JSON is YAML's flow style, whose does.
        try:
            yaml.load(text, _ConfigLoader)
        except _DuplicateKey as located:
            raise located from None
        except yaml.YAMLError:
            pass
        raise duplicate from None


def _toml_duplicate(text: str, error: tomllib.TOMLDecodeError) -> _DuplicateKey | None:
    """tomllib says where a key or table came twice, not which one: read it off the line."""
    found = re.search(r"(Cannot overwrite a value|twice|Duplicate).*at line (\d+)", str(error))
    if not found:
        return None
    line = int(found.group(2))
    written = text.splitlines()[line - 1].strip() if line <= len(text.splitlines()) else ""
    key = written.strip("[]").strip() if written.startswith("[") else written.split("=")[0]
    return _DuplicateKey(key.strip() or "a key", line, None)


def _parse(path: Path, text: str) -> Any:
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            return yaml.load(text, _ConfigLoader)
        if suffix == ".json":
            return _parse_json(text)
        if suffix == ".toml":
            return tomllib.loads(text)
    except _DuplicateKey as duplicate:
        raise ConfigError(duplicate.message(path)) from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a bot's config") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        hint = ""
        lines = text.splitlines()
        if mark and mark.line < len(lines) and "{flow_id}" in lines[mark.line]:
            # YAML forbids a bare `{` inside `{...}`: `{path: state/{flow_id}.db}`.
            hint = '; quote a value holding {flow_id} inside {...}: {path: "state/{flow_id}.db"}'
        raise ConfigError(
            f"{path}: not valid YAML{line}: {getattr(error, 'problem', error)}{hint}"
        ) from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON at line {error.lineno}: {error.msg}") from None
    except tomllib.TOMLDecodeError as error:
        duplicate = _toml_duplicate(text, error)
        if duplicate is not None:
            raise ConfigError(duplicate.message(path)) from None
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    raise ConfigError(f"{path}: unknown config format {suffix!r}; use .yaml, .yml, .json or .toml")


_VENUE_TYPES = ("paper", "alpaca", "ccxt")


def describe_validation_error(error: ValidationError, model: type[BaseModel]) -> str:
    """The first problem as `field.path: what is wrong`, with what would be accepted."""
    first = error.errors()[0]
    # A tagged union (`venue:`) puts the tag in the path; the file has no such key.
    parts = [
        p
        for i, p in enumerate(first["loc"])
        if not (i and first["loc"][i - 1] in ("venue", "prices") and p in _VENUE_TYPES)
    ]
    loc = ".".join(str(part) for part in parts) or "(top level)"
    kind = first["type"]
    ctx = first.get("ctx", {})
    # (the tag's name as the file spells it: "'type' | 'from'" names its alias last)
    tag = ctx.get("discriminator", "type").split("|")[-1].strip().strip("'")
    if kind == "union_tag_invalid":
        loc += f".{tag}"
        message = f"{ctx.get('tag')!r} is not allowed; use one of {ctx.get('expected_tags')}"
    elif kind == "union_tag_not_found":
        loc += f".{tag}"
        message = "missing (required)"
    elif kind == "extra_forbidden":
        allowed = _allowed_fields(model, tuple(first["loc"][:-1]))
        message = f"unknown field; allowed here: {', '.join(allowed)}"
    elif kind in ("model_type", "dict_type"):
        message = f"expected a mapping of settings (`name: value` pairs), not {first['input']!r}"
    elif kind == "missing":
        message = "missing (required)"
    elif kind == "literal_error":
        expected = first.get("ctx", {}).get("expected", "")
        message = f"{first['input']!r} is not allowed; use one of {expected}"
    elif kind == "string_pattern_mismatch" and loc == "bot_id":
        message = (
            f"{first['input']!r} is not a valid bot id: use 1 to 64 letters, digits, '_', '.'"
            " or '-', starting with a letter or digit"
        )
    else:
        message = first["msg"].removeprefix("Value error, ")
        secret = any(word in loc for word in ("key", "secret", "password", "dsn", "url", "token"))
        shown = kind not in ("value_error", "model_type", "dict_type") and not secret
        if "input" in first and shown:
            message += f" (got {first['input']!r})"
    more = len(error.errors()) - 1
    return f"{loc}: {message}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def _allowed_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The fields of the settings at `loc` (a tagged union's member by the tag that
    follows it in the path: `venue.paper`); none if the path leads elsewhere."""
    parts = list(loc)
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        models = _models_in(field.annotation) if field is not None else []
        if field is not None and typing.get_origin(field.annotation) is dict and parts:
            parts.pop(0)  # (a mapping of settings: its key, a symbol say, is next)
        if len(models) > 1 and parts:  # a tagged union: the tag is next in the path
            tag = parts.pop(0)
            models = [m for m in models if _tag(m) == tag]
        if len(models) != 1:
            return []
        model = models[0]
    return [f.alias or name for name, f in model.model_fields.items()]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The settings models an annotation allows (through `Annotated` and unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _tag(model: type[BaseModel]) -> Any:
    """A tagged union member's tag: its `type` field's one literal value."""
    field = model.model_fields.get("type")
    values = typing.get_args(field.annotation) if field is not None else ()
    return values[0] if len(values) == 1 else None


MAX_CONFIG_BYTES = 1024 * 1024
"""A bot's config is a few hundred bytes; a path to something else (a device, a log)
is refused before it is read whole."""


def load_config(path: str | Path) -> BotConfig:
    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            raise ConfigError(f"{path}: not a regular file; a config is a YAML, JSON or TOML file")
        if path.exists() and path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: {path.stat().st_size} bytes, too large to be a bot's config"
                f" (at most {MAX_CONFIG_BYTES})"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {error}") from None
    raw = _parse(path, text)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    try:
        config = BotConfig.model_validate(_interpolate_config(raw, path))
    except ValidationError as error:
        raise ConfigError(f"{path}: {describe_validation_error(error, BotConfig)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a bot's config") from None
    config._base_dir = path.resolve().parent
    config._source = str(path)
    if config.strategy.kind == "named" and config.strategy.spec in BUILTIN_STRATEGIES:
        config.load_strategy()  # botwarden's own code, cheap: its params checked now
    _warn_if_keys_readable(path, config)
    return config


def _warn_if_keys_readable(path: Path, config: BotConfig) -> None:
    sections = [config.venue, getattr(config.venue, "prices", None)]
    keys_inside = any(
        getattr(section, "api_key", None) or getattr(section, "secret_key", None)
        for section in sections
    )
    if keys_inside and path.stat().st_mode & 0o077:
        log.warning(
            "%s holds API keys and other users can read it (mode %o): chmod 600 %s, or put"
            " the keys in the environment instead",
            path,
            path.stat().st_mode & 0o777,
            path,
        )
