"""The library for bots that keep their own loop (`botwarden.Bot`, `botwarden.SyncBot`):
the entries, exits and refusals of `botwarden run`'s engine, read back from the paper
exchange's own book; the same lock; and a script's bot killed and run again, which
finds its position and its stop instead of buying twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from botwarden import (
    Bot,
    BreakerOn,
    CannotMeet,
    GuardRefused,
    NothingHeld,
    Stop,
    SymbolBusy,
    SyncBot,
    VenueRefused,
)
from botwarden.config import BotConfig, load_config
from botwarden.domain.models import BotStatus
from botwarden.domain.orders import IntentStatus, OrderType, Purpose
from botwarden.process.lock import AlreadyRunning
from botwarden.process.run import write_unfenced
from botwarden.state.manager import Transaction
from botwarden.venues.base import OrderState, VenueOrder
from botwarden.venues.factory import open_paper_venue
from tests.conftest import require_redis
from tests.support.processes import promises_hold, wait_for

CONFIG = """\
bot_id: lib_spy
symbols: [SPY, QQQ]
venue: {type: paper, start: 2026-03-02T14:30:00Z}
engine: {check_interval: 1s}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bot.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def on_redis(config: Path) -> Iterator[Path]:
    """The bot's config, its state on Redis under a prefix of its own (gone after)."""
    import redis

    url = require_redis()
    prefix = f"bwtest{uuid.uuid4().hex[:8]}"
    store = f"state: {{backend: redis, redis: {{url: '{url}', key_prefix: {prefix}}}}}\n"
    config.write_text(CONFIG + store)
    yield config
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def fast(config: Path) -> Path:
    """The bot's config on a paper exchange whose clock runs an hour a second."""
    config.write_text(CONFIG.replace("venue: {type: paper, ", "venue: {type: paper, speed: 3600, "))
    return config


@pytest.fixture
def rate_limited(config: Path) -> Path:
    """The bot's config, its exchange answering its first order with a 429."""
    faults = "venue: {type: paper, faults: 'rate_limit:on=submit,nth=1', "
    config.write_text(CONFIG.replace("venue: {type: paper, ", faults))
    return config


@pytest.fixture
def limited(config: Path) -> Path:
    """The bot's config, with two entries a day at most."""
    config.write_text(CONFIG + "risk: {max_trades_per_day: 2}\n")
    return config


def on_the_book(config: Path) -> tuple[list, list[VenueOrder]]:
    """The exchange's own positions and resting orders, read beside the bot."""
    loaded = load_config(config)
    venue = open_paper_venue(loaded.venue, loaded.bot_id, loaded.base_dir)
    try:
        return venue.book.positions(), venue.book.open_orders()
    finally:
        venue.book.close()


async def test_an_entry_rests_its_stop_and_take_profit_on_the_venue(config: Path) -> None:
    async with Bot.open(config) as bot:
        assert bot.report is not None and "recovered" in str(bot.report)
        entry = await bot.enter("SPY", "long", notional=1000, stop_pct=2, take_profit_pct=4)
        assert entry.purpose is Purpose.ENTRY and entry.status is IntentStatus.FILLED
        assert entry.filled_qty * entry.avg_price == pytest.approx(1000, rel=Decimal("0.01"))
        (held,) = bot.positions()
        assert held.size == entry.filled_qty and held.stop_price is not None
        two_pct_below = entry.avg_price * Decimal("0.98")
        assert held.stop_price == pytest.approx(two_pct_below, rel=Decimal("0.001"))
        positions, resting = on_the_book(config)
        assert [(p.symbol, p.qty) for p in positions] == [("SPY", held.size)]
        kinds = {o.type: o for o in resting}
        assert kinds[OrderType.STOP].qty == kinds[OrderType.LIMIT].qty == held.size
        assert kinds[OrderType.LIMIT].limit_price == held.take_profit
        assert {o.purpose for o in bot.orders()} == {Purpose.STOP, Purpose.TAKE_PROFIT}
        assert bot.risk().daily_trade_count == 1
    await promises_hold(config)


async def test_exits_in_parts_resize_the_stop_and_the_last_goes_flat(config: Path) -> None:
    async with Bot.open(config) as bot:
        entry = await bot.enter("SPY", qty=10, stop=Stop.percent(3, trailing=True))
        assert entry.filled_qty == 10
        (half,) = await bot.exit("SPY", fraction=0.5)
        assert half.purpose is Purpose.EXIT and half.qty == 5
        assert bot.position("SPY").size == 5
        _, resting = on_the_book(config)
        assert [(o.type, o.qty) for o in resting] == [(OrderType.STOP, Decimal(5))]
        await bot.exit("SPY")
        assert bot.positions() == [] and bot.orders() == []
        positions, resting = on_the_book(config)
        assert positions == [] and resting == [], "nothing held, nothing left resting"
        with pytest.raises(NothingHeld, match="exit SPY refused: nothing to exit"):
            await bot.exit("SPY")
        assert len([f for f in await bot.fills() if f.symbol == "SPY"]) == 3
    await promises_hold(config)


async def test_what_the_guards_refuse_is_an_exception_of_its_kind(limited: Path) -> None:
    config = limited
    async with Bot.open(config) as bot:
        await bot.enter("SPY", qty=1)
        with pytest.raises(SymbolBusy, match="a position is already held"):
            await bot.enter("SPY", qty=1)
        with pytest.raises(CannotMeet, match="QQQ"):
            await bot.enter("QQQ", notional=10**9)  # never sent smaller
        await bot.enter("QQQ", qty=1)
        await bot.exit("QQQ")
        with pytest.raises(GuardRefused, match="daily limit is 2"):
            await bot.enter("QQQ", qty=1)
        with pytest.raises(ValueError, match="give one of qty, notional"):
            await bot.enter("QQQ", qty=1, notional=100)
        skipped = [e.message for e in await bot._runner.state.history.events()]
        assert sum("skipped" in line for line in skipped) == 3, "each refusal in the log"
        _, resting = on_the_book(config)
        assert [o.symbol for o in resting] == ["SPY"], "only the stop of what is held"


async def test_a_limit_entry_that_fills_while_the_program_waits_gets_its_stop(
    fast: Path,
) -> None:
    """The program awaits something else (not the bot): the bot's own passes read the
    limit's fill and rest its stop, as `botwarden run` would; without them, the
    position would stay bare until the program's next call."""
    async with Bot.open(fast) as bot:
        price = await bot.price("SPY")  # (it rises 1% within the next two hours)
        entry = await bot.enter("SPY", "short", qty=2, limit=price * Decimal("1.005"))
        assert entry.filled_qty == 0, "resting above the price"
        for _ in range(100):
            await asyncio.sleep(0.1)  # the program's own await
            positions, resting = on_the_book(fast)
            if positions and any(o.type is OrderType.STOP for o in resting):
                break
        else:
            pytest.fail("the limit filled, or not, but no stop came to rest")
        assert [o.qty for o in resting if o.type is OrderType.STOP] == [Decimal(2)]


async def test_two_entries_at_once_buy_once(on_redis: Path) -> None:
    """Two tasks entering the same symbol both passed the checks before either's order
    was written ahead (a server store's write lets the other task run), and the
    position doubled (and both calls raised)."""
    async with Bot.open(on_redis) as bot:
        outcomes = await asyncio.gather(
            bot.enter("SPY", qty=2), bot.enter("SPY", qty=2), return_exceptions=True
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["OrderIntent", "SymbolBusy"]
        positions, _ = on_the_book(on_redis)
        assert [(p.symbol, p.qty) for p in positions] == [("SPY", 2)]


async def test_a_symbol_the_bot_does_not_trade_and_a_venue_refusal_raise(config: Path) -> None:
    async with Bot.open(config) as bot:
        with pytest.raises(CannotMeet, match="not among the bot's symbols"):
            await bot.enter("AAPL", qty=1)
        with pytest.raises(ValueError, match="stop_pct: -2: Input should be greater than 0"):
            await bot.enter("SPY", qty=1, stop_pct=-2)


async def test_an_order_the_venue_does_not_take_is_an_exception(rate_limited: Path) -> None:
    async with Bot.open(rate_limited) as bot:
        with pytest.raises(VenueRefused, match="canceled: not sent") as refused:
            await bot.enter("SPY", qty=1)
        assert refused.value.order.filled_qty == 0
        assert (await bot.enter("SPY", qty=1)).filled_qty == 1, "sent at the next call"


async def test_the_breaker_refuses_entries_and_never_the_exit(config: Path) -> None:
    loaded = load_config(config)
    async with Bot.open(loaded) as bot:
        await bot.enter("SPY", qty=2)

    def trip(tx: Transaction, now: datetime) -> None:  # tripped while the bot was down
        until = now + timedelta(days=3)
        risk = tx.state.risk.model_copy(update={"breaker_until": until, "breaker_reason": "test"})
        tx.save_risk_state(risk)

    await write_unfenced(loaded, trip)
    async with Bot.open(loaded) as bot:
        with pytest.raises(BreakerOn, match="circuit breaker"):
            await bot.enter("QQQ", qty=1)
        await bot.exit("SPY")
        assert bot.positions() == []


async def test_a_second_instance_is_refused_in_the_process_and_out_of_it(config: Path) -> None:
    async with Bot.open(config) as bot:
        with pytest.raises(AlreadyRunning):
            async with Bot.open(config):
                pass
        run = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "botwarden", "run", str(config), "--ticks", "1"),
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(run.communicate(), timeout=60)
        assert run.returncode != 0 and "already running" in err.decode()
        await bot.tick()  # and the first goes on


def test_the_sync_twin_from_settings_built_in_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # (relative paths: the state's folder)
    settings = BotConfig.model_validate(
        {"bot_id": "sync_spy", "symbols": ["SPY"], "engine": {"check_interval": "1s"}}
    )
    with SyncBot.open(settings) as bot:
        entry = bot.enter("SPY", "long", qty=3, stop_price=300, state={"stage": 1})
        assert entry.filled_qty == 3
        bot.sleep(1.5)
        held = bot.position("SPY")
        assert held.stop_price == 300 and held.custom == {"stage": 1}
        moved = bot.update("SPY", stop_price=310, state={"stage": 2})
        assert moved.stop_price == 310 and moved.custom == {"stage": 2}
    assert (tmp_path / "state" / "sync_spy.db").exists()
    with SyncBot.open(settings) as bot:  # a new life: its position, read back
        assert bot.position("SPY").custom == {"stage": 2}


SCRIPT = """\
import sys
import time

from botwarden import SymbolBusy, SyncBot

with SyncBot.open(sys.argv[1]) as bot:
    try:
        bot.enter("SPY", "long", qty=4, stop_pct=2)
        print("entered", flush=True)
    except SymbolBusy as refused:
        print("held already:", refused.reason, flush=True)
    while bot.running():
        bot.sleep(0.5)
        time.sleep(600)  # the script's own code: SIGTERM ends it even here
print("not reached: SIGTERM ends the script as Ctrl-C would", flush=True)
"""


def test_a_scripts_bot_killed_and_run_again_finds_its_position(
    config: Path, tmp_path: Path
) -> None:
    """Killed (SIGKILL) after its entry, run again: its entry is refused, the position
    and its stop found on the venue; then `botwarden resolve`'s SIGUSR1 is heard, not
    fatal, and SIGTERM (`botwarden stop`) ends it, in its own `time.sleep`, cleanly."""
    script = tmp_path / "my_bot.py"
    script.write_text(textwrap.dedent(SCRIPT))
    book = tmp_path / "state" / "lib_spy.paper.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    lives = []
    for ending in (signal.SIGKILL, signal.SIGTERM):
        life = subprocess.Popen(
            [sys.executable, str(script), str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        said = life.stdout.readline()
        wait_for(lambda: book.exists(), seconds=30)
        if ending is signal.SIGTERM:
            time.sleep(1)  # (in its time.sleep by now)
            life.send_signal(signal.SIGUSR1)
        life.send_signal(ending)
        out, err = life.communicate(timeout=30)
        lives.append((said + out, err, life.returncode))
    assert lives[0][:1] == ("entered\n",) and lives[0][2] == -signal.SIGKILL, lives[0]
    assert lives[1] == ("held already: a position is already held\n", lives[1][1], 0)
    positions, resting = on_the_book(config)
    assert [(p.symbol, p.qty) for p in positions] == [("SPY", 4)], "bought once, not twice"
    assert [(o.type, o.qty, o.state) for o in resting] == [
        (OrderType.STOP, Decimal(4), OrderState.OPEN)
    ]
    state = asyncio.run(promises_hold(config, epoch_at_least=2))
    assert state.bot.status is BotStatus.STOPPED
    botwarden = [sys.executable, "-m", "botwarden"]
    shown = subprocess.run([*botwarden, "status", "lib_spy", "--json"], capture_output=True)
    (report,) = json.loads(shown.stdout)
    assert report["status"] == "stopped" and report["strategy"] == "its own code", report
    logs = subprocess.run([*botwarden, "logs", "lib_spy"], capture_output=True, text=True)
    assert "recovered" in logs.stdout and "lib_spy" in logs.stdout, logs
    again = subprocess.run([*botwarden, "restart", "lib_spy"], capture_output=True, text=True)
    assert again.returncode == 1, "its config's strategy is not what runs it"
    assert "run by its own code" in again.stderr and "Traceback" not in again.stderr
    for verb in ("start", "run"):  # its config names no strategy: it would trade the default
        launched = subprocess.run(
            [*botwarden, verb, str(config)], capture_output=True, text=True, timeout=60
        )
        assert launched.returncode == 1 and "names no strategy" in launched.stderr, launched
