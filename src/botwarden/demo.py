"""The state demo: one trading cycle of a make-believe bot, written the crash-safe way.

It stands in for the real bot until the engine lands. Each run closes the position
the previous run left (after checking its stop), then takes a new one: every order is
stored as an intent before it is "sent", and a fill, its position and its intent are
one atomic write. Run it twice: the second run finds what the first one left.
"""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from rich.console import Console

from botwarden.config import BotConfig
from botwarden.domain import (
    BotStatus,
    Fill,
    OrderIntent,
    OrderSide,
    OrderType,
    Position,
    Purpose,
    Side,
)
from botwarden.state.manager import StateManager, utc_now
from botwarden.views import age, render_state

SYMBOL = "SPY"
QTY = Decimal("10")
STOP_DISTANCE = Decimal("0.02")


def price_at(step: int) -> Decimal:
    """A made-up but repeatable price path."""
    return Decimal(str(round(450 + 6 * math.sin(step / 3) + step * 0.4, 2)))


async def run_demo(config: BotConfig, console: Console, config_path: Path) -> None:
    async with StateManager.from_config(config.bot_id, config) as state:
        earlier = await state.snapshot()
        if earlier.fills:
            console.print(
                f"Found the state of an earlier run in {state.store.describe()}:"
                f" {len(earlier.positions)} position(s), {len(earlier.fills)} fill(s),"
                f" last heartbeat {age(earlier.bot.heartbeat_at, utc_now())}."
            )
        else:
            console.print(f"No earlier state in {state.store.describe()}: starting fresh.")
        await state.set_status(BotStatus.RUNNING)
        await state.heartbeat()

        trader = DemoTrader(state, config.bot_id, step=len(earlier.fills))
        for position in await state.get_positions():
            await trader.close(position)
        await trader.enter()

        await state.heartbeat()
        await state.set_status(BotStatus.STOPPED)
        console.print()
        render_state(console, await state.snapshot(), state.store.describe(), utc_now())
        console.print(
            "\nRun it again: the bot finds this position, checks its stop and closes it."
            f"\nInspect it any time: botwarden state show {config_path}"
        )


class DemoTrader:
    """Plays both the bot and a venue that fills every order at once."""

    def __init__(self, state: StateManager, bot_id: str, step: int) -> None:
        self.state = state
        self.bot_id = bot_id
        self.step = step

    async def _next_client_id(self) -> str:
        sequence = len(await self.state.get_orders()) + 1
        return f"{self.bot_id[:24]}-{sequence:06d}"

    async def _send(self, intent: OrderIntent) -> OrderIntent:
        """Write ahead: the intent is durable as SUBMITTING before the venue sees it."""
        now = utc_now()
        await self.state.save_order(intent)
        submitting = intent.submit(now)
        await self.state.save_order(submitting)
        return submitting.accept(now, venue_order_id=f"V-{intent.client_order_id}")

    def _fill_of(self, intent: OrderIntent, price: Decimal) -> Fill:
        self.step += 1
        return Fill(
            trade_id=f"demo-T{self.step:06d}",
            client_order_id=intent.client_order_id,
            symbol=intent.symbol,
            side=intent.side,
            qty=intent.qty,
            price=price,
            fee=(price * intent.qty * Decimal("0.0005")).quantize(Decimal("0.01")),
            time=utc_now(),
        )

    def _intent(self, cid: str, side: OrderSide, purpose: Purpose, **extra: object) -> OrderIntent:
        now = utc_now()
        return OrderIntent.model_validate(
            {
                "client_order_id": cid,
                "symbol": SYMBOL,
                "side": side,
                "type": extra.pop("type", OrderType.MARKET),
                "qty": QTY,
                "purpose": purpose,
                "created_at": now,
                "updated_at": now,
                **extra,
            }
        )

    async def enter(self) -> None:
        signal_id = f"golden_cross:{SYMBOL}:{self.step}"
        if await self.state.is_signal_processed(signal_id):
            return  # the same signal never enters twice, even across restarts
        entry = await self._send(
            self._intent(await self._next_client_id(), OrderSide.BUY, Purpose.ENTRY)
        )
        price = price_at(self.step)
        fill = self._fill_of(entry, price)
        stop_price = (price * (1 - STOP_DISTANCE)).quantize(Decimal("0.01"))
        position = Position(
            id=f"pos-{entry.client_order_id}",
            bot_id=self.bot_id,
            symbol=SYMBOL,
            side=Side.LONG,
            size=fill.qty,
            entry_price=price,
            entry_time=fill.time,
            stop_price=stop_price,
            best_price=price,
        )
        stop = self._intent(
            await self._next_client_id(),
            OrderSide.SELL,
            Purpose.STOP,
            type=OrderType.STOP,
            stop_price=stop_price,
            position_id=position.id,
        )
        # The fill, the position, the filled entry and the stop it needs: one write.
        async with self.state.transaction() as tx:
            tx.record_fill(fill)
            tx.save_position(position)
            tx.save_order(entry.fill(fill.time, fill.qty, fill.price))
            tx.save_order(stop)
        placed = await self._send(stop)
        await self.state.save_order(placed)
        await self.state.save_position(
            position.evolve(
                stop_client_order_id=placed.client_order_id,
                stop_venue_order_id=placed.venue_order_id,
            )
        )
        await self.state.count_trade()
        await self.state.mark_signal_processed(signal_id)
        await self.state.set_cooldown(SYMBOL, timedelta(minutes=1))

    async def close(self, position: Position) -> None:
        stop = await self.state.get_order(position.stop_client_order_id or "")
        if stop is None or stop.status.is_terminal:
            raise RuntimeError(f"position {position.id} has no live stop: the demo state is off")
        exit_order = await self._send(
            self._intent(
                await self._next_client_id(), OrderSide.SELL, Purpose.EXIT, position_id=position.id
            )
        )
        fill = self._fill_of(exit_order, price_at(self.step))
        pnl = (fill.price - position.entry_price) * fill.qty - fill.fee
        async with self.state.transaction() as tx:
            tx.record_fill(fill)
            tx.remove_position(position.id)
            tx.save_order(exit_order.fill(fill.time, fill.qty, fill.price))
            tx.save_order(stop.cancel(fill.time, "position closed"))
        await self.state.update_daily_pnl(pnl)
