"""A bot that holds positions, each protected: what a crashed instance leaves for the
next to recover (the engine's tests and the recovery benchmark start from it)."""

from __future__ import annotations

from decimal import Decimal

from botwarden.domain.models import OrderSide
from botwarden.domain.orders import Purpose
from botwarden.engine.runner import Runner


async def hold(runner: Runner, symbols: list[str]) -> None:
    """A position in each market, bought at market, and its stop placed."""
    for symbol in symbols:
        await runner.desk.place(
            symbol=symbol, side=OrderSide.BUY, qty=Decimal(1), purpose=Purpose.ENTRY
        )
    await runner.desk.sync_fills()
    await runner.protector.protect_all(
        {o.client_order_id: o for o in await runner.venue.open_orders()}, {}
    )
