"""X account credentials at rest: sealed (encrypted and authenticated) with NALGAE_SECRET_KEY.

An ``x_account`` row keeps its account's keys and tokens as one sealed string, never in
clear: a database dump or backup does not hand out the accounts. ``seal`` and ``unseal``
are the only two functions that touch the cipher, so the storage of every credential
(X accounts here; bot tokens may follow) can be pointed at one shared implementation.

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key derived from
NALGAE_SECRET_KEY with HKDF; the ``v1:`` prefix names the scheme so that it can change.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from campaigns.errors import RuleError
from campaigns.i18n import _

PREFIX = "v1:"


class SealError(RuleError):
    """Sealed credentials that this NALGAE_SECRET_KEY cannot open."""

    code = "credentials_unreadable"


@lru_cache(maxsize=8)
def _fernet(secret_key: str) -> Fernet:
    if not secret_key:
        raise SealError(_("set NALGAE_SECRET_KEY: X credentials are stored encrypted with it"))
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"nalgae x credentials v1").derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secret_key: str, values: Mapping[str, str]) -> str:
    """``values`` (credential name -> value) as one encrypted, authenticated string."""
    payload = json.dumps(dict(values), separators=(",", ":"), sort_keys=True).encode()
    return PREFIX + _fernet(secret_key).encrypt(payload).decode("ascii")


def unseal(secret_key: str, sealed: str) -> dict[str, str]:
    """The credentials ``seal`` stored; SealError if the key is not the one that sealed them."""
    if not sealed.startswith(PREFIX):
        raise SealError(_("stored X credentials are in an unknown format"))
    try:
        payload = _fernet(secret_key).decrypt(sealed.removeprefix(PREFIX).encode("ascii"))
    except (InvalidToken, ValueError):
        raise SealError(_("stored X credentials cannot be read with this NALGAE_SECRET_KEY "
                          "(set the key they were added with, or add the account again)")) \
            from None
    return {str(k): str(v) for k, v in json.loads(payload).items()}
