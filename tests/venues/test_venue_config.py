"""The `venue:` section: the paper exchange from a config file, and its mistakes."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.config import load_config
from botwarden.errors import ConfigError
from botwarden.venues.base import Ambiguous, OrderState
from botwarden.venues.factory import open_paper_venue
from tests.venues.test_paper import Clock, order


async def test_a_bot_without_a_venue_section_trades_on_the_paper_exchange(tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text("bot_id: golden\n")
    config = load_config(path)
    assert config.venue.type == "paper"
    assert {"SPY", "QQQ", "AAPL", "BTC/USDT", "ETH/USDT"} <= set(config.venue.instruments)

    venue = open_paper_venue(config.venue, config.bot_id, config.base_dir, Clock())
    filled = await venue.submit(order("golden-000001", qty="2"))
    assert filled.state is OrderState.FILLED
    rules = await venue.market("BTC/USDT")
    assert (rules.qty_step, rules.min_notional) == (Decimal("0.0001"), Decimal("5"))
    venue.book.close()
    assert (tmp_path / "state" / "golden.paper.db").exists()


async def test_paper_settings_shape_the_exchange(tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(
        "bot_id: b\n"
        "venue:\n"
        "  client_ids: binance\n"
        "  starting_cash: 5000\n"
        "  instruments: {XYZ: {price: 12.5}}\n"
        "  faults: 'timeout_after:on=submit,nth=1'\n"
    )
    config = load_config(path)
    venue = open_paper_venue(config.venue, config.bot_id, config.base_dir, Clock())
    assert venue.capabilities.client_ids == "unique_while_open"
    assert (await venue.balance()).cash == Decimal("5000")
    assert [bar.close > 0 for bar in await venue.bars("XYZ", "1h", 2)] == [True, True]
    with pytest.raises(Ambiguous):  # the configured fault: the first answer is lost
        await venue.submit(order("b-000001", symbol="XYZ", qty="1"))
    assert (await venue.order("b-000001", "XYZ")).state is OrderState.FILLED
    venue.book.close()


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("venue: {type: kraken}", "venue.type: 'kraken' is not allowed; use one of 'paper'"),
        ("venue: {faults: 'meteor:p=1'}", "venue.faults: unknown fault 'meteor'"),
        ("venue: {instruments: {X: {price: -1}}}", "venue.instruments.X.price"),
    ],
)
def test_venue_mistakes_are_one_line(tmp_path: Path, section: str, expected: str) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(f"bot_id: b\n{section}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_an_accelerated_exchange_keeps_its_timeline_across_restarts(tmp_path: Path) -> None:
    from datetime import timedelta

    from tests.venues.test_paper import T0

    path = tmp_path / "bot.yaml"
    path.write_text("bot_id: fast\nvenue: {speed: 60}\n")
    config = load_config(path)
    wall = Clock()
    venue = open_paper_venue(config.venue, config.bot_id, config.base_dir, wall)
    wall.now = T0 + timedelta(minutes=1)
    assert venue.clock() == T0 + timedelta(hours=1)
    venue.book.close()

    wall.now = T0 + timedelta(minutes=2)  # down for a minute: the exchange moved on an hour
    again = open_paper_venue(config.venue, config.bot_id, config.base_dir, wall)
    assert again.clock() == T0 + timedelta(hours=2)
    again.book.close()


async def test_a_start_time_makes_a_run_replayable(tmp_path: Path) -> None:
    """Two books started at the same exchange time with the same seed see the same
    prices, whatever the wall clock says; the start counts only for a new book."""
    from datetime import timedelta

    from tests.venues.test_paper import T0

    path = tmp_path / "bot.yaml"
    path.write_text("bot_id: a\nvenue: {speed: 3600, start: 2026-01-05T00:00:00Z}\n")
    config = load_config(path)
    wall = Clock()
    first = open_paper_venue(config.venue, "a", config.base_dir, wall)
    other = open_paper_venue(config.venue, "b", config.base_dir, Clock(T0 + timedelta(days=9)))
    assert str(first.clock()) == str(other.clock()) == "2026-01-05 00:00:00+00:00"
    assert await first.last_price("SPY") == await other.last_price("SPY")
    first.book.close()
    wall.now = T0 + timedelta(seconds=2)
    again = open_paper_venue(config.venue, "a", config.base_dir, wall)
    assert str(again.clock()) == "2026-01-05 02:00:00+00:00", "the book's own timeline"
    again.book.close()
    other.book.close()


async def test_a_restart_at_another_speed_never_turns_the_exchange_clock_back(
    tmp_path: Path,
) -> None:
    from datetime import timedelta

    from tests.venues.test_paper import T0

    path = tmp_path / "bot.yaml"
    path.write_text("bot_id: fast\nvenue: {speed: 60}\n")
    wall = Clock()
    fast = open_paper_venue(load_config(path).venue, "fast", tmp_path, wall)
    wall.now = T0 + timedelta(minutes=10)
    await fast.positions()  # the book has now seen T0 + 10 h
    fast.book.close()

    path.write_text("bot_id: fast\nvenue: {speed: 1}\n")
    wall.now = T0 + timedelta(minutes=11)
    slow = open_paper_venue(load_config(path).venue, "fast", tmp_path, wall)
    assert slow.clock() == T0 + timedelta(hours=11), "re-anchored where the fast clock got to"
    wall.now += timedelta(minutes=1)
    assert slow.clock() == T0 + timedelta(hours=11, minutes=1)
    slow.book.close()


async def test_an_alpaca_venue_from_config_trades_through_the_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("alpaca", reason="needs alpaca-py: pip install 'botwarden[alpaca]'")
    from botwarden.venues.emulators.server import serving
    from botwarden.venues.factory import open_venue
    from tests.support.alpaca import KEY, SECRET, start

    venue, app = start(tmp_path)
    with serving(app) as url:
        path = tmp_path / "bot.yaml"
        path.write_text(
            f"bot_id: b\nvenue: {{type: alpaca, base_url: '{url}', data_url: '{url}'}}\n"
        )
        monkeypatch.setenv("ALPACA_API_KEY", KEY)
        monkeypatch.setenv("ALPACA_SECRET_KEY", SECRET)
        config = load_config(path)
        alpaca = open_venue(config.venue, config.bot_id, config.base_dir)
        await alpaca.connect()
        assert (await alpaca.submit(order("b-000001"))).state is OrderState.FILLED
        await alpaca.close()
    venue.book.close()


def test_an_alpaca_venue_without_keys_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botwarden.venues.factory import open_venue

    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    monkeypatch.delenv("ALPACA_SECRET_KEY", raising=False)
    path = tmp_path / "bot.yaml"
    path.write_text("bot_id: b\nvenue: {type: alpaca}\n")
    config = load_config(path)
    with pytest.raises(ConfigError, match="no API keys; set ALPACA_API_KEY and ALPACA_SECRET_KEY"):
        open_venue(config.venue, config.bot_id, config.base_dir)


def test_keys_in_a_config_others_can_read_are_warned_about_and_never_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text("bot_id: b\nvenue: {type: alpaca, api_key: PKSECRET1, secret_key: hunter2}\n")
    path.chmod(0o644)
    config = load_config(path)
    assert "chmod 600" in caplog.text
    assert "hunter2" not in repr(config) + str(config.model_dump()) + caplog.text
    path.chmod(0o600)
    caplog.clear()
    load_config(path)
    assert "chmod" not in caplog.text

    path.write_text("bot_id: b\nvenue: {type: alpaca, secret_key: [hunter2]}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "venue.secret_key" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("api", ["binance", "binanceusdm"])
async def test_a_ccxt_venue_from_config_trades_through_the_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    pytest.importorskip("ccxt", reason="needs ccxt: pip install 'botwarden[ccxt]'")
    from botwarden.venues.emulators.server import serving
    from botwarden.venues.factory import open_venue
    from tests.venues.test_ccxt_adapter import KEY, SECRET, start

    flavour, symbol = ("spot", "BTC/USDT") if api == "binance" else ("usdm", "BTC/USDT:USDT")
    venue, app = start(tmp_path, flavour)
    with serving(app) as url:
        path = tmp_path / "bot.yaml"
        path.write_text(
            f"bot_id: b\nvenue: {{type: ccxt, exchange: {api}, base_url: '{url}',"
            f" symbols: ['{symbol}']}}\n"
        )
        monkeypatch.setenv("BOTWARDEN_CCXT_API_KEY", KEY)
        monkeypatch.setenv("BOTWARDEN_CCXT_SECRET", SECRET)
        config = load_config(path)
        ccxt = open_venue(config.venue, config.bot_id, config.base_dir)
        await ccxt.connect()
        filled = await ccxt.submit(order("b-000001", symbol=symbol, qty="0.01"))
        assert filled.state is OrderState.FILLED
        await ccxt.close()
    venue.book.close()


def test_keys_come_from_a_secrets_file_when_not_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from botwarden.venues.factory import credentials

    monkeypatch.delenv("BOTWARDEN_CCXT_API_KEY", raising=False)
    monkeypatch.setenv("BOTWARDEN_CCXT_SECRET", "from-the-environment")
    secrets = tmp_path / "keys.env"
    secrets.write_text(
        "# Binance\nexport BOTWARDEN_CCXT_API_KEY='file-key'\nBOTWARDEN_CCXT_SECRET=file-secret\n"
    )
    secrets.chmod(0o600)
    path = tmp_path / "bot.yaml"
    path.write_text("bot_id: b\nvenue: {type: ccxt, exchange: binance, secrets_file: keys.env}\n")
    config = load_config(path)
    names = ("BOTWARDEN_CCXT_API_KEY", "BOTWARDEN_CCXT_SECRET")
    assert credentials(config.venue, names, config.base_dir) == (
        "file-key", "from-the-environment"
    )  # fmt: skip
    assert "chmod" not in caplog.text
    secrets.chmod(0o644)
    credentials(config.venue, names, config.base_dir)
    assert "chmod 600" in caplog.text and "file-secret" not in caplog.text

    secrets.write_text("BOTWARDEN_CCXT_API_KEY file-key\n")
    with pytest.raises(ConfigError, match=r"keys\.env: line 1: expected NAME=value"):
        credentials(config.venue, names, config.base_dir)
    secrets.unlink()
    with pytest.raises(ConfigError, match=r"keys\.env: cannot read the secrets file"):
        credentials(config.venue, names, config.base_dir)


def test_a_ccxt_venue_names_an_exchange_ccxt_knows(tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text("bot_id: b\nvenue: {type: ccxt}\n")
    with pytest.raises(ConfigError, match=r"venue\.exchange: missing"):
        load_config(path)
    path.write_text("bot_id: b\nvenue: {type: ccxt, exchange: Binance}\n")
    with pytest.raises(ConfigError, match=r"venue\.exchange"):
        load_config(path)
    pytest.importorskip("ccxt", reason="needs ccxt: pip install 'botwarden[ccxt]'")
    from botwarden.venues.factory import open_venue

    path.write_text(
        "bot_id: b\nvenue: {type: ccxt, exchange: binanceusd, api_key: k, secret_key: s}\n"
    )
    path.chmod(0o600)
    config = load_config(path)
    with pytest.raises(ConfigError, match=r"no exchange 'binanceusd'; did you mean binanceusdm"):
        open_venue(config.venue, config.bot_id, config.base_dir)


async def test_a_clock_skew_sets_the_exchanges_clock_off_the_hosts(tmp_path: Path) -> None:
    """`clock_skew:by=-8d`: the exchange's clock (its fills, its prices, the time it
    tells) runs 8 days behind the host's, as at a venue whose host lags."""
    from datetime import timedelta

    from tests.venues.test_paper import T0

    path = tmp_path / "bot.yaml"
    path.write_text("bot_id: s\nvenue: {faults: 'clock_skew:by=-8d'}\n")
    config = load_config(path)
    host = Clock()
    venue = open_paper_venue(config.venue, config.bot_id, config.base_dir, host)
    assert venue.clock() == T0 - timedelta(days=8)
    reading = await venue.read_clock()
    assert (reading.offset, reading.skewed) == (-timedelta(days=8), True)
    assert reading.describe("paper") == (
        "paper's clock is 8.0 days behind this host's (tolerance 5 s)"
    )
    assert await venue.positions() == [], "no call fails for it"
    venue.book.close()


@pytest.mark.parametrize("throttle", [True, False])
async def test_ccxt_paces_its_requests_unless_told_the_venue_limits_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, throttle: bool
) -> None:
    """Binance's weights make ccxt wait seconds a pass; against the local emulator,
    which limits nothing, `throttle: false` turns ccxt's own rate limiter off (the real
    campaign does)."""
    pytest.importorskip("ccxt", reason="needs ccxt: pip install 'botwarden[ccxt]'")
    from botwarden.venues.emulators.server import serving
    from botwarden.venues.factory import open_venue
    from tests.venues.test_ccxt_adapter import KEY, SECRET, start

    venue, app = start(tmp_path, "usdm")
    monkeypatch.setenv("BOTWARDEN_CCXT_API_KEY", KEY)
    monkeypatch.setenv("BOTWARDEN_CCXT_SECRET", SECRET)
    setting = "" if throttle else ", throttle: false"
    with serving(app) as url:
        path = tmp_path / "bot.yaml"
        path.write_text(
            f"bot_id: b\nvenue: {{type: ccxt, exchange: binanceusdm, base_url: '{url}'{setting}}}\n"
        )
        ccxt = open_venue(load_config(path).venue, "b", tmp_path)
        await ccxt.connect()
        assert ccxt._exchange.enableRateLimit is throttle  # the SDK's own switch
        await ccxt.close()
    venue.book.close()
