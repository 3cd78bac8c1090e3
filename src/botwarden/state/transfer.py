"""Export one bot's state to a JSON document and import it into any store.

This is how a bot moves between backends (sqlite to redis, say): export from the old
config, import with the new one. The document holds every record as stored, its
history with its live state, plus the fencing epoch. Export copies records as they
are, so a broken one can be mended by hand; import validates every record first and
writes everything in one atomic change, without reading what it replaces; it refuses
to mix with existing state unless asked to replace it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from botwarden.errors import StateError
from botwarden.state.base import (
    COLLECTIONS,
    HISTORY,
    SCHEMA_VERSION,
    Change,
    Delete,
    Put,
    StateStore,
)
from botwarden.state.records import HISTORY_MODELS, decode, parse_record
from botwarden.state.upgrade import past_intent_keys

FORMAT = "botwarden-state"


async def _stored(store: StateStore, flow_id: str) -> dict[str, dict[str, str]]:
    """Every record of the bot, live and history: collection -> key -> JSON text."""
    stored = dict(await store.load(flow_id))
    for name in HISTORY:
        stored[name] = dict(await store.scan(flow_id, name))
    return stored


async def export_state(store: StateStore, flow_id: str, now: datetime) -> dict[str, Any]:
    # Records as stored, not decoded: an export is also how a broken record is mended.
    snapshot = await _stored(store, flow_id)
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "bot_id": flow_id,
        "exported_at": now.isoformat(),
        "source": store.describe(),
        "epoch": await store.epoch(flow_id),
        "records": {
            name: {key: json.loads(text) for key, text in sorted(snapshot[name].items())}
            for name in COLLECTIONS
        },
    }


def _records_of(document: Any, where: str, flow_id: str) -> tuple[dict[str, dict[str, Any]], int]:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise StateError(f'{where}: not a botwarden state export (no "format": "{FORMAT}")')
    version = document.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise StateError(
            f"{where}: export of schema version {version!r}; this botwarden reads up to"
            f" {SCHEMA_VERSION}: upgrade botwarden"
        )
    if document.get("bot_id") != flow_id:
        raise StateError(
            f"{where}: holds bot {document.get('bot_id')!r}, but the config is for bot"
            f" {flow_id!r}; state moves between stores, not between bots"
        )
    records = document.get("records")
    if not isinstance(records, dict) or not all(
        isinstance(records.get(name, {}), dict) for name in COLLECTIONS
    ):
        raise StateError(f'{where}: "records" must map each collection to an object')
    unknown = sorted(set(records) - set(COLLECTIONS))
    if unknown:
        raise StateError(f"{where}: unknown collections {unknown}; expected {list(COLLECTIONS)}")
    epoch = document.get("epoch", 0)
    if not isinstance(epoch, int) or epoch < 0:
        raise StateError(f'{where}: "epoch" must be a whole number >= 0')
    return records, epoch


async def import_state(
    store: StateStore, flow_id: str, document: Any, where: str, *, replace: bool = False
) -> int:
    """Write an export into `store` as ONE atomic change. Returns the records written."""
    records, epoch = _records_of(document, where, flow_id)
    snapshot = {
        name: {key: json.dumps(doc) for key, doc in records.get(name, {}).items()}
        for name in COLLECTIONS
    }
    # Every record must be valid before any is written.
    decode(snapshot, flow_id, where)
    for name, model in HISTORY_MODELS.items():
        for key, text in snapshot[name].items():
            parse_record(model, text, where, flow_id, name, key)
    terminal = past_intent_keys(snapshot["intents"])  # an export of layout 1
    moved = {key: records["intents"][key] for key in terminal}
    records = {
        **records,
        "intents": {k: v for k, v in records.get("intents", {}).items() if k not in moved},
        "past_intents": {**records.get("past_intents", {}), **moved},
    }

    existing = await _stored(store, flow_id)
    held = sum(len(existing[name]) for name in COLLECTIONS)
    if held and not replace:
        raise StateError(
            f"{store.describe()} already holds {held} records for bot {flow_id}; nothing was"
            " imported (export them first if they matter, then pass --replace)"
        )
    ops: list[Put | Delete] = [
        Delete(name, key)
        for name in COLLECTIONS
        for key in existing[name]
        if key not in records.get(name, {})
    ]
    ops += [
        Put(name, key, doc) for name in COLLECTIONS for key, doc in records.get(name, {}).items()
    ]
    if epoch > await store.epoch(flow_id):  # the next start goes above the export's
        await store.claim_epoch(flow_id, epoch)
    await store.apply(flow_id, Change(ops))
    return sum(len(records.get(name, {})) for name in COLLECTIONS)
