"""Credentials at rest: every secret a row keeps (bot tokens, X account credentials), one way.

A stored secret is ``enc1:<Fernet token>``; anything without the prefix is a value written
before encryption existed (plain text), which `seal` encrypts and `reveal` still reads, so
upgrading is idempotent: `storage.bots.seal_tokens` and `storage.x.seal_accounts` rewrite
such rows once at start (and `nalgae bot rekey` re-encrypts them all with the first key).

The keys: ``NALGAE_TOKEN_KEY`` (comma-separated; the first encrypts, all decrypt, so a key
can be rotated), else a key generated once into ``token.key`` (mode 0600) next to the
SQLite database, or in ~/.local/share/nalgae for another database. Several machines sharing one
PostgreSQL database must set the same NALGAE_TOKEN_KEY: a key file is per machine.

Every `Database` carries its `Keyring` (`db.keyring`, also in `session.info`), so code that
uses a token reveals it where it is used: `db.keyring.reveal(bot.token)`.

X credentials added before this module covered them were sealed as ``v1:<Fernet token>``
under a key derived from NALGAE_SECRET_KEY; `open_legacy` reads them once so that they can
be sealed here (at start or `db upgrade`, with that NALGAE_SECRET_KEY still set).
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import make_url

PREFIX = "enc1:"
LEGACY_PREFIX = "v1:"
KEY_FILE = "token.key"
SESSION_KEY = "nalgae.keyring"
MIN_KEY_LENGTH = 16


class SecretKeyError(Exception):
    """A stored secret cannot be read with the configured keys (or a key is unusable).

    Its message is one line for an operator and never contains the secret.
    """


def _fernet_key(material: str) -> bytes:
    """Any key text (a passphrase, or `Fernet.generate_key()` output) -> a Fernet key."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"nalgae token encryption").derive(material.encode())
    return base64.urlsafe_b64encode(derived)


def key_file_for(database_url: str) -> Path:
    """Where the generated key lives: beside a SQLite database file (./var by default);
    for another database, in the user's data directory, so that every process of this
    machine finds it whatever its working directory (other machines: NALGAE_TOKEN_KEY)."""
    try:
        url = make_url(database_url)
    except Exception:
        url = None
    if (url is not None and url.get_backend_name() == "sqlite" and url.database
            and url.database != ":memory:"):
        return Path(url.database).parent / KEY_FILE
    return Path.home() / ".local" / "share" / "nalgae" / KEY_FILE


def _read_or_create(path: Path, create: bool) -> str | None:
    """The key in ``path``; created (0600, atomically: processes may start together) if asked."""
    with contextlib.suppress(FileNotFoundError):
        text = path.read_text().strip()
        if text:
            return text
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, Fernet.generate_key() + b"\n")
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process created it first: theirs wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


class Keyring:
    """Encrypts and decrypts stored secrets; keys are loaded on first use."""

    def __init__(self, token_key: str = "", key_file: Path | None = None) -> None:
        self._configured = [k.strip() for k in token_key.split(",") if k.strip()]
        for key in self._configured:
            if len(key) < MIN_KEY_LENGTH:
                raise SecretKeyError(
                    f"NALGAE_TOKEN_KEY: every key needs at least {MIN_KEY_LENGTH} characters")
        self.key_file = key_file
        self._fernet: MultiFernet | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_database(cls, database_url: str, token_key: str = "") -> Keyring:
        return cls(token_key, None if token_key else key_file_for(database_url))

    @property
    def source(self) -> str:
        """Where the keys come from, for messages (never the keys)."""
        return "NALGAE_TOKEN_KEY" if self._configured else f"the key file {self.key_file}"

    def _keys(self, create: bool) -> MultiFernet | None:
        if self._fernet is not None:
            return self._fernet
        with self._lock:
            if self._fernet is not None:
                return self._fernet
            texts = list(self._configured)
            if not texts and self.key_file is not None:
                try:
                    found = _read_or_create(self.key_file, create)
                except OSError as exc:
                    raise SecretKeyError(
                        f"could not read or create the token key file {self.key_file} "
                        f"({exc.strerror}): set NALGAE_TOKEN_KEY instead") from None
                if found is None:
                    return None
                texts = [found]
            if not texts:
                raise SecretKeyError("no key to encrypt secrets with: set NALGAE_TOKEN_KEY")
            self._fernet = MultiFernet([Fernet(_fernet_key(t)) for t in texts])
            return self._fernet

    @staticmethod
    def is_sealed(stored: str | None) -> bool:
        return bool(stored) and str(stored).startswith(PREFIX)

    def seal(self, plain: str | None) -> str | None:
        """The stored form of ``plain`` (None and "" stay as they are; sealed stays sealed)."""
        if not plain or self.is_sealed(plain):
            return plain
        fernet = self._keys(create=True)
        assert fernet is not None
        return PREFIX + fernet.encrypt(plain.encode()).decode()

    def reveal(self, stored: str | None) -> str | None:
        """The secret itself; a value from before encryption is returned as it is."""
        if not stored or not self.is_sealed(stored):
            return stored
        fernet = self._keys(create=False)
        if fernet is None:
            raise SecretKeyError(
                f"a stored secret is encrypted but {self.source} does not exist: set "
                "NALGAE_TOKEN_KEY to the key it was encrypted with")
        try:
            return fernet.decrypt(stored.removeprefix(PREFIX).encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                f"a stored secret cannot be decrypted with {self.source}: it was encrypted "
                "with another key (set NALGAE_TOKEN_KEY to that key, or add it after a comma)"
            ) from None

    def can_reveal(self, stored: str | None) -> bool:
        try:
            self.reveal(stored)
        except SecretKeyError:
            return False
        return True

    def rotate(self, stored: str | None) -> str | None:
        """``stored`` encrypted with the first key (plain text is sealed)."""
        if not stored:
            return stored
        if not self.is_sealed(stored):
            return self.seal(stored)
        fernet = self._keys(create=False)
        if fernet is None:
            raise SecretKeyError(f"{self.source} does not exist")
        try:
            return PREFIX + fernet.rotate(stored.removeprefix(PREFIX).encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                f"a stored secret cannot be decrypted with {self.source}") from None


def is_legacy(stored: str | None) -> bool:
    """X credentials sealed with NALGAE_SECRET_KEY by an earlier version (see `open_legacy`)."""
    return bool(stored) and str(stored).startswith(LEGACY_PREFIX)


def open_legacy(stored: str, secret_key: str) -> str | None:
    """The text of a legacy ``v1:`` value, or None if ``secret_key`` is not the one it was
    sealed with (it is only read, to be sealed again with the keyring)."""
    if not secret_key:
        return None
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"nalgae x credentials v1").derive(secret_key.encode())
    try:
        return Fernet(base64.urlsafe_b64encode(key)).decrypt(
            stored.removeprefix(LEGACY_PREFIX).encode("ascii")).decode()
    except (InvalidToken, ValueError):
        return None


def keyring_of(session: Any) -> Keyring:
    """The keyring of the `Database` a session came from (see `Database.session`)."""
    found = session.info.get(SESSION_KEY)
    if isinstance(found, Keyring):
        return found
    # A session made outside `Database` (a test's own sessionmaker): its engine's file.
    return Keyring.for_database(str(session.get_bind().url))
