"""`redis`: shared state for many bots and hosts (redis-py asyncio).

Layout, with `bw` as the key prefix:
    bw:schema                    layout version (string)
    bw:flows                     the bots with state (set)
    bw:{<bot>}:epoch             the bot's fencing epoch (string)
    bw:{<bot>}:<collection>      one hash per collection: key -> JSON document
    bw:{<bot>}:<history>:keys    a history collection's keys, a sorted set (scores 0,
                                 so ordered by key): for reading a range

The braces are a hash tag keeping a bot's keys together; Redis Cluster is still not
supported, because a change also registers the bot in `bw:flows`, another slot.

A change is one Lua script, which Redis runs atomically and writes to its AOF as one
unit. Redis does not roll a script back when a command inside it fails, so the
script checks everything that could fail (key types, the fencing epoch) before its
first write. Durability is the server's: a change survives a Redis restart only with
`appendonly yes` and `appendfsync always`; `open` warns when the server says otherwise.

Opened `readonly` (commands that only look), it sends no command that writes: no
version key set, no upgrade, every change refused. An older layout is read as it is
(layout 1: fills and events in hashes of their own names, without sorted sets), and a
prefix nobody wrote holds no bots.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from botwarden.errors import FencedOut, SchemaVersionError, StateError, StoreUnavailable
from botwarden.redact import redact_url, scrub
from botwarden.state.base import (
    COLLECTIONS,
    EVERY,
    HISTORY,
    LIVE,
    SCHEMA_VERSION,
    Change,
    KeyRange,
    Put,
    Records,
    Snapshot,
    encode,
    refuse_if_readonly,
)
from botwarden.state.lease import Holder, LeaseHeld, LeaseLost, LeaseRecord
from botwarden.state.upgrade import past_intent_keys

log = logging.getLogger(__name__)

# KEYS: the bots' set, the bot's epoch, then one hash per collection (COLLECTIONS),
# then one sorted set per history collection (HISTORY): its keys, for scans by range;
# last, the bot's marker of layout 2 (`_marker`), set when the bot is first written.
# ARGV: the epoch ('' for none), the bot, then ops: 'p', hash, index, key, JSON or
# 'd', hash, index, key; an index of 0 for a live collection (no sorted set).
_APPLY = """
local hashes = tonumber(ARGV[3])
local stored_type = redis.call('TYPE', KEYS[1])['ok']
if stored_type ~= 'none' and stored_type ~= 'set' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' is a ' .. stored_type)
end
for i = 2, #KEYS do
  local want = 'zset'
  if i == 2 or i == #KEYS then want = 'string' elseif i <= 2 + hashes then want = 'hash' end
  local found = redis.call('TYPE', KEYS[i])['ok']
  if found ~= 'none' and found ~= want then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' is a ' .. found)
  end
end
local stored = tonumber(redis.call('GET', KEYS[2]) or '0')
if stored == nil then
  return redis.error_reply('BADEPOCH ' .. KEYS[2] .. ' is not a number')
end
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= stored then
  return redis.error_reply('FENCED ' .. stored)
end
if redis.call('SADD', KEYS[1], ARGV[2]) == 1 then
  redis.call('SET', KEYS[#KEYS], 'layout 2')
end
local i = 4
while i <= #ARGV do
  local hash = KEYS[2 + tonumber(ARGV[i + 1])]
  local index = tonumber(ARGV[i + 2])
  if ARGV[i] == 'p' then
    redis.call('HSET', hash, ARGV[i + 3], ARGV[i + 4])
    if index > 0 then redis.call('ZADD', KEYS[2 + hashes + index], 0, ARGV[i + 3]) end
    i = i + 5
  else
    redis.call('HDEL', hash, ARGV[i + 3])
    if index > 0 then redis.call('ZREM', KEYS[2 + hashes + index], ARGV[i + 3]) end
    i = i + 4
  end
end
return stored
"""


def _types(*wanted: str) -> str:
    """Lua that refuses to go on if KEYS[i] exists as another type than `wanted[i]`."""
    listed = ", ".join(f"'{want}'" for want in wanted)
    return f"""
for i, want in ipairs({{{listed}}}) do
  local found = redis.call('TYPE', KEYS[i])['ok']
  if found ~= 'none' and found ~= want then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' is a ' .. found)
  end
end
"""


# KEYS: the bots' set, the bot's epoch, the bot's marker of layout 2 (then, for a lease,
# its hash). ARGV: the bot, the least epoch to grant. Leaves `epoch`: the one granted.
_GRANT = """
local stored = tonumber(redis.call('GET', KEYS[2]) or '0')
if stored == nil then
  return redis.error_reply('BADEPOCH ' .. KEYS[2] .. ' is not a number')
end
local epoch = math.max(stored + 1, tonumber(ARGV[2]))
redis.call('SET', KEYS[2], string.format('%d', epoch))
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('SET', KEYS[3], 'layout 2')
end
"""

_CLAIM = _types("set", "string", "string") + _GRANT + "return epoch"

# Milliseconds by the server's clock, and the lease's fields, as `_LEASE_FIELDS` names them.
_NOW_AND_LEASE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local held = redis.call('HMGET', KEYS[#KEYS], 'token', 'epoch', 'host', 'pid', 'acquired',
  'renewed', 'expires', 'released')
local function told(word)
  return {word, string.format('%d', now), held[1], held[2], held[3], held[4], held[5],
    held[6], held[7], held[8]}
end
"""

# KEYS: as `_GRANT`, then the lease's hash. ARGV: as `_GRANT`, then the holder's token,
# host and PID, the ttl in ms, '1' to take over.
_ACQUIRE = (
    _types("set", "string", "string", "hash")
    + _NOW_AND_LEASE
    + """
if held[1] and held[1] ~= ARGV[3] and held[8] ~= '1' and tonumber(held[7]) > now
    and ARGV[7] ~= '1' then
  return told('held')
end
"""
    + _GRANT
    + """
local acquired = now
if held[1] == ARGV[3] and held[8] ~= '1' then acquired = tonumber(held[5]) end
redis.call('HSET', KEYS[4], 'token', ARGV[3], 'epoch', string.format('%d', epoch),
  'host', ARGV[4], 'pid', ARGV[5], 'acquired', string.format('%d', acquired),
  'renewed', string.format('%d', now), 'expires', string.format('%d', now + tonumber(ARGV[6])),
  'released', '0')
return {'granted', string.format('%d', epoch)}
"""
)

# KEYS: the bot's epoch, its lease's hash. ARGV: the token, the epoch, the ttl in ms ('' to
# let the lease go).
_RENEW = (
    _NOW_AND_LEASE
    + """
if held[1] ~= ARGV[1] or held[2] ~= ARGV[2] or held[8] == '1'
    or tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[2]) then
  return told('lost')
end
if ARGV[3] == '' then
  redis.call('HSET', KEYS[2], 'released', '1', 'expires', string.format('%d', now))
else
  redis.call('HSET', KEYS[2], 'renewed', string.format('%d', now),
    'expires', string.format('%d', now + tonumber(ARGV[3])))
end
return told('ok')
"""
)

_READ = _NOW_AND_LEASE + "return told('read')"

_FENCED = re.compile(r"FENCED (\d+)")

_HASH = {name: index for index, name in enumerate(COLLECTIONS, start=1)}
_INDEX = {name: HISTORY.index(name) + 1 if name in HISTORY else 0 for name in COLLECTIONS}


def _redis() -> Any:
    try:
        import redis.asyncio as redis_asyncio
    except ImportError as error:  # pragma: no cover - depends on the install
        raise StoreUnavailable(
            "state backend 'redis' needs the redis package: pip install 'botwarden[redis]'"
        ) from error
    return redis_asyncio


class RedisStore:
    durable = True

    def __init__(
        self, url: str, key_prefix: str = "bw", timeout: float = 10.0, readonly: bool = False
    ) -> None:
        self._url = url
        self._prefix = key_prefix
        self._timeout = timeout
        self.readonly = readonly
        self._legacy = False
        """Opened read-only on layout 1: every collection under its layout-1 name."""
        self._client: Any = None
        self._script: Any = None
        self._claim: Any = None

    def describe(self) -> str:
        return f"redis {redact_url(self._url)} (prefix {self._prefix!r})"

    def _keys(self, flow_id: str) -> list[str]:
        base = f"{self._prefix}:{{{flow_id}}}"
        return [
            f"{self._prefix}:flows",
            f"{base}:epoch",
            *(self._hash(flow_id, c) for c in COLLECTIONS),
            *(self._index(flow_id, c) for c in HISTORY),
            self._marker(flow_id),
        ]

    def _hash(self, flow_id: str, collection: str) -> str:
        if collection in HISTORY and not self._legacy:
            return f"{self._prefix}:{{{flow_id}}}:history:{collection}"
        return self._legacy_name(flow_id, collection)

    def _index(self, flow_id: str, collection: str) -> str:
        """The sorted set of a history collection's keys (all scored 0: ordered by key)."""
        return f"{self._hash(flow_id, collection)}:keys"

    def _marker(self, flow_id: str) -> str:
        """Layout 1's name of the bot's fills hash, a string in layout 2: a process of
        layout 1 still running checks that its keys are hashes before it writes, so
        it is refused instead of writing where layout 2 does not read."""
        return self._legacy_name(flow_id, "fills")

    def _legacy_name(self, flow_id: str, collection: str) -> str:
        return f"{self._prefix}:{{{flow_id}}}:{collection}"

    async def open(self) -> None:
        redis_asyncio = _redis()
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff

        try:
            self._client = redis_asyncio.from_url(
                self._url,
                decode_responses=True,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                # How operators find it in CLIENT LIST: botwarden, and whose keys.
                client_name=re.sub(r"[^A-Za-z0-9_.:{}-]", "_", f"botwarden:{self._prefix}"),
                # A dropped connection is retried on a new one. Safe for writes too: a
                # change is a set of puts and deletes under an epoch check, so running
                # it twice leaves the same state.
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
                retry_on_error=[redis_asyncio.ConnectionError, redis_asyncio.TimeoutError],
            )
            if not self.readonly:
                await self._client.set(f"{self._prefix}:schema", SCHEMA_VERSION, nx=True)
            # (no version, for a reader: a prefix never written, empty in any layout)
            found = int(await self._client.get(f"{self._prefix}:schema") or SCHEMA_VERSION)
            # A look writes nothing, so the server's durability is its writer's to warn of.
            config = None if self.readonly else await self._server_persistence()
        except (redis_asyncio.RedisError, ValueError) as error:  # ValueError: a malformed URL
            await self.close()
            reason = scrub(str(error), self._url)
            raise StoreUnavailable(f"{self.describe()}: cannot connect: {reason}") from None
        if found > SCHEMA_VERSION:
            await self.close()
            raise SchemaVersionError(self.describe(), found, SCHEMA_VERSION)
        self._legacy = found < SCHEMA_VERSION and self.readonly
        if found < SCHEMA_VERSION and not self.readonly:
            try:
                with self._errors():
                    await self._upgrade()
            except BaseException:
                await self.close()
                raise
        if config and (config.get("appendonly") != "yes" or config.get("appendfsync") != "always"):
            log.warning(
                "%s: the server runs with appendonly=%s appendfsync=%s; a change survives a"
                " bot crash but not a Redis restart (set appendonly yes, appendfsync always)",
                self.describe(),
                config.get("appendonly"),
                config.get("appendfsync"),
            )
        self._script = self._client.register_script(_APPLY)
        self._claim = self._client.register_script(_CLAIM)

    async def _upgrade(self) -> None:
        """Version 1 to 2 as one MULTI/EXEC (atomic, one unit in the AOF): fills and
        events move under their history names with the sorted sets of their keys,
        terminal intents move to `past_intents`, and each bot gets its marker
        (`_marker`). WATCH makes a write by anyone meanwhile start it over."""
        redis_asyncio = _redis()
        schema, bots = f"{self._prefix}:schema", f"{self._prefix}:flows"
        async with self._client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(schema, bots)
                    if int(await pipe.get(schema) or 0) >= SCHEMA_VERSION:
                        return  # another process did it first
                    flows = sorted(await pipe.smembers(bots))
                    old = [self._legacy_name(f, c) for f in flows for c in COLLECTIONS]
                    if old:
                        await pipe.watch(*old)
                    moves: dict[str, dict[str, str]] = {}
                    moved_whole: dict[tuple[str, str], list[str]] = {}
                    for flow_id in flows:
                        intents = await pipe.hgetall(self._hash(flow_id, "intents"))
                        keys = past_intent_keys(intents)
                        moves[flow_id] = {key: intents[key] for key in keys}
                        for name in ("fills", "events"):
                            legacy = self._legacy_name(flow_id, name)
                            moved_whole[(flow_id, name)] = await pipe.hkeys(legacy)
                    pipe.multi()
                    for flow_id, moved in moves.items():
                        if moved:
                            pipe.hdel(self._hash(flow_id, "intents"), *moved)
                            pipe.hset(self._hash(flow_id, "past_intents"), mapping=moved)
                            pipe.zadd(self._index(flow_id, "past_intents"), dict.fromkeys(moved, 0))
                    for (flow_id, name), keys in moved_whole.items():
                        if keys:
                            pipe.rename(self._legacy_name(flow_id, name), self._hash(flow_id, name))
                            pipe.zadd(self._index(flow_id, name), dict.fromkeys(keys, 0))
                    for flow_id in flows:
                        pipe.set(self._marker(flow_id), "layout 2")
                    pipe.set(schema, SCHEMA_VERSION)
                    await pipe.execute()
                    break
                except redis_asyncio.WatchError:
                    continue
        log.info("%s: upgraded to layout version %d", self.describe(), SCHEMA_VERSION)

    async def _server_persistence(self) -> dict[str, str] | None:
        try:
            return await self._client.config_get("append*")
        except Exception:
            return None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """The driver's errors as the store's: a lost server is `StoreUnavailable` (redis-py
        reconnects on the next call), a refusal by the server a `StateError`."""
        redis_asyncio = _redis()
        try:
            yield
        except (redis_asyncio.ConnectionError, redis_asyncio.TimeoutError) as error:
            raise StoreUnavailable(f"{self.describe()}: {scrub(str(error), self._url)}") from None
        except redis_asyncio.ResponseError as error:
            reason = scrub(str(error), self._url)
            raise StateError(f"{self.describe()}: the server refused: {reason}") from None

    async def load(self, flow_id: str) -> Snapshot:
        with self._errors():
            # MULTI/EXEC: the collections are read as one consistent snapshot.
            async with self._client.pipeline(transaction=True) as pipe:
                for name in LIVE:
                    pipe.hgetall(self._hash(flow_id, name))
                results = await pipe.execute()
        return dict(zip(LIVE, results, strict=True))

    async def get(self, flow_id: str, collection: str, keys: Sequence[str]) -> dict[str, str]:
        if not keys:
            return {}
        with self._errors():
            values = await self._client.hmget(self._hash(flow_id, collection), list(keys))
        return {key: value for key, value in zip(keys, values, strict=True) if value is not None}

    async def scan(self, flow_id: str, collection: str, within: KeyRange = EVERY) -> Records:
        if collection not in HISTORY or self._legacy:
            # A live collection is small: read whole. So is layout 1's history (its
            # events were capped), which has no sorted sets to read a range of.
            with self._errors():
                return within.of(await self._client.hgetall(self._hash(flow_id, collection)))
        low = f"[{within.start}"
        high = "+" if within.stop is None else f"({within.stop}"
        paging = {"start": 0, "num": within.limit} if within.limit is not None else {}
        with self._errors():
            if within.newest_first:
                keys = await self._client.zrevrangebylex(
                    self._index(flow_id, collection), high, low, **paging
                )
            else:
                keys = await self._client.zrangebylex(
                    self._index(flow_id, collection), low, high, **paging
                )
            found = await self.get(flow_id, collection, keys)
        return [(key, found[key]) for key in keys if key in found]

    async def apply(self, flow_id: str, change: Change) -> None:
        refuse_if_readonly(self)
        args: list[Any] = ["" if change.epoch is None else change.epoch, flow_id, len(COLLECTIONS)]
        for op in change.ops:
            hash_at, index_at = _HASH[op.collection], _INDEX[op.collection]
            if isinstance(op, Put):
                args += ["p", hash_at, index_at, op.key, encode(op.value)]
            else:
                args += ["d", hash_at, index_at, op.key]
        try:
            with self._errors():
                await self._script(keys=self._keys(flow_id), args=args)
        except StateError as error:
            fenced = _FENCED.search(str(error))
            if fenced:
                raise FencedOut(flow_id, change.epoch or 0, int(fenced.group(1))) from None
            raise

    async def count(self, flow_id: str, collection: str) -> int:
        with self._errors():
            return int(await self._client.hlen(self._hash(flow_id, collection)))

    async def flows(self) -> list[str]:
        with self._errors():
            return sorted(await self._client.smembers(f"{self._prefix}:flows"))

    async def epoch(self, flow_id: str) -> int:
        with self._errors():
            value = await self._client.get(self._keys(flow_id)[1])
        return int(value or 0)

    async def claim_epoch(self, flow_id: str, at_least: int = 0) -> int:
        refuse_if_readonly(self)
        with self._errors():
            return int(await self._claim(keys=self._grant_keys(flow_id), args=[flow_id, at_least]))

    def _grant_keys(self, flow_id: str) -> list[str]:
        """What granting an epoch touches: the bots' set, the epoch, the layout marker."""
        keys = self._keys(flow_id)
        return [keys[0], keys[1], keys[-1]]

    def _lease(self, flow_id: str) -> str:
        return f"{self._prefix}:{{{flow_id}}}:lease"


class RedisLeases:
    """Bots' leases in Redis, beside their state (the module's layout, plus
    `bw:{<bot>}:lease`: a hash of the holder, its epoch and its times in ms by the
    server's clock). Every step is one script: atomic, and timed by Redis's `TIME`.

    On its own store object (its own connections): renewals never wait behind a change
    of the bot's."""

    shared = True

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self._scripts: dict[str, Any] = {}

    def describe(self) -> str:
        return self.store.describe()

    async def open(self) -> None:
        await self.store.open()
        client = self.store._client
        for name, script in (("acquire", _ACQUIRE), ("renew", _RENEW), ("read", _READ)):
            self._scripts[name] = client.register_script(script)

    async def close(self) -> None:
        await self.store.close()

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> list[str | None]:
        with self.store._errors():
            return list(await self._scripts[name](keys=keys, args=args))

    async def acquire(
        self, bot_id: str, holder: Holder, ttl: float, *, takeover: bool = False, at_least: int = 0
    ) -> int:
        store = self.store
        refuse_if_readonly(store)
        args = [bot_id, at_least, holder.token, holder.host, holder.pid, int(ttl * 1000)]
        answer = await self._run(
            "acquire",
            [*store._grant_keys(bot_id), store._lease(bot_id)],
            [*args, "1" if takeover else "0"],
        )
        if answer[0] == "held":
            raise LeaseHeld(_record(bot_id, answer))
        return int(answer[1] or 0)

    async def renew(self, bot_id: str, holder: Holder, epoch: int, ttl: float) -> None:
        await self._renew(bot_id, holder, epoch, int(ttl * 1000))

    async def release(self, bot_id: str, holder: Holder, epoch: int) -> None:
        with contextlib.suppress(LeaseLost):  # (someone else's by now: nothing to let go)
            await self._renew(bot_id, holder, epoch, "")

    async def _renew(self, bot_id: str, holder: Holder, epoch: int, ttl: int | str) -> None:
        keys = [self.store._keys(bot_id)[1], self.store._lease(bot_id)]
        answer = await self._run("renew", keys, [holder.token, epoch, ttl])
        if answer[0] == "lost":
            raise LeaseLost(bot_id, epoch, _record(bot_id, answer))

    async def read(self, bot_id: str) -> LeaseRecord | None:
        if self.store.readonly:  # (a script, even one that only reads, is refused by
            # a read-only replica; a reader asks with plain commands)
            return await self._read_plain(bot_id)
        return _record(bot_id, await self._run("read", [self.store._lease(bot_id)], []))

    async def _read_plain(self, bot_id: str) -> LeaseRecord | None:
        client = self.store._client
        with self.store._errors():
            async with client.pipeline(transaction=False) as pipe:
                pipe.time()
                pipe.hmget(self.store._lease(bot_id), *_LEASE_FIELDS)
                (seconds, micros), held = await pipe.execute()
        now = seconds * 1000 + micros // 1000
        return _record(bot_id, ["read", str(now), *held])

    async def every(self) -> list[LeaseRecord]:
        records = [await self._read_plain(bot_id) for bot_id in await self.store.flows()]
        return [record for record in records if record is not None]


_LEASE_FIELDS = ("token", "epoch", "host", "pid", "acquired", "renewed", "expires", "released")


def _record(bot_id: str, answer: list[str | None]) -> LeaseRecord | None:
    """A lease as a script tells it: a word, the server's time in ms, then the lease's
    fields (`_LEASE_FIELDS`, each None if absent)."""
    now, fields = answer[1], dict(zip(_LEASE_FIELDS, answer[2:], strict=True))
    if fields["token"] is None or now is None:
        return None

    def at(ms: str | None) -> datetime:
        return datetime.fromtimestamp(int(ms or 0) / 1000, UTC)

    return LeaseRecord(
        bot_id=bot_id,
        epoch=int(fields["epoch"] or 0),
        holder=Holder(fields["host"] or "?", int(fields["pid"] or 0), fields["token"]),
        acquired_at=at(fields["acquired"]),
        renewed_at=at(fields["renewed"]),
        expires_at=at(fields["expires"]),
        read_at=at(now),
        released=fields["released"] == "1",
    )
