"""A child process for the crash and concurrency tests.

It applies numbered changes to one bot's state and prints each number only after the
store acknowledged it. Change n writes three records at once: positions/p<n>,
intents/i<n> and meta/counter = n, so a partial change is visible to the checker.
It resumes after the last change the store holds, so one store accumulates the
history of many killed writers.

    python tests/state/writer.py BACKEND LOCATION [--prefix P] [--flow F] [--count N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

from botwarden.state.base import Change, Put, StateStore

PAD = "x" * 300  # a realistic record size, so a write spans more than a few bytes


def make_store(backend: str, location: str, prefix: str) -> StateStore:
    if backend == "sqlite":
        from botwarden.state.sqlite import SqliteStore

        return SqliteStore(location)
    if backend == "duckdb":
        from botwarden.state.duckdb import DuckdbStore

        return DuckdbStore(location)
    if backend == "jsonfile":
        from botwarden.state.jsonfile import JsonFileStore

        return JsonFileStore(location)
    if backend == "redis":
        from botwarden.state.redis import RedisStore

        return RedisStore(location, key_prefix=prefix)
    if backend == "postgres":
        from botwarden.state.postgres import PostgresStore

        return PostgresStore(location, schema=prefix)
    raise SystemExit(f"unknown backend {backend}")


def numbered_change(n: int) -> Change:
    return Change(
        [
            Put("positions", f"p{n}", {"n": n, "pad": PAD}),
            Put("intents", f"i{n}", {"n": n}),
            Put("meta", "counter", {"n": n}),
        ]
    )


def last_number(snapshot: dict[str, dict[str, str]]) -> int:
    counter = snapshot["meta"].get("counter")
    return json.loads(counter)["n"] if counter else 0


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend")
    parser.add_argument("location")
    parser.add_argument("--prefix", default="bw")
    parser.add_argument("--flow", default="bot")
    parser.add_argument("--count", type=int, default=10**9)
    args = parser.parse_args()

    store = make_store(args.backend, args.location, args.prefix)
    await store.open()
    start = last_number(await store.load(args.flow)) + 1
    for n in range(start, start + args.count):
        await store.apply(args.flow, numbered_change(n))
        os.write(1, f"{n}\n".encode())  # unbuffered: printed means acknowledged
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
