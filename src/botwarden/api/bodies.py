"""What the API's request bodies may hold. Each field has a length it cannot pass and
refuses what is not text (a NUL in a path, a terminal escape in a key, half a surrogate
pair that no file system or cipher can encode): a 422 that names the field and says
where, never the value (it may be a secret)."""

from __future__ import annotations

import unicodedata
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, Field, SecretStr
from pydantic_core import PydanticCustomError

from botwarden.keystore import API_KEY_MAX, API_KEY_MIN, NAME, SECRET_MAX

PATH_MAX = 4096
"""Characters in a config path: Linux's PATH_MAX."""

NOT_TEXT = {"Cc": "a control character", "Cs": "half a surrogate pair"}
"""Unicode categories refused, and how the error calls them."""

Text = TypeVar("Text", str, SecretStr)


def text(most: int, least: int = 1, allowed: str = "") -> AfterValidator:
    """A field of `least` to `most` characters, none of them a control character (but
    those `allowed`) nor half a surrogate pair."""

    def check(value: Text) -> Text:
        given = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not least <= len(given) <= most:
            raise PydanticCustomError(
                "text_length", f"{least} to {most} characters, not {len(given)}"
            )
        for position, char in enumerate(given, start=1):
            kind = NOT_TEXT.get(unicodedata.category(char))
            if kind and char not in allowed:
                raise PydanticCustomError(
                    "not_text", f"{kind} (U+{ord(char):04X}) at character {position}"
                )
        return value

    return AfterValidator(check)


class NewKey(BaseModel):
    name: str = Field(pattern=NAME.pattern)
    """How bots name it: `venue: {stored_key: NAME}`."""
    api_key: Annotated[SecretStr, text(API_KEY_MAX, least=API_KEY_MIN)]
    secret_key: Annotated[SecretStr, text(SECRET_MAX, allowed="\r\n")]  # PEM has line breaks


class NewBot(BaseModel):
    config: Annotated[str, text(PATH_MAX)]
    """The bot's config file, on the server (relative: to the server's folder)."""
