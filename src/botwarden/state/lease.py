"""The lease port: which one instance of a bot may trade, on whatever host it runs.

A lease names its holder (host, PID, and a token no other process has) and the epoch
the store granted with it, and it lasts its `ttl` by the store's own clock unless the
holder renews it. While it is live, nobody else is granted the bot: a start elsewhere
is refused, naming the holder (`LeaseHeld`), unless it takes over, which grants a new
epoch and so fences the old holder out of the store (its next write is refused, and
every order it has not yet written ahead with it). The epoch is the one the state
store checks on every write: granting a lease is claiming an epoch, in one atomic step
with the lease itself.

The holder keeps its own account of how long it may still act (`Tenure`): the ttl
counted on its monotonic clock from the moment it *sent* its last renewal that was
answered, less a margin. The store counts the same ttl from the moment it *received*
it, which is later; so the holder stops sending orders before the lease can be granted
to anyone else, whatever its wall clock says (only the rate of its clock matters: see
`SAFE_FRACTION`).

Two kinds of backend:
- shared (`redis`, `postgres`): the lease is a record in the store, beside the bot's
  state, and hosts contend for it (`RedisLeases`, `PostgresLeases`);
- one host's (`sqlite`, `duckdb`, `jsonfile`, `memory`): the bot's lock file decides who
  runs (`process/lock.py`), and a lease is an epoch claimed from the store
  (`HostLeases`): it never expires and has no record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from botwarden.errors import BotwardenError, FencedOut, StateError
from botwarden.state.base import StateStore

log = logging.getLogger(__name__)

SAFE_FRACTION = 0.8
"""The part of the ttl a holder acts on after sending a renewal: it stops sending
orders when 80% of it has passed on its monotonic clock, so a host whose clock runs up
to 20% slower than the store's still stops before the store could grant the lease
again (NTP keeps clock rates within 0.05%). The wall clock's offset plays no part."""

RENEWALS_PER_TTL = 4
"""How often a holder renews: four times a ttl, so that two renewals may fail (a slow
store, a dropped connection) and the third still comes before it must stop."""


@dataclass(frozen=True, slots=True)
class Holder:
    """One process that holds, or wants, a bot's lease."""

    host: str
    pid: int
    token: str
    """Unique to the process: a PID is reused, a host name may be shared."""

    @classmethod
    def here(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), secrets.token_hex(8))

    def describe(self) -> str:
        return f"{self.host} (pid {self.pid})"


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A bot's lease as the store holds it, all times by the store's clock."""

    bot_id: str
    epoch: int
    holder: Holder
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    read_at: datetime
    """The store's time when this was read: what `live`, `age` and `since_renewal` count
    from, so that no host's clock enters into it."""
    released: bool = False
    """Let go by its holder (a stop), not merely expired."""

    @property
    def live(self) -> bool:
        return not self.released and self.read_at < self.expires_at

    @property
    def age(self) -> timedelta:
        return self.read_at - self.acquired_at

    @property
    def since_renewal(self) -> timedelta:
        return self.read_at - self.renewed_at

    def describe(self) -> str:
        """`on host-a (pid 41), epoch 7, held 3m12s, renewed 1.2 s ago`."""
        return (
            f"on {self.holder.describe()}, epoch {self.epoch}, held {_span(self.age)},"
            f" renewed {self.since_renewal.total_seconds():.1f} s ago"
        )


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds} s"


class LeaseHeld(BotwardenError):
    """Another instance holds the bot's live lease: this one may not start."""

    def __init__(self, record: LeaseRecord) -> None:
        super().__init__(
            f"bot {record.bot_id} is already running {record.describe()}; stop it there"
            " first, or start with --takeover to fence it out"
        )
        self.record = record


class LeaseLost(FencedOut):
    """Another instance was granted the bot's lease: this one must stop trading."""

    def __init__(self, bot_id: str, epoch: int, record: LeaseRecord | None) -> None:
        StateError.__init__(
            self,
            f"bot {bot_id}: lease of epoch {epoch} lost; "
            + (
                f"the bot is held {record.describe()}"
                if record is not None and record.epoch != epoch
                else "the store no longer holds it"
            ),
        )
        self.flow_id = bot_id
        self.epoch = epoch
        self.current = record.epoch if record is not None else epoch


class LeaseExpired(StateError):
    """The lease was not renewed in time (the store slow or out of reach): no order may
    leave until it is, since the store may grant it to another instance."""


@runtime_checkable
class Leases(Protocol):
    """What every kind of lease provides. All methods are coroutines but `describe`."""

    shared: bool
    """True where hosts contend for the lease (a server store); False where the bot's
    lock file decides and the lease is only an epoch."""

    def describe(self) -> str: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def acquire(
        self, bot_id: str, holder: Holder, ttl: float, *, takeover: bool = False, at_least: int = 0
    ) -> int:
        """The bot's lease for `holder`, for `ttl` seconds, with a new epoch (above every
        one granted, at least `at_least`): the epoch. `LeaseHeld` if another holder's
        lease is live, unless `takeover`. The holder of the live lease may acquire it
        again, for a higher epoch."""
        ...

    async def renew(self, bot_id: str, holder: Holder, epoch: int, ttl: float) -> None:
        """Another `ttl` seconds from now, by the store's clock. `LeaseLost` if the lease
        is no longer `holder`'s at `epoch`. A lease that expired but was granted to
        nobody since is the holder's still: renewed."""
        ...

    async def release(self, bot_id: str, holder: Holder, epoch: int) -> None:
        """Let the lease go, if it is still `holder`'s at `epoch` (else nothing)."""
        ...

    async def read(self, bot_id: str) -> LeaseRecord | None:
        """The bot's lease, live or not; None if it never had one."""
        ...

    async def every(self) -> list[LeaseRecord]:
        """Every bot's lease in the store, by bot id."""
        ...


class HostLeases:
    """The lease of a store only one host uses: its epoch, claimed from the store. Who
    runs is decided by the bot's lock file, so the lease is always granted and never
    expires; nothing of it is stored but the epoch."""

    shared = False

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def describe(self) -> str:
        return f"the lock file beside {self.store.describe()}"

    async def open(self) -> None:
        pass  # (the store is the bot's, opened with its state)

    async def close(self) -> None:
        pass

    async def acquire(
        self, bot_id: str, holder: Holder, ttl: float, *, takeover: bool = False, at_least: int = 0
    ) -> int:
        return await self.store.claim_epoch(bot_id, at_least)

    async def renew(self, bot_id: str, holder: Holder, epoch: int, ttl: float) -> None:
        pass

    async def release(self, bot_id: str, holder: Holder, epoch: int) -> None:
        pass

    async def read(self, bot_id: str) -> LeaseRecord | None:
        return None

    async def every(self) -> list[LeaseRecord]:
        return []


class Tenure:
    """This instance's hold on its bot: the lease acquired, renewed in the background
    `RENEWALS_PER_TTL` times a ttl, and whether an order may leave now (`require`).

    `may_send` is False from `SAFE_FRACTION` of the ttl after the last renewal that was
    sent and answered, until the next one is; once another instance is granted the
    lease, for good (`lost`)."""

    def __init__(
        self,
        leases: Leases,
        bot_id: str,
        ttl: float,
        holder: Holder | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases = leases
        self.bot_id = bot_id
        self.ttl = ttl
        self.holder = holder or Holder.here()
        self._monotonic = monotonic
        self.epoch = 0
        self.lost: LeaseLost | None = None
        self._valid_until = float("-inf")
        self._keeper: asyncio.Task[None] | None = None
        self._asking = asyncio.Lock()
        """One request to the store at a time: a renewal of the epoch an acquire is
        replacing would come back "lost" and end the instance."""

    async def acquire(self, *, takeover: bool = False, at_least: int = 0) -> int:
        """The lease, or `LeaseHeld`; the epoch granted. Acquired again by its holder
        (a higher epoch asked for), it stays this instance's."""
        async with self._asking:
            sent = self._monotonic()
            self.epoch = await self.leases.acquire(
                self.bot_id, self.holder, self.ttl, takeover=takeover, at_least=at_least
            )
            self._valid_until = sent + self.ttl * SAFE_FRACTION
        return self.epoch

    def remaining(self) -> float:
        """Seconds this instance may still send orders (infinite on a one-host store)."""
        if not self.leases.shared:
            return float("inf") if self.may_send else 0.0
        return max(0.0, self._valid_until - self._monotonic()) if self.may_send else 0.0

    @property
    def may_send(self) -> bool:
        if self.lost is not None or self.epoch == 0:
            return False
        return not self.leases.shared or self._monotonic() < self._valid_until

    def require(self) -> None:
        """Before anything leaves for the venue: `LeaseLost` once the lease is another's,
        `LeaseExpired` while it is not renewed."""
        if self.lost is not None:
            raise self.lost
        if not self.may_send:
            waited = self._monotonic() - (self._valid_until - self.ttl * SAFE_FRACTION)
            raise LeaseExpired(
                f"bot {self.bot_id}: lease of epoch {self.epoch} not renewed for"
                f" {waited:.1f} s ({self.leases.describe()} slow or out of reach): no order"
                " leaves until it is"
            )

    async def renew(self) -> None:
        """One renewal; `LeaseLost` (kept in `lost`) if another instance holds it now."""
        async with self._asking:
            sent = self._monotonic()
            try:
                await self.leases.renew(self.bot_id, self.holder, self.epoch, self.ttl)
            except LeaseLost as error:
                self.lost = error
                raise
            self._valid_until = sent + self.ttl * SAFE_FRACTION

    def keep(self) -> None:
        """Renew in the background until `release` (a shared lease only)."""
        if self.leases.shared and self._keeper is None:
            self._keeper = asyncio.create_task(self._keep(), name=f"lease {self.bot_id}")

    async def _keep(self) -> None:
        told = False
        while self.lost is None:
            await asyncio.sleep(self.ttl / RENEWALS_PER_TTL)
            try:
                await self.renew()
                if told:
                    log.warning("%s: lease of epoch %d renewed again", self.bot_id, self.epoch)
                told = False
            except LeaseLost as error:
                log.error("%s", error)
            except Exception as error:  # the store out of reach (or a bug): tried again,
                # and until it works no order leaves (`may_send`)
                if not told:
                    log.warning("%s: lease not renewed: %s", self.bot_id, error)
                told = True

    async def release(self) -> None:
        """Stop renewing, and let the lease go if it is still this instance's."""
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        if self.epoch and self.lost is None:
            with contextlib.suppress(StateError):  # (it expires anyway)
                await self.leases.release(self.bot_id, self.holder, self.epoch)
