"""Coin flip: random entries and exits, the same answer for the same bar, every time."""

from __future__ import annotations

import pytest

from botwarden.strategies.base import Action
from botwarden.strategies.loading import StrategyLoadError
from tests.support.strategies import HELD, bars, build


def test_the_same_bar_always_gives_the_same_answer() -> None:
    history = bars([100.0 + n for n in range(400)])
    first = build("coin_flip", {"seed": 5})
    again = build("coin_flip", {"seed": 5})
    answers = [first.decide("SPY", history[: n + 1], None) for n in range(400)]
    assert answers == [again.decide("SPY", history[: n + 1], None) for n in range(400)]
    other = build("coin_flip", {"seed": 6})
    assert answers != [other.decide("SPY", history[: n + 1], None) for n in range(400)]


def test_it_enters_when_flat_and_exits_when_holding_at_the_chances_given() -> None:
    strategy = build("coin_flip", {"seed": 1, "enter": 0.25, "exit": 0.5, "short": True})
    history = bars([100.0] * 2000)
    flat = [strategy.decide("SPY", history[: n + 1], None) for n in range(2000)]
    held = [strategy.decide("SPY", history[: n + 1], HELD) for n in range(2000)]
    entries = [s for s in flat if s is not None]
    assert {s.action for s in entries} == {Action.ENTER_LONG, Action.ENTER_SHORT}
    assert 400 < len(entries) < 600, "a quarter of 2000 bars"
    exits = [s for s in held if s is not None]
    assert {s.action for s in exits} == {Action.EXIT}
    assert 900 < len(exits) < 1100, "half of 2000 bars"
    assert all(s.id.startswith("coin_flip:SPY:") for s in entries + exits)


def test_long_only_unless_asked_and_parameters_checked() -> None:
    strategy = build("coin_flip", {"enter": 1})
    signals = [strategy.decide("SPY", bars([1.0] * (n + 1)), None) for n in range(50)]
    assert {s.action for s in signals if s} == {Action.ENTER_LONG}
    assert strategy.decide("SPY", [], None) is None
    with pytest.raises(StrategyLoadError, match="enter: Input should be less than or equal to 1"):
        build("coin_flip", {"enter": 2})
