"""Venue keys stored through the API (`POST /api/v1/keys`), encrypted at rest.

A server that runs bots for several people keeps their keys here rather than in config
files: `$BOTWARDEN_HOME/keys/NAME.json`, mode 0600, holding the key's name, the last
four characters of its API key, when it was stored, and the API key and secret
encrypted with Fernet (AES-128 in CBC mode with an HMAC-SHA256 tag, from the
`cryptography` package) under the master key in `BOTWARDEN_MASTER_KEY`. botwarden
never writes the master key anywhere; without it nothing is stored and nothing can be
read. A key is never given back by the API: only its name and its last four
characters. A bot names one with `venue: {stored_key: NAME}`, and decrypts it when
it starts (with the master key in its environment).
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from botwarden.errors import BotwardenError, ConfigError
from botwarden.state.files import atomic_write, fsync_dir

MASTER_ENV = "BOTWARDEN_MASTER_KEY"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
API_KEY_MIN, API_KEY_MAX = 8, 256
"""Characters. Venue API keys run from 20 (Alpaca) to 64 (Binance) characters; a Coinbase key's
name (organizations/.../apiKeys/...) is about 100."""
SECRET_MAX = 4096
"""Characters. A secret may be a private key in PEM (Binance's RSA or Ed25519 keys, Coinbase's EC
keys): a 4096-bit RSA key is about 3.3 KB."""


class KeyStoreError(BotwardenError):
    """A stored key cannot be written or read."""


class NoMasterKey(KeyStoreError):
    def __init__(self) -> None:
        super().__init__(
            f"no master key: set {MASTER_ENV} in the environment of `botwarden serve` and"
            " of the bots (make one with `botwarden keys master`, and keep it apart from"
            " the keys it protects)"
        )


class UnknownKey(KeyStoreError):
    """No stored key of that name."""


class KeyExists(KeyStoreError):
    """A key of that name is stored already."""


@dataclass(frozen=True)
class StoredKey:
    """What is ever shown of a stored key."""

    name: str
    last4: str
    created_at: str


def new_master_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


class KeyStore:
    def __init__(self, root: Path, master: str | None = None) -> None:
        self.dir = root / "keys"
        self._master = master if master is not None else os.environ.get(MASTER_ENV)

    def put(self, name: str, api_key: str, secret: str) -> StoredKey:
        path = self._path(name)
        if not API_KEY_MIN <= len(api_key) <= API_KEY_MAX or not 0 < len(secret) <= SECRET_MAX:
            raise ConfigError(
                f"an API key of {API_KEY_MIN} to {API_KEY_MAX} characters, and its secret"
                f" of {SECRET_MAX} at most, are needed"
            )
        if path.exists():
            raise KeyExists(f"a key named {name!r} is stored already: delete it first")
        cipher = self._cipher()
        shown = StoredKey(name, api_key[-4:], datetime.now(UTC).isoformat(timespec="seconds"))
        record = {
            **asdict(shown),
            "api_key": cipher.encrypt(api_key.encode()).decode(),
            "secret": cipher.encrypt(secret.encode()).decode(),
        }
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Written whole aside (0600), then linked in: a link never replaces a file, so
        # of two keys stored under one name at once, the second is refused.
        draft = path.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
        atomic_write(draft, json.dumps(record).encode())
        try:
            os.link(draft, path)
        except FileExistsError:
            raise KeyExists(f"a key named {name!r} is stored already: delete it first") from None
        finally:
            draft.unlink()
        fsync_dir(self.dir)
        return shown

    def list(self) -> list[StoredKey]:
        if not self.dir.is_dir():
            return []
        return [self._shown(self._read(path)) for path in sorted(self.dir.glob("*.json"))]

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            raise UnknownKey(f"no stored key named {name!r}") from None

    def reveal(self, name: str) -> tuple[str, str]:
        """The key's API key and secret, decrypted (for a bot's venue, never shown)."""
        from cryptography.fernet import InvalidToken

        path = self._path(name)
        if not path.exists():
            raise UnknownKey(f"no stored key named {name!r} (in {self.dir})")
        record = self._read(path)
        cipher = self._cipher()
        try:
            return (
                cipher.decrypt(record["api_key"].encode()).decode(),
                cipher.decrypt(record["secret"].encode()).decode(),
            )
        except (InvalidToken, KeyError, AttributeError):
            raise KeyStoreError(
                f"stored key {name!r} cannot be decrypted: {MASTER_ENV} is not the master"
                " key it was stored with (or its file was altered)"
            ) from None

    # -- helpers ----------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        if not NAME.match(name):
            raise ConfigError(
                f"key name {name!r}: letters, digits, '_', '.', '-'; 64 characters at most"
            )
        return self.dir / f"{name}.json"

    def _cipher(self):
        from cryptography.fernet import Fernet

        if not self._master:
            raise NoMasterKey()
        try:
            return Fernet(self._master.encode())
        except ValueError:
            raise KeyStoreError(
                f"{MASTER_ENV} is not a master key (32 url-safe base64-encoded bytes): make"
                " one with `botwarden keys master`"
            ) from None

    @staticmethod
    def _read(path: Path) -> dict:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise KeyStoreError(f"{path}: unreadable ({error})") from None

    @staticmethod
    def _shown(record: dict) -> StoredKey:
        try:
            return StoredKey(record["name"], record["last4"], record["created_at"])
        except (KeyError, TypeError):
            raise KeyStoreError(
                f"a stored key's file is malformed: {record.get('name')!r}"
            ) from None
