"""What each layout version changes, for the backends that upgrade an older store.

Every backend upgrades in one atomic step of its own when a writer first opens a
store of an older version (the same change that writes the new version number), so a
crash leaves the old layout or the new one. A reader never upgrades: it reads an
older layout as it is, which the decoder accepts (see `records.decode`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from botwarden.domain.orders import IntentStatus


def past_intent_keys(intents: Mapping[str, str]) -> list[str]:
    """Version 1 to 2: the keys of the intents already terminal, which move from
    `intents` to `past_intents` (the JSON text of each intent by its key)."""
    return [key for key, text in intents.items() if _terminal(text)]


def _terminal(text: str) -> bool:
    try:
        status = json.loads(text).get("status")
        return IntentStatus(status).is_terminal
    except (ValueError, AttributeError):
        return False  # an invalid record stays where it is, for the decoder to name
