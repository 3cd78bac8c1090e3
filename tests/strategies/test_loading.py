# ruff: noqa: E501 (tables of cases read best one case a line)
"""A bot's strategy found where its config says: botwarden's, a package's entry point, an
importable class, a file beside the config; and every way of getting that wrong is one
line naming the file and the cause."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from botwarden.config import load_config
from botwarden.errors import ConfigError
from botwarden.strategies.base import Action
from botwarden.strategies.loading import StrategyFailed, StrategyLoadError, load_strategy
from botwarden.strategies.settings import StrategySettings
from tests.support.strategies import HELD, bars

pytestmark = pytest.mark.usefixtures("forget_imports")

RSI = '''
from botwarden.strategies.base import Action, Signal


class Rsi:
    """Buys every bar it is flat, for the test."""

    name = "rsi"

    def __init__(self, length: int = 14, level: float = 30.0) -> None:
        self.length, self.level = length, level

    @property
    def bars_needed(self) -> int:
        return self.length + 1

    def decide(self, symbol, bars, position):
        if position is None:
            return Signal(self.name, symbol, Action.ENTER_LONG, bars[-1].time, "flat")
        return None
'''


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load(base_dir: Path, **settings: object) -> object:
    return load_strategy(StrategySettings.model_validate(settings), base_dir)


def test_a_class_in_a_file_beside_the_config_is_found_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "bot/strategies/rsi.py", RSI)
    config = write(
        tmp_path,
        "bot/bot.yaml",
        "bot_id: rsi_bot\nsymbols: [SPY]\n"
        "strategy: {path: strategies/rsi.py:Rsi, params: {length: 4}, timeframe: 4h}\n",
    )
    monkeypatch.chdir("/")
    strategy = load_config(config).load_strategy()
    assert strategy.name == "rsi" and strategy.bars_needed == 5
    assert strategy.origin.kind == "file"
    assert strategy.origin.where == str((tmp_path / "bot/strategies/rsi.py").resolve())
    signal = strategy.decide("SPY", bars([1.0] * 5), None)
    assert signal is not None and signal.action is Action.ENTER_LONG
    assert strategy.decide("SPY", bars([1.0] * 5), HELD) is None


def test_a_file_with_one_strategy_needs_no_class_name_and_may_import_its_neighbours(
    tmp_path: Path,
) -> None:
    write(tmp_path, "indicators.py", "def level():\n    return 25.0\n")
    write(tmp_path, "mine.py", RSI.replace("level: float = 30.0", "level: float = None") + (
        "\nfrom indicators import level\n\nDEFAULT = level()\n"
    ))  # fmt: skip
    strategy = load(tmp_path, path="mine.py")
    assert strategy.name == "rsi" and strategy.bars_needed == 15


def test_a_class_is_imported_by_module_path_from_a_package_beside_the_config(
    tmp_path: Path,
) -> None:
    write(tmp_path, "my_signals/__init__.py", "")
    write(tmp_path, "my_signals/momentum.py", RSI)
    strategy = load(tmp_path, name="my_signals.momentum:Rsi", params={"length": 2})
    assert strategy.bars_needed == 3
    assert (strategy.origin.kind, strategy.origin.where) == ("module", "my_signals.momentum")


def test_a_package_registers_a_strategy_under_a_name(tmp_path: Path) -> None:
    """A real entry point: an installed distribution's metadata, found on sys.path."""
    write(tmp_path, "rsi_pack/__init__.py", RSI)
    write(tmp_path, "rsi_pack-1.2.dist-info/METADATA", "Name: rsi-pack\nVersion: 1.2\n")
    write(
        tmp_path,
        "rsi_pack-1.2.dist-info/entry_points.txt",
        "[botwarden.strategies]\nrsi = rsi_pack:Rsi\n",
    )
    sys.path.insert(0, str(tmp_path))
    strategy = load(tmp_path, name="rsi")
    assert strategy.name == "rsi"
    assert str(strategy.origin) == "entry point: rsi-pack 1.2"


def test_the_strategies_that_come_with_botwarden_are_found_by_name(tmp_path: Path) -> None:
    strategy = load(tmp_path, name="golden_cross", params={"fast": 2, "slow": 3})
    assert strategy.bars_needed == 4 and str(strategy.origin) == "builtin: botwarden"


@pytest.mark.parametrize(
    ("files", "settings", "says"),
    [
        ({}, {"path": "nope.py:Rsi"}, r"strategy\.path: nope\.py: no such file \(looked for .*nope\.py\)"),
        ({"s.py": "def broken(:\n"}, {"path": "s.py"}, r"s\.py: cannot import: SyntaxError: .* \(s\.py:1\)"),
        ({"s.py": "x = 1\ny = undefined_name\n"}, {"path": "s.py"}, r"s\.py: cannot import: NameError: name 'undefined_name' is not defined \(s\.py:2 in <module>\)"),
        ({"s.py": RSI}, {"path": "s.py:Macd"}, r"s\.py has no Macd \(it defines: Rsi\)"),
        ({"s.py": RSI + RSI.replace("class Rsi", "class Rsi2")}, {"path": "s.py"}, r"s\.py defines 2 strategies \(Rsi, Rsi2\); name one: s\.py:Rsi"),
        ({"s.py": "class Helper:\n    pass\n"}, {"path": "s.py"}, r"s\.py defines no strategy class .*botwarden new-strategy"),
        ({"s.py": RSI}, {"path": "s.py:Rsi", "params": {"lenght": 3}}, r"strategy\.params: s\.py:Rsi: .*unexpected keyword argument 'lenght'"),
        ({"s.py": RSI.replace("    @property\n    def bars_needed(self) -> int:\n        return self.length + 1\n", "")}, {"path": "s.py"}, r"s\.py has no bars_needed: say how many"),
        ({"s.py": RSI.replace("return self.length + 1", "return 0")}, {"path": "s.py"}, r"bars_needed is 0; it must be a whole number of bars, from 1 to 5000"),
        ({"s.py": RSI.replace("self.length, self.level = length, level", "raise RuntimeError('no data dir')")}, {"path": "s.py"}, r"s\.py: building it failed: RuntimeError: no data dir \(s\.py:\d+ in __init__\)"),
        ({"s.py": "def Rsi():\n    pass\n"}, {"path": "s.py:Rsi"}, r"s\.py:Rsi is a function, not a class"),
        ({}, {"name": "no_such_pkg.mod:Rsi"}, r"strategy\.name: no_such_pkg\.mod:Rsi: cannot import: no module named 'no_such_pkg' \(install the package, or put it in the config's folder\)"),
        ({}, {"name": "death_cross"}, r"strategy\.name: unknown strategy 'death_cross'; available: coin_flip, golden_cross"),
    ],
)  # fmt: skip
def test_a_strategy_that_cannot_be_loaded_is_one_line_naming_the_file_and_the_cause(
    tmp_path: Path, files: dict[str, str], settings: dict[str, object], says: str
) -> None:
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(StrategyLoadError, match=says) as refused:
        load(tmp_path, **settings)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("strategy", "says"),
    [
        ({"name": "golden_cross", "path": "s.py"}, "give name .* or path .*, not both"),
        ({"path": "strategies/rsi"}, r"'strategies/rsi' is not a Python file"),
        ({"path": "s.py:not-a-class"}, r"'not-a-class' is not a class name"),
        ({"name": "pkg.mod:"}, r"'pkg\.mod:' is not an importable class"),
        (
            {"timeframe": "2h"},
            r"strategy\.timeframe: '2h' is not one of 1m, 5m, 15m, 1h, 4h, 1d, 1w",
        ),
    ],
)
def test_a_strategy_misnamed_in_the_config_is_refused_when_the_config_is_read(
    tmp_path: Path, strategy: dict[str, object], says: str
) -> None:
    import json

    config = write(tmp_path, "bot.json", json.dumps({"bot_id": "b", "strategy": strategy}))
    with pytest.raises(ConfigError, match=says) as refused:
        load_config(config)
    assert str(refused.value).startswith(str(config))


def test_a_user_strategy_is_not_imported_by_reading_the_config(tmp_path: Path) -> None:
    """`status` and the dashboard read configs: they never run a user's code."""
    write(tmp_path, "s.py", "raise SystemExit('imported!')\n")
    config = load_config(write(tmp_path, "bot.yaml", "bot_id: b\nstrategy: {path: s.py}\n"))
    with pytest.raises(StrategyLoadError, match=r"bot\.yaml: strategy\.path: s\.py: cannot"):
        config.load_strategy()


def test_a_failure_inside_a_decision_names_the_line_of_the_strategy(tmp_path: Path) -> None:
    file = write(tmp_path, "s.py", RSI.replace("return None\n", "return 1 / 0\n"))
    line = [n for n, text in enumerate(file.read_text().splitlines(), 1) if "1 / 0" in text]
    strategy = load(tmp_path, path="s.py")
    with pytest.raises(StrategyFailed) as failed:
        strategy.decide("SPY", bars([1.0] * 15), HELD)
    assert str(failed.value) == (
        f"strategy rsi: decide(SPY) failed at s.py:{line[0]} in decide: ZeroDivisionError: division by zero"
    )


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ('"buy"', r"returned str 'buy'; return a Signal or None"),
        ('Signal(self.name, "QQQ", Action.EXIT, bars[-1].time, "x")', r"a signal for 'QQQ' when asked about 'SPY'"),
        ('Signal(self.name, symbol, "sell", bars[-1].time, "x")', r"signal action 'sell' is not one of enter_long, enter_short, add, exit, update"),
        ('Signal(self.name, symbol, Action.EXIT, "2026-01-01", "x")', r"bar_time '2026-01-01' is not a timezone-aware datetime"),
    ],
)  # fmt: skip
def test_an_answer_that_is_not_a_signal_is_a_failure_not_an_order(
    tmp_path: Path, answer: str, says: str
) -> None:
    write(tmp_path, "s.py", RSI.replace("return None\n", f"return {answer}\n"))
    with pytest.raises(StrategyFailed, match=says):
        load(tmp_path, path="s.py").decide("SPY", bars([1.0] * 15), HELD)


def test_an_action_written_as_text_is_taken_as_that_action(tmp_path: Path) -> None:
    text = 'Signal(self.name, symbol, "exit", bars[-1].time, "x")'
    write(tmp_path, "s.py", RSI.replace("return None\n", f"return {text}\n"))
    signal = load(tmp_path, path="s.py").decide("SPY", bars([1.0] * 15), HELD)
    assert signal is not None and signal.action is Action.EXIT


def test_a_signal_made_by_its_constructors_carries_the_strategys_name(tmp_path: Path) -> None:
    write(tmp_path, "s.py", RSI.replace(
        "return Signal(self.name, symbol, Action.ENTER_LONG, bars[-1].time, \"flat\")",
        "return Signal.long(symbol, bars[-1], \"flat\")",
    ).replace("return None\n", "return Signal.exit(symbol, bars[-1].time)\n"))  # fmt: skip
    strategy = load(tmp_path, path="s.py")
    history = bars([1.0] * 15)
    entry = strategy.decide("SPY", history, None)
    exit_ = strategy.decide("SPY", history, HELD)
    assert entry is not None and entry.id == f"rsi:SPY:enter_long:{history[-1].time.isoformat()}"
    assert exit_ is not None and exit_.action is Action.EXIT
    assert (exit_.strategy, exit_.reason) == ("rsi", "")


def test_a_name_two_packages_register_is_refused_naming_both(tmp_path: Path) -> None:
    for pack, version in (("pack_a", "1.0"), ("pack_b", "2.0")):
        write(tmp_path, f"{pack}/__init__.py", RSI)
        write(
            tmp_path, f"{pack}-{version}.dist-info/METADATA", f"Name: {pack}\nVersion: {version}\n"
        )
        write(
            tmp_path,
            f"{pack}-{version}.dist-info/entry_points.txt",
            f"[botwarden.strategies]\nrsi = {pack}:Rsi\n",
        )
    sys.path.insert(0, str(tmp_path))
    with pytest.raises(
        StrategyLoadError,
        match=r"'rsi' is registered twice, by pack_. .\.0 and pack_. .\.0; name the class instead",
    ):
        load(tmp_path, name="rsi")


def test_params_checked_by_a_strategys_own_pydantic_model_are_one_line(tmp_path: Path) -> None:
    write(tmp_path, "s.py", RSI + """
from pydantic import BaseModel


class Checked(Rsi):
    class Params(BaseModel):
        length: int

    @classmethod
    def from_params(cls, params):
        return cls(**cls.Params.model_validate(params).model_dump())
""")  # fmt: skip
    with pytest.raises(StrategyLoadError) as refused:
        load(tmp_path, path="s.py:Checked", params={"length": "many"})
    assert "\n" not in str(refused.value)
    assert "strategy.params: s.py:Checked: length: Input should be a valid integer" in str(
        refused.value
    )


class Interrupted(BaseException):
    """A strategy's own BaseException: still the strategy's failure, not the engine's."""


@pytest.mark.parametrize("raised", ["Interrupted('mine')", "GeneratorExit()", "SystemExit(3)"])
def test_whatever_a_decision_raises_is_a_strategy_failure(tmp_path: Path, raised: str) -> None:
    write(tmp_path, "s.py", RSI.replace("return None\n", f"raise {raised}\n").replace(
        "from botwarden.strategies.base", "from tests.strategies.test_loading import Interrupted\nfrom botwarden.strategies.base"
    ))  # fmt: skip
    with pytest.raises(StrategyFailed):
        load(tmp_path, path="s.py").decide("SPY", bars([1.0] * 15), HELD)


def test_a_url_in_a_strategys_error_loses_its_secrets(tmp_path: Path) -> None:
    failing = (
        "raise RuntimeError('401 for https://data.example.com/v1/bars?symbol=SPY&apikey=hunter2')"
    )
    write(tmp_path, "s.py", RSI.replace("return None\n", failing + "\n"))
    with pytest.raises(StrategyFailed) as failed:
        load(tmp_path, path="s.py").decide("SPY", bars([1.0] * 15), HELD)
    assert "hunter2" not in str(failed.value) and "apikey=***" in str(failed.value)
