"""The golden cross: a buy on the cross up, an exit on the cross down, nothing between."""

from __future__ import annotations

import pytest

from botwarden.strategies.base import Action
from botwarden.strategies.golden_cross import GoldenCross, GoldenCrossParams
from botwarden.strategies.loading import StrategyLoadError
from tests.support.strategies import HELD, bars, build


def test_a_cross_up_is_a_buy_once_and_a_cross_down_an_exit() -> None:
    strategy = GoldenCross(GoldenCrossParams(fast=2, slow=4))
    falling_then_up = [10, 9, 8, 7, 6, 10]  # the fast average jumps over the slow one
    signal = strategy.decide("SPY", bars(falling_then_up), None)
    assert signal is not None and signal.action is Action.ENTER_LONG
    assert signal.id == "golden_cross:SPY:enter_long:2026-03-02T05:00:00+00:00"
    assert strategy.decide("SPY", bars(falling_then_up), HELD) is None, "already held"
    assert strategy.decide("SPY", bars([*falling_then_up, 11]), None) is None, "no new cross"
    rising_then_down = [6, 7, 8, 9, 10, 6]
    exit_signal = strategy.decide("SPY", bars(rising_then_down), HELD)
    assert exit_signal is not None and exit_signal.action is Action.EXIT
    assert strategy.decide("SPY", bars(rising_then_down), None) is None, "nothing to exit"


def test_too_few_bars_say_nothing() -> None:
    assert GoldenCross().decide("SPY", bars([1.0] * 100), None) is None
    assert GoldenCross().bars_needed == 101


def test_parameters_are_checked_by_name() -> None:
    assert build("golden_cross", {"fast": 5, "slow": 20}).bars_needed == 21
    with pytest.raises(StrategyLoadError, match=r"fast \(20\) must be shorter than slow \(5\)"):
        build("golden_cross", {"fast": 20, "slow": 5})
    with pytest.raises(StrategyLoadError, match="speed: Extra inputs are not permitted"):
        build("golden_cross", {"speed": 3})
    unknown = r"unknown strategy 'death_cross'; available: coin_flip, golden_cross"
    with pytest.raises(StrategyLoadError, match=unknown):
        build("death_cross", {})
