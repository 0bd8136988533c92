"""AES-256-GCM encryption at rest with key ids, and the keyed HMAC blind index for equality lookups."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from api.kit.pii.ids import normalize_id_number

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
TOKEN_VERSION = "v1"


# --------------------------------------------------------------------------------------------------------------
# Encryption at rest
# --------------------------------------------------------------------------------------------------------------

_KID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]+")


class PiiDecryptError(Exception):
    """A token could not be decrypted: malformed, unknown key id, wrong context, or tampered with.
    Not a ValueError on purpose, so it is never mistaken for bad user input (4xx): it is a server fault."""


def _check_key(key: object, what: str) -> bytes:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ValueError(f"{what} must be {KEY_BYTES} bytes")
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    if not _B64URL_RE.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PiiCipher:
    """AES-256-GCM for personal data at rest. Tokens name their key (``v1.<kid>.<data>``), so keys rotate:
    new data uses ``current``, old data decrypts while its key is still in the ring."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if not keys:
            raise ValueError("keyring is empty")
        self._aead: dict[str, AESGCM] = {}
        for kid, key in keys.items():
            if not isinstance(kid, str) or not _KID_RE.fullmatch(kid):
                raise ValueError(f"bad key id {kid!r}: 1-32 of [A-Za-z0-9_-]")
            self._aead[kid] = AESGCM(_check_key(key, f"key {kid!r}"))
        if current not in self._aead:
            raise ValueError(f"current key {current!r} is not in the keyring")
        self._current = current

    @property
    def current(self) -> str:
        """Key id used for new ciphertexts."""
        return self._current

    def encrypt(self, plaintext: str, context: str = "") -> str:
        """Encrypt with the current key and a fresh random 12-byte nonce. ``context`` (e.g.
        ``"account:12:id_number"``) is authenticated, so the token only decrypts with the same context."""
        if not isinstance(plaintext, str) or not isinstance(context, str):
            raise TypeError("plaintext and context must be str")
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead[self._current].encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return f"{TOKEN_VERSION}.{self._current}.{_b64url(nonce + sealed)}"

    def _parse(self, token: str) -> tuple[str, bytes]:
        if not isinstance(token, str):
            raise PiiDecryptError("token is not a string")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != TOKEN_VERSION:
            raise PiiDecryptError("malformed token")
        kid, data = parts[1], parts[2]
        if kid not in self._aead:
            raise PiiDecryptError(f"unknown key id {kid!r}")
        try:
            raw = _unb64url(data)
        except (ValueError, binascii.Error) as e:
            raise PiiDecryptError("malformed token") from e
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise PiiDecryptError("malformed token")
        return kid, raw

    def decrypt(self, token: str, context: str = "") -> str:
        """Decrypt with the key named in the token. Raises ``PiiDecryptError`` for an unknown key id, a
        different context, or any change to the token."""
        kid, raw = self._parse(token)
        try:
            plain = self._aead[kid].decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode("utf-8"))
            return plain.decode("utf-8")
        except (InvalidTag, UnicodeDecodeError) as e:
            raise PiiDecryptError("token does not authenticate") from e

    def rotate_needed(self, token: str) -> bool:
        """True when the token was made with a key other than ``current`` (re-encrypt it with ``reencrypt``).
        Raises ``PiiDecryptError`` for a malformed token or unknown key id."""
        kid, _ = self._parse(token)
        return kid != self._current

    def reencrypt(self, token: str, context: str = "") -> str:
        """The same plaintext under the current key (for a background rotation job)."""
        return self.encrypt(self.decrypt(token, context), context)


# --------------------------------------------------------------------------------------------------------------
# Blind index
# --------------------------------------------------------------------------------------------------------------


class BlindIndex:
    """Keyed HMAC-SHA256 of a normalised value, stored beside the ciphertext so equal values can be found with
    an indexed equality query without decrypting. Keyed (unlike a plain hash), so the 10^18 ID space cannot
    be brute-forced from a database dump alone. Use a key separate from the encryption keys."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) < KEY_BYTES:
            raise ValueError(f"blind index key must be at least {KEY_BYTES} bytes")
        self._key = key

    @staticmethod
    def normalize(value: str, kind: str) -> str:
        """ID numbers via ``normalize_id_number``; everything else (phones included) stripped."""
        if kind == "id_number":
            return normalize_id_number(value)
        return value.strip()

    def digest(self, value: str, kind: str) -> str:
        """Hex HMAC-SHA256 over ``kind:normalized value``. The kind prefix keeps equal strings of different
        kinds apart; a ``:`` in ``kind`` is refused because it would make the prefix ambiguous."""
        if not isinstance(value, str) or not isinstance(kind, str):
            raise TypeError("value and kind must be str")
        if not kind or ":" in kind:
            raise ValueError("kind must be non-empty and contain no ':'")
        message = f"{kind}:{self.normalize(value, kind)}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
