"""`botwarden new-strategy NAME`: a strategy to start from, its tests, and a bot that runs it.

Three files in the user's project folder:

    strategies/NAME.py     a small but real strategy (an RSI dip buyer), commented
    tests/test_NAME.py     pytest tests that feed it bars, as the engine would
    NAME.yaml              a bot trading it on the paper exchange (only if absent)

Nothing is ever overwritten: every target is checked before any is written, and a
name that would make a bad module or class is refused, both in one line.
"""

from __future__ import annotations

import keyword
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template

from botwarden.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")

_TEMPLATE_IMPORTS = {"Bar", "Position", "Signal", "Sequence"}
"""Names the strategy template uses: the class may not be one of them."""

STRATEGY = Template('''\
"""$name: a strategy for botwarden (written by `botwarden new-strategy`).

It buys a dip and sells the bounce: it enters long when the RSI (the relative
strength of the last `length` price moves, 0 to 100) falls below `buy_below`, and
exits when it rises above `sell_above`. Replace the rule in decide() with yours, and
the tests in tests/test_$name.py with what yours should do.

What the engine guarantees, each pass (every `engine.check_interval`), per symbol:
- `bars`: completed bars of the config's timeframe, oldest first, the last
  `bars_needed` of them (fewer only while a position is held and the venue has
  less history: with nothing held, decide() waits for them); the bar still
  forming is never among them.
- `position`: what the bot holds in the symbol (side, size, entry_price,
  entry_time, stop_price, take_profit, custom), or None when it holds nothing.
- A signal is acted on once, ever: its id is (strategy name, symbol, action, bar
  time). Giving the same answer again for the same bar (the next pass, after a
  restart) is safe, and expected.
- Whether a signal becomes an order is the engine's call: the risk guards,
  cooldowns, an order still unresolved, a position already held. The order's size
  (`order:`) and its stop-loss (`stop:`) come from the config unless the signal
  gives its own (Signal.long(..., size=Size.risk_pct(1), stop=Stop.percent(2),
  take_profit=TakeProfit.multiple(2)): docs/signals.md).
- If decide() raises, the bot's status is error: no new entries, every stop kept,
  and it trades again once decide() answers again.

What a strategy must not do:
- send orders or talk to the venue: it returns a Signal, or None;
- read the clock (datetime.now, time.time): the time is bars[-1].time;
- do I/O (files, network, databases): it answers from its arguments, fast;
- keep state between calls in its own attributes: a restart forgets it (compute
  it again from the bars, or keep it with the position: Signal(..., state={...}),
  read back as position.custom).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from botwarden import Bar, Position, Signal


class $cls:
    """Buys a dip (RSI below buy_below), sells the bounce (RSI above sell_above)."""

    name = "$name"
    """Part of every signal's id: keep it once the bot has traded."""

    def __init__(
        self, length: int = 14, buy_below: float = 30, sell_above: float = 70
    ) -> None:
        # The config's `strategy.params` arrive here as keyword arguments. A wrong or
        # unknown one is refused before the bot starts: one line, exit code 2.
        if length < 2:
            raise ValueError(f"length must be at least 2, not {length}")
        if not 0 < buy_below < sell_above < 100:
            raise ValueError(
                f"want 0 < buy_below < sell_above < 100, not {buy_below}, {sell_above}"
            )
        self.length = length
        self.buy_below = buy_below
        self.sell_above = sell_above

    @property
    def bars_needed(self) -> int:
        """How many completed bars decide() sees: `length` moves need one more bar."""
        return self.length + 1

    def decide(
        self, symbol: str, bars: Sequence[Bar], position: Position | None
    ) -> Signal | None:
        if len(bars) < self.bars_needed:
            return None  # a young market: too little history to say anything yet
        last = bars[-1]
        level = rsi([float(bar.close) for bar in bars[-self.bars_needed :]])
        if position is None and level < self.buy_below:
            return Signal.long(symbol, last, f"RSI {level:.1f} < {self.buy_below:g}")
        if position is not None and level > self.sell_above:
            return Signal.exit(symbol, last, f"RSI {level:.1f} > {self.sell_above:g}")
        return None  # nothing to do; the engine keeps protecting what the bot holds


def rsi(closes: Sequence[float]) -> float:
    """The relative strength of the moves between `closes`: 100 when every move was
    up, 0 when every move was down, 50 when nothing moved."""
    moves = [now - before for before, now in pairwise(closes)]
    up = sum(move for move in moves if move > 0)
    down = -sum(move for move in moves if move < 0)
    return 50.0 if up + down == 0 else 100 * up / (up + down)
''')

TESTS = Template('''\
"""Tests of strategies/$name.py: bars in, signals out, as the engine asks.

Run them with `pytest`. `botwarden.testing` makes the bars and positions, and loads
the strategy exactly as a bot's config names it: what the engine would refuse (a
bad param, a missing bars_needed, an answer that is not a signal) fails here first.
"""

from pathlib import Path

import pytest
from botwarden import Action, StrategyLoadError
from botwarden.testing import bars, load, position, replay

PROJECT = Path(__file__).resolve().parents[1]
# The strategy as the config names it (path: strategies/...), from this project:
STRATEGY = f"{PROJECT}/strategies/$name.py:$cls"

CALM = [100, 101, 100, 101, 100, 101]  # up one, down one: RSI 60, nothing to do
DIP = [99, 97]  # two falls: RSI 29 on the second, below 30: it buys
BOUNCE = [98, 100, 102, 104]  # four rises: RSI 78 on the last, above 70: it sells


def test_it_buys_the_dip_and_sells_the_bounce() -> None:
    strategy = load(STRATEGY, length=5)
    history = bars(CALM + DIP + BOUNCE)
    signals = replay(strategy, history)  # bar by bar, holding what it bought
    assert [(s.action, s.bar_time) for s in signals] == [
        (Action.ENTER_LONG, history[7].time),
        (Action.EXIT, history[11].time),
    ]


def test_it_says_nothing_without_enough_bars() -> None:
    strategy = load(STRATEGY, length=5)
    assert strategy.bars_needed == 6
    assert strategy.decide("SPY", bars(CALM[:5]), None) is None


def test_holding_a_position_it_does_not_buy_again() -> None:
    strategy = load(STRATEGY, length=5)
    history = bars(CALM + DIP)
    assert strategy.decide("SPY", history, None) is not None
    assert strategy.decide("SPY", history, position("SPY", entry_price=97)) is None


def test_the_same_bars_get_the_same_answer() -> None:
    """The engine asks again about the same bar (every pass until the next bar
    closes, and after a restart): a strategy that keeps state between calls fails
    here."""
    strategy = load(STRATEGY, length=5)
    history = bars(CALM + DIP)
    first = strategy.decide("SPY", history, None)
    strategy.decide("SPY", bars(BOUNCE + CALM), None)
    assert strategy.decide("SPY", history, None) == first


def test_params_that_make_no_sense_are_refused() -> None:
    with pytest.raises(StrategyLoadError, match="buy_below"):
        load(STRATEGY, buy_below=80, sell_above=20)
''')

CONFIG = Template("""\
# A bot trading strategies/$name.py on the paper exchange: no keys, no servers.
#   botwarden run $name.yaml --ticks 5       five passes, then it stops
#   botwarden run $name.yaml                 until Ctrl-C
#   botwarden torture --config $name.yaml    its life under crashes and faults
bot_id: $name
symbols: [SPY]
order: {qty: 10}
strategy:
  path: strategies/$name.py:$cls    # relative to this file's folder
  params: {length: 14, buy_below: 30, sell_above: 70}
  timeframe: 1h
stop: {kind: percent, distance: 2}
venue:
  type: paper            # its book: state/$name.paper.db, beside the bot's state
  speed: 3600            # the exchange lives an hour a second: a new bar each pass
engine: {check_interval: 1h}
""")


@dataclass(frozen=True)
class Written:
    path: Path
    what: str
    kept: bool = False
    """It was there already and is left as it is (only the config may be)."""


def class_name(name: str) -> str:
    """`mean_reversion` as a class: `MeanReversion`."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a strategy's file, class and bot id; None if it can."""
    if not _NAME.match(name):
        fixed = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
        hint = f" ({fixed})" if _NAME.match(fixed) else ""
        return (
            f"{name!r} is not a strategy name: use letters, digits and underscores,"
            f" starting with a letter, 32 at most{hint}"
        )
    if keyword.iskeyword(name):
        return f"{name!r} is a Python keyword: choose another name"
    if name in sys.stdlib_module_names or name == "botwarden":
        return (
            f"{name!r} is the name of a module Python already has: a strategies/{name}.py"
            " would hide it from the code beside it; choose another name"
        )
    if class_name(name) in _TEMPLATE_IMPORTS:
        return f"{name!r} makes a class {class_name(name)}, a name the template uses"
    return None


def write_new_strategy(folder: Path, name: str) -> list[Written]:
    """Write the strategy NAME, its tests, and its bot's config (unless one exists)
    into `folder`; `ConfigError` (nothing written) for a bad name or a file that exists."""
    problem = name_problem(name)
    if problem is not None:
        raise ConfigError(f"new-strategy: {problem}")
    fields = {"name": name, "cls": class_name(name)}
    files = [
        (folder / "strategies" / f"{name}.py", STRATEGY, "the strategy: its rule is decide()"),
        (folder / "tests" / f"test_{name}.py", TESTS, "its tests, for pytest"),
    ]
    config = folder / f"{name}.yaml"
    for path, _, _ in files:
        if path.exists() or path.is_symlink():
            raise ConfigError(
                f"new-strategy: {path} exists; nothing was written (move it away, or"
                " choose another name)"
            )
    for path in {folder, *(path.parent for path, _, _ in files)}:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"new-strategy: {path} is not a folder; nothing was written")
    if not (config.exists() or config.is_symlink()):
        files.append((config, CONFIG, "a bot trading it on the paper exchange"))
    written = []
    for path, template, what in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as file:  # never over a file made meanwhile
            file.write(template.substitute(fields))
        written.append(Written(path, what))
    if len(written) == 2:
        naming = f"strategy: {{path: strategies/{name}.py:{fields['cls']}}}"
        written.append(Written(config, f"exists, left as it is: name it there, {naming}", True))
    return written
