"""Config files: what users write loads; every mistake is one line naming file and field."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from botwarden.config import BotConfig, load_config
from botwarden.domain.models import format_duration, parse_duration
from botwarden.errors import ConfigError
from botwarden.state.settings import StateSettings, resolve_path

FULL_YAML = """\
bot_id: golden_cross_spy     # the flow_id
state:
  backend: sqlite
  sqlite: {path: "state/{flow_id}.db"}
  duckdb: {path: "state/{flow_id}.duckdb"}
  jsonfile:
    path: state/{flow_id}.json
  redis: {url: redis://localhost:6379, key_prefix: bw}
  postgres: {dsn: postgresql://localhost/botwarden}
  recovery: {mode: sync, orphan_positions: close, max_state_age: 24h}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_documented_yaml_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "bot.yaml", FULL_YAML))
    assert config.bot_id == "golden_cross_spy"
    assert config.state.backend == "sqlite"
    assert config.state.recovery.max_state_age == timedelta(hours=24)
    assert config.base_dir == tmp_path.resolve()


def test_json_and_toml_say_the_same(tmp_path: Path) -> None:
    from_json = load_config(
        write(tmp_path, "b.json", '{"bot_id": "b", "state": {"backend": "jsonfile"}}')
    )
    from_toml = load_config(
        write(tmp_path, "b.toml", 'bot_id = "b"\n[state]\nbackend = "jsonfile"\n')
    )
    assert from_json.model_dump() == from_toml.model_dump()


def test_no_state_section_means_the_embedded_durable_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "bot.yaml", "bot_id: b\n"))
    assert config.state.backend == "sqlite"
    assert StateSettings().backend != "memory"


def test_relative_paths_start_at_the_config_files_folder(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "bot.yaml", "bot_id: b\n"))
    assert resolve_path(config.state.sqlite.path, "b", config.base_dir) == (
        tmp_path.resolve() / "state" / "b.db"
    )
    assert resolve_path("/abs/{flow_id}.db", "b", tmp_path) == Path("/abs/b.db")


def test_environment_variables_fill_in_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BW_TEST_DSN", "postgresql://u:secret@db/bw")
    text = (
        "bot_id: b\nstate:\n  backend: postgres\n"
        '  postgres: {dsn: "${BW_TEST_DSN}", schema: "${BW_SCHEMA:-bots}"}\n'
    )
    config = load_config(write(tmp_path, "bot.yaml", text))
    assert config.state.postgres.dsn == "postgresql://u:secret@db/bw"
    assert config.state.postgres.db_schema == "bots"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "bot_id: b\nstate: {backend: mongo}\n",
            "state.backend: 'mongo' is not allowed; use one of 'memory', 'sqlite'",
        ),
        (
            "bot_id: b\nstate: {recovery: {max_state_age: 24x}}\n",
            "state.recovery.max_state_age: bad duration '24x'",
        ),
        ("state: {backend: sqlite}\n", "bot_id: missing (required)"),
        (
            "bot_id: b\nstate: {sqlit: {}}\n",
            "state.sqlit: unknown field; allowed here: backend, sqlite",
        ),
        (
            "bot_id: b\nvenue: {type: paper, sped: 3600}\n",
            "venue.sped: unknown field; allowed here: type, path, seed,",
        ),
        (
            "bot_id: b\nvenue: {sped: 3600}\n",  # (the paper exchange, unnamed)
            "venue.sped: unknown field; allowed here: type, path, seed,",
        ),
        (
            "bot_id: b\nvenue: {type: alpaca, sped: 1}\n",
            "venue.sped: unknown field; allowed here: stored_key, api_key, secret_key,",
        ),
        (
            "bot_id: b\nvenue: {type: ccxt, exchange: binance, foo: 1}\n",
            "venue.foo: unknown field; allowed here: stored_key, api_key,",
        ),
        (
            "bot_id: b\nbacktest: {markets: {BTC/USDT: {tik: 0.01}}}\n",
            "backtest.markets.BTC/USDT.tik: unknown field; allowed here: tick, qty_step,",
        ),
        (
            "bot_id: b\norder: 10\n",
            "order: expected a mapping of settings (`name: value` pairs), not 10",
        ),
        (
            "bot_id: b\nstate: {recovery: {mode: yolo}}\n",
            "state.recovery.mode: 'yolo' is not allowed; use one of 'sync'",
        ),
        ("bot_id: ../etc\n", "bot_id: '../etc' is not a valid bot id"),
        (
            "bot_id: b\nstate: {backend: postgres, postgres: {dsn: '${BW_SURELY_UNSET}'}}\n",
            "state.postgres.dsn: environment variable BW_SURELY_UNSET is not set",
        ),
        ("bot_id: b\n  oops: [\n", "not valid YAML at line 2"),
        (
            "bot_id: b\nsymbols: [SPY]\nbot_id: c\n",
            "line 3: bot_id is given twice (first at line 1)",
        ),
        (
            "bot_id: b\nstate:\n  backend: sqlite\n  recovery: {mode: sync, mode: manual}\n",
            "line 4: mode is given twice (first at line 4)",
        ),
        (
            "bot_id: b\nvenue: {type: alpaca, paper: true}\nvenue: {type: paper}\n",
            "line 3: venue is given twice (first at line 2)",
        ),
        ("bot_id: b\nsymbols: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("- a list\n", "expected a mapping of settings at the top level"),
        ("bot_id: b\nstate: {", "not valid YAML"),
        (
            "bot_id: b\nstate:\n  sqlite: {path: state/{flow_id}.db}\n",
            'quote a value holding {flow_id} inside {...}: {path: "state/{flow_id}.db"}',
        ),
    ],
)
def test_a_mistake_is_one_line_naming_file_field_and_value(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, "bot.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


def test_missing_and_unknown_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match=r"unknown config format '\.ini'"):
        load_config(write(tmp_path, "bot.ini", "[x]"))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("24h", 86400),
        ("7d", 604800),
        ("1h30m", 5400),
        ("500ms", 0.5),
        (30, 30),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "h", "10 parsecs", "-5s", -1, True, "5s garbage"])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(bad)


@pytest.mark.parametrize("name", ["golden_cross.yaml", "alpaca_paper.yaml", "binance_usdm.yaml"])
def test_the_example_configs_load(name: str) -> None:
    config = load_config(Path(__file__).parents[1] / "examples" / name)
    assert config.symbols and config.strategy.spec == "golden_cross"


def test_a_config_written_out_reads_back_the_same() -> None:
    """Durations are written as a config writes them (`2h`, `1m30s`), not ISO 8601, so
    what botwarden writes out (the simulator, an export) loads again."""
    examples = Path(__file__).resolve().parents[1] / "examples"
    config = load_config(examples / "golden_cross.yaml")
    written = config.model_dump(mode="json")
    assert written["risk"]["cooldown_after_exit"] == "2h"
    assert written["engine"]["unknown_order_grace"] == "15s"
    assert BotConfig.model_validate(written).model_dump() == config.model_dump()
    for text, written in (("1d5m1.5s", "1d5m1.5s"), ("90s", "1m30s"), ("0s", "0s"), ("1w", "7d")):
        assert format_duration(parse_duration(text)) == written


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "bot.json",
            '{"bot_id": "b",\n "state": {"backend": "sqlite"},\n "bot_id": "c"}',
            "line 3",
        ),
        ("bot.json", '{"bot_id": "b", "state": {\n"backend": "x",\n"backend": "y"}}', "line 3"),
        ("bot.toml", 'bot_id = "b"\nsymbols = ["SPY"]\nbot_id = "c"\n', "line 3"),
        ("bot.toml", 'bot_id = "b"\n[state]\nbackend = "sqlite"\n[state]\n', "line 4"),
    ],
)
def test_a_key_given_twice_is_an_error_naming_the_key_and_line(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    """Pasting two alternatives (`venue:` twice) used to load silently, the last one
    winning; YAML, JSON and TOML alike now refuse it."""
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {expected}: ")
    assert "given twice" in message and (
        "bot_id" in message or "backend" in message or "state" in message
    )
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("bot.json", '{"bot_id": "b", "symbols": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        ("bot.toml", 'bot_id = "b"\nsymbols = ' + "[" * 5000 + "]" * 5000 + "\n"),
    ],
)
def test_a_config_nested_too_deeply_is_one_line(tmp_path: Path, name: str, text: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigError, match="nested too deeply") as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_only_the_chosen_backends_section_needs_its_environment(tmp_path: Path) -> None:
    """The README's example: sqlite chosen, the postgres section's `${...}` unset."""
    text = (
        "bot_id: b\nstate:\n  backend: sqlite\n"
        '  postgres: {dsn: "${BW_SURELY_UNSET_DSN}"}\n'
        '  redis: {url: "${BW_SURELY_UNSET_URL}"}\n'
    )
    config = load_config(write(tmp_path, "bot.yaml", text))
    assert config.state.backend == "sqlite"
    with pytest.raises(ConfigError, match=r"state\.redis\.url: environment variable"):
        load_config(write(tmp_path, "bot.yaml", text.replace("sqlite", "redis")))


def test_on_is_a_key_not_a_boolean(tmp_path: Path) -> None:
    """YAML 1.1 reads a bare `on:` (and yes, no, off) as a boolean; a config means the
    word. Booleans are still true and false, and yes/no still read as such where a
    boolean is asked for."""
    text = "bot_id: b\nnotify:\n  on: [error, fill]\nvenue: {shorting: no, reduce_only: true}\n"
    config = load_config(write(tmp_path, "bot.yaml", text))
    assert [topic.value for topic in config.notify.on] == ["error", "fill"]
    assert config.venue.shorting is False and config.venue.reduce_only is True


def test_a_bot_with_no_symbols_is_refused_when_it_would_trade(tmp_path: Path) -> None:
    """A store-only config still serves `state show`; a bot run with it would trade
    nothing, silently."""
    path = write(tmp_path, "bot.yaml", "bot_id: b\n")
    config = load_config(path)
    with pytest.raises(ConfigError) as caught:
        config.require_markets()
    assert str(caught.value).startswith(f"{path}: symbols: ")
    load_config(write(tmp_path, "ok.yaml", "bot_id: b\nsymbols: [SPY]\n")).require_markets()


def test_running_a_bot_with_no_symbols_is_one_line_naming_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, "bot.yaml", "bot_id: idle\nengine: {check_interval: 1s}\n")
    env = {**os.environ, "BOTWARDEN_HOME": str(tmp_path / "home")}
    ran = subprocess.run(
        [sys.executable, "-m", "botwarden", "run", str(path), "--ticks", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr.strip().splitlines()[-1].startswith(f"botwarden: error: {path}: symbols: ")
    assert "Traceback" not in ran.stderr


@pytest.mark.parametrize("where", ["/dev/zero", "huge"])
def test_a_path_to_something_that_is_no_config_is_refused_before_it_is_read(
    tmp_path: Path, where: str
) -> None:
    """Through the API, `{"config": "/dev/zero"}` read without end."""
    path = Path(where) if where.startswith("/") else tmp_path / "huge.yaml"
    if where == "huge":
        path.write_bytes(b"# " + b"x" * (2 * 1024 * 1024) + b"\nbot_id: x\n")
    with pytest.raises(ConfigError, match=r"not a regular file|too large to be a bot.s config"):
        load_config(path)


@pytest.mark.parametrize(
    ("take_profit", "says"),
    [
        ("3", "3 is not a take-profit: write {percent: 4}"),
        ("{percent: -3}", "take_profit: percent: -3 must be above 0"),
        ("{percent: lots}", "take_profit: percent: 'lots' is not a number"),
        ("{pct: 3}", "take_profit: give exactly one of price, percent, distance, multiple"),
        (
            "{price: 100}",
            "take_profit: a price is one position's take-profit, not every position's",
        ),
    ],
)
def test_a_take_profit_policy_is_checked_in_one_line(
    tmp_path: Path, take_profit: str, says: str
) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(f"bot_id: b\ntake_profit: {take_profit}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert says in str(refused.value) and "\n" not in str(refused.value), str(refused.value)
