"""The venue as an instance may use it: only while it holds the bot's lease.

Every call that changes what rests at the venue (a submit, a pair, a replace, a cancel)
asks the instance's `Tenure` first, as the last step before the request leaves: an
instance whose lease was granted to another, or that could not renew it in time, sends
nothing (`LeaseLost`, `LeaseExpired`). A cancel is held back too: an old leader
canceling the stop its successor adopted would leave a position bare. Reads pass.

A venue adapter may try a call more than once (a cancel is retried for a while): the
whole call is bounded by the time the lease has left, and one cut short is ambiguous
(`Ambiguous`: looked up, never assumed done).

What remains is the request already on its way when the check passed (a process
paused between the two): its intent was written ahead under the old epoch's client id,
so the new leader resolves it by that id, as any unanswered order (promise I1).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from botwarden.state.lease import Tenure
from botwarden.venues.base import Ambiguous, OrderRequest, Venue, VenueOrder

T = TypeVar("T")


class LeasedVenue:
    """`venue`, each change to it first allowed by `tenure`; everything else passes."""

    def __init__(self, venue: Venue, tenure: Tenure) -> None:
        self.inner = venue
        self.tenure = tenure

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def submit(self, request: OrderRequest) -> VenueOrder:
        return await self._within_lease(self.inner.submit(request))

    async def submit_oco(self, stop: OrderRequest, take_profit: OrderRequest) -> list[VenueOrder]:
        return await self._within_lease(self.inner.submit_oco(stop, take_profit))

    async def replace(
        self, old: OrderRequest, new: OrderRequest, venue_order_id: str | None = None
    ) -> VenueOrder:
        return await self._within_lease(self.inner.replace(old, new, venue_order_id))

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder:
        return await self._within_lease(self.inner.cancel(client_order_id, symbol))

    async def _within_lease(self, call: Coroutine[Any, Any, T]) -> T:
        try:
            self.tenure.require()
        except BaseException:
            call.close()  # (never started: nothing sent)
            raise
        left = self.tenure.remaining()
        if left == float("inf"):
            return await call
        try:
            return await asyncio.wait_for(call, left)
        except TimeoutError:
            raise Ambiguous(
                self.inner.name,
                f"the lease ran out after {left:.1f} s while the venue was asked: it may or"
                " may not have been done",
            ) from None
