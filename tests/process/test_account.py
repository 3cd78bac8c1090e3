"""`botwarden account`: the venue's view beside the bot's, every difference named, and
nothing sent or written."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path

from botwarden.config import load_config
from botwarden.process.supervisor import Supervisor
from botwarden.venues.base import OrderRequest
from botwarden.venues.factory import open_paper_venue
from tests.process.test_supervisor import _wait, cli, report_of
from tests.support.processes import CONFIG

HOLDER = (
    CONFIG.replace(  # enters at once and holds, its stop far away
        "strategy: {name: golden_cross, params: {fast: 3, slow: 8}, timeframe: 1h}",
        "strategy: {name: coin_flip, params: {enter: 1, exit: 0}, timeframe: 1h}",
    )
    + "stop: {distance: 25}\n"
)


def account(config: Path) -> tuple[subprocess.CompletedProcess, dict]:
    table = cli("account", str(config))
    shown = cli("account", str(config), "--json")
    assert shown.returncode == 0, shown.stderr
    return table, json.loads(shown.stdout)


def behind_the_bots_back(config: Path, *requests: OrderRequest, cancel: str = "") -> None:
    settings = load_config(config)
    venue = open_paper_venue(settings.venue, settings.bot_id, settings.base_dir)
    now = venue.clock()
    if cancel:
        venue.book.cancel(cancel, now)
    for request in requests:
        venue.book.submit(request, now)
    venue.book.close()


def test_the_account_beside_the_bot_with_every_difference(
    tmp_path: Path, botwarden_home: Path
) -> None:
    config = tmp_path / "bot.yaml"
    config.write_text(HOLDER)
    supervisor = Supervisor(botwarden_home)
    supervisor.start(config)
    _wait(lambda: report_of(supervisor).positions)
    refused = cli("account", str(config))
    assert refused.returncode == 1 and "lives inside its process" in refused.stderr
    supervisor.stop("golden_spy")

    table, view = account(config)
    assert view["differences"] == 0 and "the venue and the bot agree" in table.stdout
    [position] = view["positions"]
    assert position["venue"] == position["bot"] and "(on the venue)" in position["stop"]
    [stop] = view["orders"]
    assert stop["venue"] == "open" and stop["bot"] == "stop accepted"
    assert Decimal(view["balance"]["equity"]) > 0

    behind_the_bots_back(config, cancel=stop["client_order_id"])
    table, view = account(config)
    assert view["differences"] == 2
    assert view["positions"][0]["difference"] == "NO STOP on the venue"
    assert view["orders"][0]["difference"] == "the bot thinks it open; the venue does not list it"
    assert "NO STOP on the venue" in table.stdout and "2 difference(s)" in table.stdout

    behind_the_bots_back(
        config,
        OrderRequest(client_order_id="by-hand-1", symbol="SPY", side="buy", type="market",
                     qty=Decimal(5)),
        OrderRequest(client_order_id="by-hand-2", symbol="SPY", side="buy", type="limit",
                     qty=Decimal(1), limit_price=Decimal(100)),
    )  # fmt: skip
    _, view = account(config)
    assert view["positions"][0]["difference"].startswith("sizes differ: the venue long 15")
    foreign = next(o for o in view["orders"] if o["client_order_id"] == "by-hand-2")
    assert foreign["bot"] == "not the bot's" and foreign["difference"] is None

    _, again = account(config)
    assert again["positions"] == view["positions"], "looking changed nothing"
    assert report_of(supervisor).pid is None
