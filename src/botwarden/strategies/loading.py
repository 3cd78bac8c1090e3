"""Finding a bot's strategy, in botwarden, in an installed package, or in the user's file.

    name: golden_cross             one that comes with botwarden
    name: rsi_pack                 one a package registers (entry points, `botwarden.strategies`)
    name: my_pkg.signals:Rsi       a class to import (installed, or beside the config)
    path: strategies/rsi.py:Rsi    a class in a file, relative to the config's folder

The class is built with the config's `params` as keyword arguments (or by its own
`from_params(params)`, if it has one). Whatever goes wrong while finding or building it
is one `StrategyLoadError` line naming the file and the cause. Once loaded, the engine
calls the strategy through `LoadedStrategy`, which turns anything the user's code
raises, or answers that is not a signal, into `StrategyFailed`, naming the file and
line: the engine records it and goes on protecting what the bot holds.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from pydantic import ValidationError

from botwarden.domain.models import Bar, Position
from botwarden.domain.timeframes import TIMEFRAMES
from botwarden.errors import BotwardenError, ConfigError
from botwarden.redact import redact_urls_in
from botwarden.strategies.base import Signal, Strategy
from botwarden.strategies.settings import BUILTIN_STRATEGIES as BUILTIN
from botwarden.strategies.settings import StrategySettings, split_path

ENTRY_POINT_GROUP = "botwarden.strategies"

_OWN_CODE = Path(__file__).resolve().parents[1]
_IMPORT_MACHINERY = Path(importlib.__file__).resolve().parent
"""importlib's frames (and the frozen ones) are never where a strategy went wrong."""

NO_STRATEGY_CLASS = "defines no strategy class (a class with a decide method)"


class StrategyLoadError(ConfigError):
    """The strategy a config names cannot be found, imported or built."""


class StrategyFailed(BotwardenError):
    """The strategy raised inside a call, or answered with something that is not a
    signal. `where`: the file and line in the strategy's code, when known."""

    def __init__(self, strategy: str, call: str, problem: str, where: str | None) -> None:
        problem = redact_urls_in(problem)  # (it reaches logs, events and notifications)
        at = f" at {where}" if where else ""
        super().__init__(f"strategy {strategy}: {call} failed{at}: {problem}")
        self.strategy = strategy
        self.call = call
        self.problem = problem
        self.where = where

    def traceback(self) -> str:
        """The strategy's own frames of what it raised, for the bot's log (botwarden's
        frames around them left out: they are the same every time)."""
        cause = self.__cause__
        if cause is None:
            return ""
        frames = [
            f for f in traceback.extract_tb(cause.__traceback__)
            if not Path(f.filename).resolve().is_relative_to(_OWN_CODE)
        ]  # fmt: skip
        if not frames:
            return ""
        return "\n" + "".join(traceback.format_list(frames)).rstrip()


@dataclass(frozen=True)
class Origin:
    """Where a strategy comes from, as `botwarden strategies` shows it."""

    kind: Literal["builtin", "entry point", "module", "file"]
    where: str
    """botwarden; the distribution registering it; the module; the file."""

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}"


# -- finding -------------------------------------------------------------------------------


def load_strategy(settings: StrategySettings, base_dir: Path) -> LoadedStrategy:
    """The strategy `settings` names, built with its params; `StrategyLoadError` if not.
    Relative paths, and packages beside the config, are found from `base_dir`."""
    found, origin = _find(settings, base_dir)
    return LoadedStrategy(_build(found, settings.params, settings.spec), origin)


def _find(settings: StrategySettings, base_dir: Path) -> tuple[type, Origin]:
    if settings.kind == "file":
        return _from_file(settings.path or "", base_dir)
    if settings.kind == "module":
        _on_import_path(base_dir)
        cls = import_attribute(settings.spec, shown=settings.spec)
        return cls, Origin("module", settings.spec.partition(":")[0])
    name = settings.spec
    if name in BUILTIN:
        return import_attribute(BUILTIN[name], name), Origin("builtin", "botwarden")
    registered: dict[str, EntryPoint] = {}
    for point in registered_strategies():
        known = registered.get(point.name)
        if point.name == name and known is not None and known.value != point.value:
            raise StrategyLoadError(
                f"strategy.name: {name!r} is registered twice, by {distribution(known)} and"
                f" {distribution(point)}; name the class instead ({known.value} or"
                f" {point.value}), or uninstall one"
            )
        registered.setdefault(point.name, point)
    if name in registered:
        point = registered[name]
        try:
            found = load_entry_point(point)
        except StrategyLoadError as error:
            raise StrategyLoadError(
                f"strategy.name: {point.name} (registered by {distribution(point)} as"
                f" {point.value}): {error}"
            ) from None
        return found, Origin("entry point", distribution(point))
    known = sorted({*BUILTIN, *registered})
    raise StrategyLoadError(
        f"strategy.name: unknown strategy {name!r}; available: {', '.join(known)};"
        " or name your own as package.module:Class, or give path: your_file.py:Class"
    )


def _from_file(path: str, base_dir: Path) -> tuple[type, Origin]:
    written, cls_name = split_path(path)
    file = Path(written).expanduser()
    file = file if file.is_absolute() else base_dir / file
    if not file.is_file():
        why = "not a file" if file.exists() else "no such file"
        raise StrategyLoadError(f"strategy.path: {written}: {why} (looked for {file})")
    try:
        module = import_file(file.resolve())
    except StrategyLoadError as error:
        raise StrategyLoadError(f"strategy.path: {written}: {error}") from None
    if cls_name is None:
        cls = _the_one_strategy_in(module, written)
    else:
        cls = getattr(module, cls_name, None)
        if cls is None:
            defined = ", ".join(strategy_classes(module)) or "no strategy class"
            raise StrategyLoadError(
                f"strategy.path: {written} has no {cls_name} (it defines: {defined})"
            )
    return cls, Origin("file", str(file.resolve()))


def import_file(file: Path) -> ModuleType:
    """The module a Python file (an absolute path) holds, imported; `StrategyLoadError`
    saying why not (`cannot import: NameError: ... (rsi.py:2 in <module>)`)."""
    # A name of its own per file (two bots' rsi.py are two modules), kept in sys.modules
    # while it runs: dataclasses, pickling and logging look modules up there.
    digest = hashlib.blake2b(str(file).encode(), digest_size=4).hexdigest()
    name = f"botwarden_strategy_{file.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise StrategyLoadError("cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    _on_import_path(file.parent)  # its own helper modules, as when run as a script
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # a script's sys.exit() too
        del sys.modules[name]
        raise StrategyLoadError(f"cannot import: {_describe(error, file)}") from None
    return module


def import_attribute(target: str, shown: str) -> Any:
    """What `module:attribute` names, imported (`shown`: as the config wrote it)."""
    module_name, _, attribute = target.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as error:
        if isinstance(error, ModuleNotFoundError) and error.name == module_name.split(".")[0]:
            problem = (
                f"no module named {error.name!r} (install the package, or put it in the"
                " config's folder)"
            )
        else:
            problem = _describe(error, None)
        raise StrategyLoadError(f"strategy.name: {shown}: cannot import: {problem}") from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            defined = ", ".join(strategy_classes(found)) if inspect.ismodule(found) else ""
            raise StrategyLoadError(
                f"strategy.name: {shown}: {module_name} has no {attribute}"
                + (f" (it defines: {defined})" if defined else "")
            )
        found = getattr(found, part)
    return found


def registered_strategies() -> list[EntryPoint]:
    """The strategies installed packages register (entry point group
    `botwarden.strategies`), not yet imported."""
    return list(entry_points(group=ENTRY_POINT_GROUP))


def load_entry_point(point: EntryPoint) -> Any:
    """What `point` names, imported; `StrategyLoadError` saying why not."""
    try:
        return point.load()
    except Exception as error:
        raise StrategyLoadError(f"cannot import: {_describe(error, None)}") from None


def distribution(point: EntryPoint) -> str:
    """The distribution registering `point`, and its version: `rsi-pack 1.2`."""
    dist = point.dist
    return f"{dist.name} {dist.version}" if dist is not None else point.value


def _on_import_path(folder: Path) -> None:
    """Its folder, where its own helper modules are found: after what is installed, so
    that a file of the user's named like a library (alpaca.py) hides nothing."""
    where = str(folder.resolve())
    if where not in sys.path:
        sys.path.append(where)


def strategy_classes(module: ModuleType) -> list[str]:
    """The classes `module` defines (not imports) that have a `decide`."""
    return [
        name
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and value.__module__ == module.__name__
        and callable(getattr(value, "decide", None))
    ]


def _the_one_strategy_in(module: ModuleType, shown: str) -> type:
    classes = strategy_classes(module)
    if len(classes) == 1:
        return getattr(module, classes[0])
    if not classes:
        raise StrategyLoadError(
            f"strategy.path: {shown} {NO_STRATEGY_CLASS}; `botwarden new-strategy NAME`"
            " writes one to start from"
        )
    raise StrategyLoadError(
        f"strategy.path: {shown} defines {len(classes)} strategies ({', '.join(classes)});"
        f" name one: {shown}:{classes[0]}"
    )


# -- building ------------------------------------------------------------------------------


def _build(found: Any, params: dict[str, Any], shown: str) -> Any:
    if not inspect.isclass(found):
        raise StrategyLoadError(
            f"strategy: {shown} is a {type(found).__name__}, not a class; name the strategy's class"
        )
    try:
        from_params = getattr(found, "from_params", None)
        strategy = from_params(params) if callable(from_params) else found(**params)
    except ValidationError as error:  # a pydantic model of its own: its first problem
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        problem = first["msg"].removeprefix("Value error, ")
        raise StrategyLoadError(f"strategy.params: {shown}: {where}: {problem}") from None
    except (TypeError, ValueError) as error:
        raise StrategyLoadError(f"strategy.params: {shown}: {error}") from None
    except Exception as error:
        raise StrategyLoadError(
            f"strategy: {shown}: building it failed: {_describe(error, _source_of(found))}"
        ) from None
    if not callable(getattr(strategy, "decide", None)):
        raise StrategyLoadError(
            f"strategy: {shown} is not a strategy: it has no decide(symbol, bars, position) method"
        )
    try:
        needed = strategy.bars_needed
    except AttributeError:
        raise StrategyLoadError(
            f"strategy: {shown} has no bars_needed: say how many completed bars decide()"
            " needs (bars_needed = 20)"
        ) from None
    except Exception as error:
        problem = _describe(error, _source_of(found))
        raise StrategyLoadError(f"strategy: {shown}: bars_needed failed: {problem}") from None
    problem = _timeframes_problem(getattr(strategy, "timeframes", None))
    if problem is not None:
        raise StrategyLoadError(f"strategy: {shown}: {problem}")
    if not _a_number_of_bars(needed):
        raise StrategyLoadError(
            f"strategy: {shown}: bars_needed is {needed!r}; it must be a whole number of"
            f" bars, from 1 to {MAX_BARS}"
        )
    return strategy


MAX_BARS = 5000
"""The most bars a strategy may ask for, of any timeframe: every pass fetches them,
and a venue serves a few thousand at most in one answer."""


def _a_number_of_bars(needed: Any) -> bool:
    return isinstance(needed, int) and not isinstance(needed, bool) and 1 <= needed <= MAX_BARS


def _source_of(obj: Any) -> Path | None:
    try:
        file = inspect.getsourcefile(obj if inspect.isclass(obj) else type(obj))
    except TypeError:
        return None
    return Path(file).resolve() if file else None


def _describe(error: BaseException, source: Path | None) -> str:
    """`ErrorType: message (file.py:LINE)`: the line in the strategy's own code when it is
    on the stack, else the innermost outside botwarden."""
    if isinstance(error, SyntaxError) and error.filename:
        return f"SyntaxError: {error.msg} ({Path(error.filename).name}:{error.lineno})"
    where = _where(error, source)
    return f"{type(error).__name__}: {error}" + (f" ({where})" if where else "")


def _where(error: BaseException, source: Path | None) -> str | None:
    frames = traceback.extract_tb(error.__traceback__)
    theirs = [f for f in frames if _users(f.filename)]
    if source is not None:
        theirs = [f for f in theirs if Path(f.filename).resolve() == source] or theirs
    if not theirs:
        return None
    frame = theirs[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"


def _users(filename: str) -> bool:
    if filename.startswith("<frozen "):
        return False
    path = Path(filename).resolve()
    return not (path.is_relative_to(_OWN_CODE) or path.is_relative_to(_IMPORT_MACHINERY))


# -- calling -------------------------------------------------------------------------------


class LoadedStrategy:
    """A strategy as the engine calls it: what its code raises, or answers that is not
    a signal for the symbol asked about, is a `StrategyFailed`; never anything else."""

    def __init__(self, strategy: Strategy | Any, origin: Origin) -> None:
        self.strategy = strategy
        self.origin = origin
        named = getattr(strategy, "name", None)
        self.name: str = named if isinstance(named, str) and named else type(strategy).__name__
        self._source = _source_of(strategy)

    @property
    def bars_needed(self) -> int:
        needed = self._call("bars_needed", lambda: self.strategy.bars_needed)
        if not _a_number_of_bars(needed):
            problem = f"{needed!r} is not a number of bars"
            raise StrategyFailed(self.name, "bars_needed", problem, None)
        return needed

    @property
    def timeframes(self) -> dict[str, int]:
        """The strategy's other timeframes (its `timeframes`, optional) and how many
        completed bars of each it needs: `bars.of("1d")` in `decide`."""

        def named() -> tuple[dict[str, int], str | None]:
            found = getattr(self.strategy, "timeframes", None)
            return dict(found or {}), _timeframes_problem(found)

        timeframes, problem = self._call("timeframes", named)
        if problem is not None:
            raise StrategyFailed(self.name, "timeframes", problem, None)
        return timeframes

    def hook(self, name: str, *args: Any) -> None:
        """Call the strategy's optional `name` hook (on_start, on_fill, on_close), if it
        has one; what it raises is a `StrategyFailed` like any decision's."""
        method = getattr(self.strategy, name, None)
        if method is not None:
            self._call(f"{name}()", lambda: method(*args))

    def decide(self, symbol: str, bars: Sequence[Bar], position: Position | None) -> Signal | None:
        call = f"decide({symbol})"
        signal = self._call(call, lambda: self.strategy.decide(symbol, bars, position))
        if signal is None:
            return None
        if isinstance(signal, Signal) and not signal.strategy:
            signal = replace(signal, strategy=self.name)  # made by Signal.long() and kin
        problem = self._call(call, lambda: _not_a_signal(signal, symbol))
        if problem is not None:
            raise StrategyFailed(self.name, call, problem, None)
        return signal

    def _call(self, call: str, do: Any) -> Any:
        try:
            return do()
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise  # an operator's Ctrl-C, a task being stopped: not the strategy's failure
        except BaseException as error:  # its own BaseException subclasses too
            raise StrategyFailed(
                self.name,
                call,
                f"{type(error).__name__}: {_shown(error)}",
                _where(error, self._source),
            ) from error


def _shown(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # a str() that raises: its type is all there is to say
        return "(its message could not be shown)"


def _timeframes_problem(named: Any) -> str | None:
    if named is None:
        return None
    if not isinstance(named, Mapping):
        return f"timeframes is {named!r}; give a mapping of timeframe to bars, e.g. {{'1d': 50}}"
    for timeframe, count in named.items():
        if timeframe not in TIMEFRAMES:
            return f"timeframes: {timeframe!r} is not one of {', '.join(TIMEFRAMES)}"
        if not _a_number_of_bars(count):
            return f"timeframes: {timeframe}: {count!r} is not a number of bars (1 to {MAX_BARS})"
    return None


def _not_a_signal(answer: Any, symbol: str) -> str | None:
    if not isinstance(answer, Signal):
        return f"returned {type(answer).__name__} {answer!r:.80}; return a Signal or None"
    if answer.symbol != symbol:
        return f"returned a signal for {answer.symbol!r} when asked about {symbol!r}"
    return None  # (a Signal checks its own fields when it is made)
