"""`redis`: shared state for many bots and hosts (redis-py asyncio).

Layout, with `bw` as the key prefix:
    bw:schema                    layout version (string)
    bw:flows                     the bots with state (set)
    bw:{<bot>}:epoch             the bot's fencing epoch (string)
    bw:{<bot>}:<collection>      one hash per collection: key -> JSON document

The braces are a hash tag keeping a bot's keys together; Redis Cluster is still not
supported, because a change also registers the bot in `bw:flows`, another slot.

A change is one Lua script, which Redis runs atomically and writes to its AOF as one
unit. Redis does not roll a script back when a command inside it fails, so the
script checks everything that could fail (key types, the fencing epoch) before its
first write. Durability is the server's: a change survives a Redis restart only with
`appendonly yes` and `appendfsync always`; `open` warns when the server says otherwise.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botwarden.errors import FencedOut, SchemaVersionError, StateError, StoreUnavailable
from botwarden.redact import redact_url, scrub
from botwarden.state.base import COLLECTIONS, SCHEMA_VERSION, Change, Put, Snapshot, encode

log = logging.getLogger(__name__)

_APPLY = """
local stored_type = redis.call('TYPE', KEYS[1])['ok']
if stored_type ~= 'none' and stored_type ~= 'set' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' is a ' .. stored_type)
end
for i = 2, #KEYS do
  local want = (i == 2) and 'string' or 'hash'
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
redis.call('SADD', KEYS[1], ARGV[2])
local i = 3
while i <= #ARGV do
  local hash = KEYS[2 + tonumber(ARGV[i + 1])]
  if ARGV[i] == 'p' then
    redis.call('HSET', hash, ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  else
    redis.call('HDEL', hash, ARGV[i + 2])
    i = i + 3
  end
end
return stored
"""

_FENCED = re.compile(r"FENCED (\d+)")

_COLLECTION_INDEX = {name: index for index, name in enumerate(COLLECTIONS, start=1)}


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

    def __init__(self, url: str, key_prefix: str = "bw", timeout: float = 10.0) -> None:
        self._url = url
        self._prefix = key_prefix
        self._timeout = timeout
        self._client: Any = None
        self._script: Any = None

    def describe(self) -> str:
        return f"redis {redact_url(self._url)} (prefix {self._prefix!r})"

    def _keys(self, flow_id: str) -> list[str]:
        base = f"{self._prefix}:{{{flow_id}}}"
        return [f"{self._prefix}:flows", f"{base}:epoch", *(f"{base}:{c}" for c in COLLECTIONS)]

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
                client_name="botwarden",  # how operators find it in CLIENT LIST
                # A dropped connection is retried on a new one. Safe for writes too: a
                # change is a set of puts and deletes under an epoch check, so running
                # it twice leaves the same state.
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
                retry_on_error=[redis_asyncio.ConnectionError, redis_asyncio.TimeoutError],
            )
            await self._client.set(f"{self._prefix}:schema", SCHEMA_VERSION, nx=True)
            found = int(await self._client.get(f"{self._prefix}:schema"))
            config = await self._server_persistence()
        except (redis_asyncio.RedisError, ValueError) as error:  # ValueError: a malformed URL
            await self.close()
            reason = scrub(str(error), self._url)
            raise StoreUnavailable(f"{self.describe()}: cannot connect: {reason}") from None
        if found > SCHEMA_VERSION:
            await self.close()
            raise SchemaVersionError(self.describe(), found, SCHEMA_VERSION)
        if config and (config.get("appendonly") != "yes" or config.get("appendfsync") != "always"):
            log.warning(
                "%s: the server runs with appendonly=%s appendfsync=%s; a change survives a"
                " bot crash but not a Redis restart (set appendonly yes, appendfsync always)",
                self.describe(),
                config.get("appendonly"),
                config.get("appendfsync"),
            )
        self._script = self._client.register_script(_APPLY)

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
        keys = self._keys(flow_id)[2:]
        with self._errors():
            # MULTI/EXEC: the collections are read as one consistent snapshot.
            async with self._client.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                results = await pipe.execute()
        return dict(zip(COLLECTIONS, results, strict=True))

    async def apply(self, flow_id: str, change: Change) -> None:
        args: list[Any] = ["" if change.epoch is None else change.epoch, flow_id]
        for op in change.ops:
            index = _COLLECTION_INDEX[op.collection]
            if isinstance(op, Put):
                args += ["p", index, op.key, encode(op.value)]
            else:
                args += ["d", index, op.key]
        try:
            with self._errors():
                await self._script(keys=self._keys(flow_id), args=args)
        except StateError as error:
            fenced = _FENCED.search(str(error))
            if fenced:
                raise FencedOut(flow_id, change.epoch or 0, int(fenced.group(1))) from None
            raise

    async def flows(self) -> list[str]:
        with self._errors():
            return sorted(await self._client.smembers(f"{self._prefix}:flows"))

    async def epoch(self, flow_id: str) -> int:
        with self._errors():
            value = await self._client.get(self._keys(flow_id)[1])
        return int(value or 0)
