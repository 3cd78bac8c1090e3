"""The base of every layer's settings: strict (an unknown key is an error naming it),
frozen, and readable by a field's alias. Each layer keeps its own beside its code
(`state/settings.py`, `engine/settings.py`, ...); `config.py` composes them into a
bot's config and reads it from a file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
