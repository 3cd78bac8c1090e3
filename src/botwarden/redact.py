"""Keep secrets out of messages.

Every URL or DSN shown to a person goes through `redact_url`, and every message a
driver wrote about a connection goes through `scrub`, which removes the secrets the
URL holds wherever the driver echoed them (some echo the token they failed to parse).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"

# libpq keyword form: password=secret or password='a secret'
_KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
# query parameters whose name says they are secret: ?password=..., ?auth_token=...
_SECRET_PARAMETER = re.compile(
    r"((?:^|&)[^=&]*(?:pass|secret|token|key|signature)[^=&]*=)([^&]*)", re.IGNORECASE
)
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`redis://user:secret@host:6379/0?password=x` -> `redis://user:***@host:6379/0?password=***`."""
    if "://" not in url:
        return _KEYWORD_PASSWORD.sub(rf"\1{MASK}", url)
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{hostport}"
    query = _SECRET_PARAMETER.sub(rf"\1{MASK}", parts.query)
    query = _KEYWORD_PASSWORD.sub(rf"\1{MASK}", query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def secrets_in(url: str) -> set[str]:
    """Every secret `url` carries, as written and percent-decoded."""
    found: set[str] = set()
    if "://" in url:
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        if ":" in userinfo:
            found.add(userinfo.split(":", 1)[1])
        found.update(match.group(2) for match in _SECRET_PARAMETER.finditer(parts.query))
    found.update(match.group(2).strip("'") for match in _KEYWORD_PASSWORD.finditer(url))
    found |= {unquote(secret) for secret in found}
    return {secret for secret in found if secret}


def scrub(message: str, url: str) -> str:
    """`message` with every secret of `url` masked (longest first, so none leaks in part)."""
    for secret in sorted(secrets_in(url), key=len, reverse=True):
        message = message.replace(secret, MASK)
    return message


def redact_urls_in(text: str) -> str:
    """`text` (an error a library wrote, say) with every URL in it redacted: a data
    provider's error often quotes the URL it called, its API key in the query."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)
