"""A real full disk with an entry in flight: the entry's intent is written, the order
goes out and fills, and the disk fills up the moment after. The position must still
get its stop while the store cannot write (found from outside: the position stayed
bare for the whole outage). The disk is a real tmpfs of 512 KiB (`tests/disks.py`),
filled by a file the test writes; every check reads the paper exchange's own book."""

from __future__ import annotations

import errno
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.config import BotConfig
from botwarden.domain.orders import OrderType
from botwarden.engine.checks import check_promises
from botwarden.engine.runner import Runner
from botwarden.state.manager import StateManager
from botwarden.state.sqlite import SqliteStore
from botwarden.venues.base import OrderRequest, VenueOrder
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.venue import PaperVenue
from tests.conftest import whole
from tests.disks import tmpfs
from tests.engine.harness import CONFIG
from tests.venues.test_paper import FEED, Clock

BUSY = {"strategy": {"name": "coin_flip", "params": {"seed": 5}, "timeframe": "1h"}}


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses another byte."""
    filler = disk / "filler"
    with (
        filler.open("wb", buffering=0) as out,
        pytest.raises(OSError, match="No space left") as refused,
    ):
        while True:
            out.write(b"\0" * 4096)
    assert refused.value.errno == errno.ENOSPC
    return filler


class FillsTheDiskAfterAnEntry(PaperVenue):
    """The paper exchange, and a disk that fills the moment an entry was accepted."""

    disk: Path | None = None

    async def submit(self, request: OrderRequest) -> VenueOrder:
        answer = await super().submit(request)
        if self.disk is not None and request.type is OrderType.MARKET and not request.reduce_only:
            fill(self.disk)
            self.disk = None
        return answer


def uncovered(book: PaperBook) -> list[str]:
    """Positions the exchange holds that no resting stop or working exit covers."""
    bare = []
    for held in book.positions():
        exit_side = held.side.exit_order_side
        covering = [
            o
            for o in book.open_orders()
            if o.symbol == held.symbol and o.side is exit_side and o.type is not OrderType.LIMIT
        ]
        covered = sum((o.qty - o.filled_qty for o in covering), Decimal(0))
        if covered < held.qty:
            bare.append(f"{held.qty} {held.symbol} held, {covered} covered")
    return bare


async def test_a_position_filled_as_the_disk_fills_gets_its_stop_without_the_store(
    tmp_path: Path,
) -> None:
    clock = Clock()
    book = PaperBook(tmp_path / "paper.db", FEED, BookSettings())
    with tmpfs(tmp_path / "disk") as disk:
        state = StateManager("golden", SqliteStore(disk / "state.db"), clock=clock)
        await state.open()
        venue = FillsTheDiskAfterAnEntry(book, clock)
        runner = Runner(
            BotConfig.model_validate({**CONFIG, **BUSY}).bot_settings(), state, venue, clock
        )
        await runner.start()
        venue.disk = disk  # from now on, the next entry fills the disk
        hours = 0
        while venue.disk is not None:
            clock.now += timedelta(hours=1)
            await runner.tick()
            hours += 1
            assert hours < 24 * 10, "the coin never entered"
        assert book.positions(), "the entry filled; the disk is full"
        for _ in range(6):  # six hours of a full disk
            clock.now += timedelta(hours=1)
            await runner.tick()
            assert uncovered(book) == [], "every position the bot made has a stop"
        (disk / "filler").unlink()  # the operator makes room
        for _ in range(3):
            clock.now += timedelta(hours=1)
            await runner.tick()
        snapshot = await whole(state)
        violations = check_promises(snapshot, book, runner.ctx.ids)
        assert violations == [], "\n".join(map(str, violations))
        assert any(e.data.get("outage") for e in snapshot.events.values()), "written down"
        guards = [o for o in book.all_orders() if o.client_order_id.rsplit("-", 1)[-1][0] == "g"]
        assert guards, "the stop was a guard, under the id made from the position"
        await state.close()
    book.close()


async def test_while_the_store_fails_a_position_the_bot_did_not_make_is_left_alone(
    tmp_path: Path,
) -> None:
    """The guard once took any position in a market the bot had ever entered for its
    own: on a shared account it would stop out, or sell at market, the owner's."""
    clock = Clock()
    book = PaperBook(tmp_path / "paper.db", FEED, BookSettings())
    with tmpfs(tmp_path / "disk") as disk:
        state = StateManager("golden", SqliteStore(disk / "state.db"), clock=clock)
        await state.open()
        venue = PaperVenue(book, clock)
        runner = Runner(
            BotConfig.model_validate({**CONFIG, **BUSY}).bot_settings(), state, venue, clock
        )
        await runner.start()
        for _ in range(24 * 10):  # until it has traded and is flat again
            clock.now += timedelta(hours=1)
            await runner.tick()
            snapshot = await whole(state)
            if snapshot.fills and not snapshot.positions and not book.open_orders():
                break
        assert snapshot.fills and not book.positions(), "traded, and flat"
        owners = OrderRequest(
            client_order_id="owner-1", symbol="SPY", side="buy", type="market", qty=50
        )
        book.submit(owners, clock.now)  # the account's owner buys, by hand
        fill(disk)
        for _ in range(3):
            clock.now += timedelta(hours=1)
            await runner.tick()
        assert book.positions()[0].qty == 50
        assert [o for o in book.open_orders() if o.symbol == "SPY"] == [], "nothing sent for it"
        (disk / "filler").unlink()
        await state.close()
    book.close()
