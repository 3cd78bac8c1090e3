"""Client order ids: deterministic, unique across restarts and instances, valid anywhere.

`<bot>-<tag>-<epoch>-<seq>`: a readable stem of the bot id, four hex digits of its
hash (two bots whose stems collide still differ), the instance's lease epoch and a
sequence number stored durably with each intent (a take-profit paired with a stop
shares the stop's, with a `t` after it). At most 36 characters of
`[A-Za-z0-9_-]`, which every venue accepts (Binance's limit is the tightest).

Why each part: the sequence makes ids unique within an instance, and it is written in
the same atomic change as the intent that uses it, so a crash never hands the same
number out twice; the epoch makes them unique across instances even if two ever
raced (the store fences the older one out); the bot part lets the bot tell its own
orders from anyone else's on a shared account.
"""

from __future__ import annotations

import hashlib
import re

from botwarden.venues.base import pair_take_profit_id

MAX_LENGTH = 36
VALID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
_STEM = 12


def bot_prefix(bot_id: str) -> str:
    """The part of every client order id that names the bot: `goldencross-9f3a`."""
    stem = re.sub(r"[^A-Za-z0-9]", "", bot_id)[:_STEM] or "bot"
    tag = hashlib.sha256(bot_id.encode()).hexdigest()[:4]
    return f"{stem}-{tag}"


class ClientIds:
    def __init__(self, bot_id: str, epoch: int) -> None:
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, not {epoch}")
        self.prefix = bot_prefix(bot_id)
        self.epoch = epoch

    def make(self, seq: int) -> str:
        """One character short of the limit, kept for a pair's take-profit's suffix."""
        cid = f"{self.prefix}-{self.epoch}-{seq}"
        if seq < 0 or not VALID.match(cid) or len(cid) >= MAX_LENGTH:
            raise ValueError(f"client order id {cid!r} would be invalid (seq {seq})")
        return cid

    def make_pair(self, seq: int) -> tuple[str, str]:
        """The ids of a stop and its take-profit sent as one pair: one sequence number,
        the take-profit's id named after the stop's (`venues.base.pair_take_profit_id`)."""
        stop = self.make(seq)
        take_profit = pair_take_profit_id(stop)
        if not VALID.match(take_profit):
            raise ValueError(f"client order id {take_profit!r} would be invalid (seq {seq})")
        return stop, take_profit

    def owns(self, client_order_id: str) -> bool:
        """True for ids this bot made, in any epoch."""
        return client_order_id.startswith(self.prefix + "-")

    def guard_stop_id(self, position_id: str, number: int = 0) -> str:
        """The client order id of this instance's `number`th guard for `position_id`,
        sent while the store cannot write (`engine/outage.py`; a position that grows by
        partial fills meanwhile gets another for the rest). Made from the position's id
        alone, so a later pass finds the same ones and never sends one twice, and once
        the store writes the stop guarantee adopts them (a later instance finds them
        among the orders its state does not know)."""
        if not 0 <= number < len(_GUARD_NUMBERS):
            raise ValueError(f"guard number {number} out of range")
        return f"{self.prefix}-{self.epoch}-{_guard_tag(position_id)}{_GUARD_NUMBERS[number]}"

    def is_guard(self, client_order_id: str) -> bool:
        """Is this a guard of the bot's (of any position, by any instance)?"""
        return self.owns(client_order_id) and client_order_id.rsplit("-", 1)[-1][:1] == "g"

    def is_guard_stop(self, client_order_id: str, position_id: str) -> bool:
        """Is this a guard of `position_id`, sent by any instance of the bot?"""
        return self.owns(client_order_id) and client_order_id[:-1].endswith(
            "-" + _guard_tag(position_id)
        )

    @staticmethod
    def epoch_of(client_order_id: str) -> int:
        """The epoch of the instance that made `client_order_id` (one of the bot's)."""
        return int(client_order_id.rsplit("-", 2)[-2])


_GUARD_NUMBERS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _guard_tag(position_id: str) -> str:
    """A guard's client order id ends in `g`, five hex digits of the position id's hash
    and its number: short enough for a ten-digit epoch within 36 characters."""
    return "g" + hashlib.sha256(position_id.encode()).hexdigest()[:5]
