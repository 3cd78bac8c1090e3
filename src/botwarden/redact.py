"""Keep secrets out of messages: every URL or DSN shown to a person goes through here."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)(\S+)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`redis://user:secret@host:6379/0` -> `redis://user:***@host:6379/0`.

    Also handles libpq keyword DSNs (`host=db password=secret`)."""
    if "://" not in url:
        return _KEYWORD_PASSWORD.sub(r"\1***", url)
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{user}:***@{host}{port}"
    return urlunsplit(
        (parts.scheme, netloc, parts.path, _KEYWORD_PASSWORD.sub(r"\1***", parts.query), "")
    )
