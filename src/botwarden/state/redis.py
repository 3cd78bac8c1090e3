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

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
)
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
if ARGV[1] ~= '' then
  local epoch = tonumber(ARGV[1])
  if epoch < stored then
    return redis.error_reply('FENCED ' .. stored)
  end
  if epoch > stored then
    redis.call('SET', KEYS[2], epoch)
  end
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
        if self.readonly:
            raise StateError(f"{self.describe()}: opened read-only, not for writing")
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
