"""The API's token: made at the first `botwarden serve`, kept in `$BOTWARDEN_HOME/api-token`
with mode 0600, shown once. Every route but `/healthz` (and the dashboard's page, which
holds no data) asks for it as `Authorization: Bearer TOKEN`."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from botwarden.errors import ConfigError


def token_path(root: Path) -> Path:
    return root / "api-token"


def load_or_create_token(root: Path) -> tuple[str, bool]:
    """The token, and whether it was made just now (to be shown, this once)."""
    path = token_path(root)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path), False
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
        file.flush()
        os.fsync(file.fileno())
    return token, True


def _read(path: Path) -> str:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(
            f"{path} can be read by other users (mode {mode:o}): chmod 600 {path}, or delete"
            " it to have a new token made"
        )
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 16:
        raise ConfigError(f"{path}: the token is too short; delete the file for a new one")
    return token


def authorized(header: str | None, token: str) -> bool:
    """Does an `Authorization` header carry the token? (In constant time.)"""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )
