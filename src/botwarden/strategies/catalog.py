"""The strategies a bot could name, and where each comes from: `botwarden strategies`.

botwarden's own, those installed packages register (entry points), and the classes in
a project's `strategies/*.py` (files whose name starts with `_` are left out). Each
is found as the loader finds it (`botwarden.strategies.loading`), so what is listed
is what a config can name. Listing imports the code (a file's top level runs) but
writes no bytecode cache: looking at a folder leaves it as it was. What cannot be
imported is listed with the one line saying why.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from botwarden.strategies.loading import (
    NO_STRATEGY_CLASS,
    Origin,
    StrategyLoadError,
    distribution,
    import_attribute,
    import_file,
    load_entry_point,
    registered_strategies,
    strategy_classes,
)
from botwarden.strategies.settings import BUILTIN_STRATEGIES

FOLDER = "strategies"
"""Where a project keeps its strategy files, beside its configs."""


@dataclass(frozen=True)
class Available:
    """One strategy, as `botwarden strategies` lists it."""

    name: str
    """The name a config uses (botwarden's, an entry point's), or the class's name."""
    config: dict[str, str]
    """How a config beside the folder names it: `{"path": "strategies/rsi.py:Rsi"}`."""
    origin: Origin
    summary: str = ""
    """The first line of its docstring."""
    problem: str | None = None
    """Why a config naming it would be refused; None when it imports."""

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.origin.kind,
            "from": self.origin.where,
            "config": self.config,
            "summary": self.summary,
            "problem": self.problem,
        }


def available(folder: Path) -> list[Available]:
    """Every strategy a config in `folder` could name: botwarden's, the entry points'
    and those in `folder/strategies/*.py`, in that order."""
    writes = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # no __pycache__ left in the user's folders
    try:
        return [*_builtin(), *_registered(), *_in_files(folder)]
    finally:
        sys.dont_write_bytecode = writes


def _builtin() -> Iterator[Available]:
    for name, target in BUILTIN_STRATEGIES.items():
        found = import_attribute(target, name)
        yield Available(name, {"name": name}, Origin("builtin", "botwarden"), summary(found))


def _registered() -> Iterator[Available]:
    for point in registered_strategies():
        origin = Origin("entry point", distribution(point))
        listed = Available(point.name, {"name": point.name}, origin)
        try:
            found = load_entry_point(point)
        except StrategyLoadError as error:
            yield replace(listed, problem=f"{point.value}: {error}")
            continue
        if point.name in BUILTIN_STRATEGIES:
            problem = f"botwarden's own {point.name} has this name, and is the one used"
        elif not inspect.isclass(found):
            problem = f"{point.value} is a {type(found).__name__}, not a class"
        else:
            problem = None
        yield replace(listed, summary=summary(found), problem=problem)


def _in_files(folder: Path) -> Iterator[Available]:
    for file in sorted((folder / FOLDER).glob("*.py")):
        if file.name.startswith("_") or not file.is_file():
            continue
        shown = f"{FOLDER}/{file.name}"
        origin = Origin("file", str(file.resolve()))
        try:
            module = import_file(file.resolve())
        except StrategyLoadError as error:
            yield Available(shown, {"path": shown}, origin, problem=str(error))
            continue
        classes = strategy_classes(module)
        if not classes:
            yield Available(shown, {"path": shown}, origin, problem=NO_STRATEGY_CLASS)
        for name in classes:
            found = getattr(module, name)
            yield Available(name, {"path": f"{shown}:{name}"}, origin, summary(found))


def summary(found: Any) -> str:
    """The first line of `found`'s docstring, or nothing."""
    lines = (inspect.getdoc(found) or "").strip().splitlines()
    return lines[0] if lines else ""
