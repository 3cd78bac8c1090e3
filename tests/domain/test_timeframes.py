"""Timeframes: the names botwarden supports, and bars aligned as Binance and Alpaca align
theirs (UTC boundaries, weeks from Monday), whatever zone an instant is written in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from botwarden.domain.timeframes import (
    TIMEFRAMES,
    UnknownTimeframe,
    bar_open,
    last_completed_bar_open,
    width,
)

WEDNESDAY = datetime(2026, 3, 4, 13, 47, 21, 500_000, tzinfo=UTC)


def test_the_supported_timeframes_narrowest_first() -> None:
    assert list(TIMEFRAMES) == ["1m", "5m", "15m", "1h", "4h", "1d", "1w"]
    assert [width(t) for t in ("4h", "1w")] == [timedelta(hours=4), timedelta(days=7)]
    assert list(TIMEFRAMES.values()) == sorted(TIMEFRAMES.values())


@pytest.mark.parametrize(
    ("timeframe", "opened"),
    [
        ("1m", datetime(2026, 3, 4, 13, 47, tzinfo=UTC)),
        ("5m", datetime(2026, 3, 4, 13, 45, tzinfo=UTC)),
        ("15m", datetime(2026, 3, 4, 13, 45, tzinfo=UTC)),
        ("1h", datetime(2026, 3, 4, 13, tzinfo=UTC)),
        ("4h", datetime(2026, 3, 4, 12, tzinfo=UTC)),
        ("1d", datetime(2026, 3, 4, tzinfo=UTC)),
        ("1w", datetime(2026, 3, 2, tzinfo=UTC)),  # the Monday before
    ],
)
def test_the_bar_containing_an_instant_opens_on_its_utc_boundary(
    timeframe: str, opened: datetime
) -> None:
    assert bar_open(timeframe, WEDNESDAY) == opened
    assert opened <= WEDNESDAY < opened + TIMEFRAMES[timeframe]
    assert bar_open(timeframe, opened) == opened, "a boundary opens its own bar"


def test_a_weekly_bar_never_opens_on_a_day_other_than_monday() -> None:
    # Every 7h 13min for four years (a leap day among them), so every weekday and hour.
    at = datetime(2023, 1, 1, 0, 1, tzinfo=UTC)
    while at < datetime(2027, 1, 1, tzinfo=UTC):
        opened = bar_open("1w", at)
        assert opened.weekday() == 0, f"{at}: the week opened on {opened:%A}"
        assert opened.time() == datetime.min.time()
        assert opened <= at < opened + timedelta(weeks=1)
        at += timedelta(hours=7, minutes=13)


def test_four_hour_bars_break_at_utc_midnight() -> None:
    midnight = datetime(2026, 1, 1, tzinfo=UTC)
    assert bar_open("4h", midnight - timedelta(microseconds=1)) == midnight - timedelta(hours=4)
    assert bar_open("4h", midnight) == midnight
    assert bar_open("4h", midnight + timedelta(hours=3, minutes=59)) == midnight
    assert bar_open("4h", midnight + timedelta(hours=4)) == midnight + timedelta(hours=4)
    day = {bar_open("4h", midnight + timedelta(minutes=m)).hour for m in range(0, 1440, 7)}
    assert day == {0, 4, 8, 12, 16, 20}


@pytest.mark.parametrize(
    ("zone", "change"),
    [
        ("America/New_York", datetime(2026, 3, 8, 7, tzinfo=UTC)),  # 02:00 EST -> 03:00 EDT
        ("Europe/Berlin", datetime(2026, 10, 25, 1, tzinfo=UTC)),  # 03:00 CEST -> 02:00 CET
    ],
)
def test_a_local_clock_change_moves_no_bar(zone: str, change: datetime) -> None:
    """The same instant, written in a zone whose clocks jump, opens the same UTC bar."""
    local = ZoneInfo(zone)
    instants = [change + timedelta(minutes=m) for m in range(-6 * 60, 6 * 60, 10)]
    for timeframe in TIMEFRAMES:
        for at in instants:
            opened = bar_open(timeframe, at.astimezone(local))
            assert opened == bar_open(timeframe, at)
            assert opened.utcoffset() == timedelta(0)
    opens = sorted({bar_open("4h", at.astimezone(local)) for at in instants})
    assert {b - a for a, b in pairwise(opens)} == {timedelta(hours=4)}


def test_the_last_completed_bar_is_the_one_before_the_forming_bar() -> None:
    assert last_completed_bar_open("4h", WEDNESDAY) == datetime(2026, 3, 4, 8, tzinfo=UTC)
    assert last_completed_bar_open("1w", WEDNESDAY) == datetime(2026, 2, 23, tzinfo=UTC)
    monday = datetime(2026, 3, 2, tzinfo=UTC)
    assert last_completed_bar_open("1w", monday) == monday - timedelta(weeks=1), (
        "a week closing exactly now has closed"
    )
    for timeframe, size in TIMEFRAMES.items():
        newest = last_completed_bar_open(timeframe, WEDNESDAY)
        assert newest + size <= WEDNESDAY < newest + 2 * size


def test_an_unknown_timeframe_names_the_supported_ones() -> None:
    with pytest.raises(UnknownTimeframe, match=r"'2h'; use one of 1m, 5m, 15m, 1h, 4h, 1d, 1w$"):
        bar_open("2h", WEDNESDAY)
    with pytest.raises(UnknownTimeframe):
        width("1M")


def test_an_instant_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        bar_open("1h", datetime(2026, 3, 4, 13))
