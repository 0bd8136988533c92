"""Personal-data protection helpers used by every area (DESIGN "Privacy and security baseline", SECURITY 7, 8, 18).

Pure functions and small classes: no Sanic, no ORM. The only I/O is the keyring file functions.

- ID numbers (GB 11643-1999, ISO 7064 MOD 11-2): validate before storing, so typos are caught at the door.
- Masking: what responses and logs show instead of the real value.
- ``PiiCipher``: AES-256-GCM encryption at rest, with key ids so keys can rotate without a big-bang migration,
  and a per-row context bound as associated data so a ciphertext copied to another row does not decrypt.
- ``BlindIndex``: keyed HMAC so an encrypted column can still be looked up by equality.
- ``scrub`` / ``ScrubFilter``: last line of defence so no log line carries an ID number, phone or token,
  and no input can forge a log line with CR/LF.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
import unicodedata
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "PHONE_RE",
    "BlindIndex",
    "PiiCipher",
    "PiiDecryptError",
    "ScrubFilter",
    "add_key",
    "birth_date",
    "create_keyring",
    "ensure_keyring",
    "generate_key",
    "id_number_problem",
    "is_mainland_mobile",
    "is_valid_id_number",
    "load_keyring",
    "mask_address",
    "mask_id_number",
    "mask_name",
    "mask_phone",
    "normalize_id_number",
    "one_line",
    "remove_key",
    "scrub",
]

# China has no daylight saving time, so a fixed +08:00 offset is exact and needs no tz database.
CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
TOKEN_VERSION = "v1"

# --------------------------------------------------------------------------------------------------------------
# ID numbers
# --------------------------------------------------------------------------------------------------------------

# ISO 7064 MOD 11-2 weights for positions 1..17: 2^(17-i) mod 11.
_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK_CHARS = "10X98765432"  # index = weighted sum mod 11
# ASCII only: Python's \d also matches e.g. Arabic-Indic digits, which int() would happily accept.
_ID_SHAPE_RE = re.compile(r"[0-9]{17}[0-9X]")


def normalize_id_number(value: str) -> str:
    """Canonical form (NFKC, stripped, upper-case X) so the same person always gives the same stored value and
    blind index, whether typed with full-width digits, a lower-case x or stray spaces."""
    return unicodedata.normalize("NFKC", value).strip().upper()


def _id_check_char(first17: str) -> str:
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def id_number_problem(value: str, *, today: date | None = None) -> str | None:
    """Why ``value`` is not a valid resident ID number (a short Chinese reason for the user), or None if valid.

    Valid: 17 digits + [0-9X], a real date of birth at positions 7-14 from 1900 up to today (China time),
    and the GB 11643 check digit. ``today`` is only for tests.
    """
    if not isinstance(value, str):
        return "格式不正确"
    v = normalize_id_number(value)
    if len(v) != 18:
        return "应为18位"
    if not _ID_SHAPE_RE.fullmatch(v):
        return "前17位应为数字，末位应为数字或X"
    try:
        born = date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return "出生日期不正确"
    if today is None:
        today = datetime.now(CHINA_TZ).date()
    if born.year < 1900 or born > today:
        return "出生日期不正确"
    if _id_check_char(v[:17]) != v[17]:
        return "校验码不正确"
    return None


def is_valid_id_number(value: str) -> bool:
    """True when ``value`` passes every check of ``id_number_problem``."""
    return id_number_problem(value) is None


def birth_date(id_number: str) -> date:
    """Date of birth encoded in a valid ID number; ValueError (with the reason) for an invalid one, so a bad
    number can never yield a made-up date."""
    problem = id_number_problem(id_number)
    if problem is not None:
        raise ValueError(f"身份证号码无效：{problem}")
    v = normalize_id_number(id_number)
    return date(int(v[6:10]), int(v[10:12]), int(v[12:14]))


# --------------------------------------------------------------------------------------------------------------
# Phones
# --------------------------------------------------------------------------------------------------------------

# Anchored with \A...\Z (not ^...$, where $ also matches before a trailing newline), so .match and .search are
# as safe as .fullmatch. Pass the compiled pattern to pydantic: it then uses Python's re engine.
PHONE_RE = re.compile(r"\A1[3-9][0-9]{9}\Z")


def is_mainland_mobile(phone: str) -> bool:
    """True for an 11-digit mainland China mobile number (1[3-9] + 9 digits), exactly, with nothing around it."""
    return isinstance(phone, str) and PHONE_RE.fullmatch(phone) is not None


# --------------------------------------------------------------------------------------------------------------
# Masking
# --------------------------------------------------------------------------------------------------------------


def mask_id_number(value: str | None) -> str | None:
    """``3605**********2015``: first 4 and last 4 kept, one star per hidden character (18 characters in all),
    enough for a person to recognise his own number and nothing more. Short values are fully starred."""
    if value is None:
        return None
    v = normalize_id_number(value)
    if len(v) <= 8:
        return "*" * len(v)
    return v[:4] + "*" * (len(v) - 8) + v[-4:]


def mask_phone(value: str | None) -> str | None:
    """``138****0001``: first 3 and last 4 kept, the usual Chinese convention. Short values are fully starred."""
    if value is None:
        return None
    v = value.strip()
    if len(v) <= 7:
        return "*" * len(v)
    return v[:3] + "*" * (len(v) - 7) + v[-4:]


def mask_name(value: str | None) -> str | None:
    """``张*``, ``欧***``: the first character, then one star per remaining character; a single character is
    ``*`` (otherwise it would be shown in full)."""
    if value is None:
        return None
    v = value.strip()
    if len(v) <= 1:
        return "*" * len(v)
    return v[0] + "*" * (len(v) - 1)


def mask_address(value: str | None) -> str | None:
    """The first 6 characters (province/city/district) then ``****``. A short address keeps at most half of its
    characters so something is always hidden; the fixed ``****`` does not reveal the length."""
    if value is None:
        return None
    v = value.strip()
    if not v:
        return ""
    keep = min(6, len(v) // 2)
    return v[:keep] + "****"


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


# --------------------------------------------------------------------------------------------------------------
# Key material
# --------------------------------------------------------------------------------------------------------------


def generate_key() -> bytes:
    """32 bytes from the OS CSPRNG (``secrets``): an AES-256 or blind-index key."""
    return secrets.token_bytes(KEY_BYTES)


def _encode_keyring(keys: Mapping[str, bytes], current: str, blind_index_key: bytes) -> bytes:
    doc = {
        "current": current,
        "keys": {kid: base64.b64encode(key).decode("ascii") for kid, key in keys.items()},
        "blind_index_key": base64.b64encode(blind_index_key).decode("ascii"),
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("ascii")


def _write_private(path: Path, data: bytes, *, replace: bool) -> None:
    """Write ``data`` to ``path`` with mode 0o600, atomically: a temp file in the same folder, fsynced, then
    renamed over (``replace``) or hard-linked into place (fails with FileExistsError if ``path`` exists, so two
    processes creating the keyring at once cannot overwrite each other's keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def create_keyring(path: Path) -> None:
    """Create a new keyring file (one encryption key ``k1`` and a blind-index key), mode 0o600, parent folders
    created. Refuses (FileExistsError) to overwrite an existing one: that would make all data unreadable."""
    path = Path(path)
    _write_private(path, _encode_keyring({"k1": generate_key()}, "k1", generate_key()), replace=False)


def _decode_key(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"keyring: {what} is not a string")
    try:
        key = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as e:
        raise ValueError(f"keyring: {what} is not base64") from e
    return _check_key(key, f"keyring: {what}")


def load_keyring(path: Path) -> tuple[dict[str, bytes], str, bytes]:
    """Read and validate a keyring file: ``(keys by kid, current kid, blind-index key)``. Raises ValueError for
    a malformed file (without echoing key material)."""
    try:
        doc = json.loads(Path(path).read_bytes())
    except json.JSONDecodeError as e:
        raise ValueError(f"keyring {path}: not valid JSON") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), dict) or not doc["keys"]:
        raise ValueError(f"keyring {path}: expected an object with a non-empty 'keys' object")
    keys: dict[str, bytes] = {}
    for kid, text in doc["keys"].items():
        if not _KID_RE.fullmatch(kid):
            raise ValueError(f"keyring {path}: bad key id {kid!r}")
        keys[kid] = _decode_key(text, f"key {kid!r}")
    current = doc.get("current")
    if not isinstance(current, str) or current not in keys:
        raise ValueError(f"keyring {path}: 'current' must name one of the keys")
    return keys, current, _decode_key(doc.get("blind_index_key"), "blind_index_key")


def ensure_keyring(path: Path) -> tuple[dict[str, bytes], str, bytes]:
    """Load the keyring, creating it first if missing (safe when several workers start at once)."""
    path = Path(path)
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            create_keyring(path)
    return load_keyring(path)


def add_key(path: Path) -> str:
    """Rotation: add a fresh key and make it current, keeping the old ones so existing ciphertexts still
    decrypt. Returns the new key id (``k<n+1>``). The blind-index key is unchanged (indexes stay valid).
    An operator action: do not run two at once."""
    path = Path(path)
    keys, _, blind = load_keyring(path)
    numbers = [int(m.group(1)) for kid in keys if (m := re.fullmatch(r"k([0-9]+)", kid))]
    kid = f"k{max(numbers, default=0) + 1}"
    while kid in keys:  # pragma: no cover - only with hand-made ids
        kid = f"k{secrets.token_hex(4)}"
    keys[kid] = generate_key()
    _write_private(path, _encode_keyring(keys, kid, blind), replace=True)
    return kid


def remove_key(path: Path, kid: str) -> None:
    """Retire a key once nothing is encrypted with it any more (after re-encryption). The current key cannot
    be removed."""
    path = Path(path)
    keys, current, blind = load_keyring(path)
    if kid == current:
        raise ValueError("cannot remove the current key")
    if kid not in keys:
        raise KeyError(kid)
    del keys[kid]
    _write_private(path, _encode_keyring(keys, current, blind), replace=True)


# --------------------------------------------------------------------------------------------------------------
# Log scrubbing
# --------------------------------------------------------------------------------------------------------------

# Anything shaped like an ID number (date-shaped positions 7-14), right check digit or not: a mistyped
# number is still somebody's personal data. Not part of a longer digit run (order numbers and the like).
_SCRUB_ID_RE = re.compile(r"(?<![0-9])[0-9]{6}(?:19|20)[0-9]{2}[01][0-9][0-3][0-9][0-9]{3}[0-9Xx](?![0-9])")
# Mainland mobile, optionally with a +86/0086/86 prefix and 3-4-4 spaces or hyphens, not inside a longer run.
_SCRUB_PHONE_RE = re.compile(
    r"(?<![0-9])(?P<prefix>(?:\+|00)?86[- ]?)?(?P<phone>1[3-9][0-9][- ]?[0-9]{4}[- ]?[0-9]{4})(?![0-9])"
)
_SCRUB_BEARER_RE = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+[A-Za-z0-9._~+/-]+=*", re.IGNORECASE)
_SCRUB_JWT_RE = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

_LINE_BREAKS = {
    ord("\r"): "\\r",
    ord("\n"): "\\n",
    ord("\v"): "\\v",
    ord("\f"): "\\f",
    0x1C: "\\x1c",
    0x1D: "\\x1d",
    0x1E: "\\x1e",
    0x85: "\\x85",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def _mask_phone_match(m: re.Match[str]) -> str:
    digits = re.sub(r"[- ]", "", m.group("phone"))
    return (m.group("prefix") or "") + (mask_phone(digits) or "")


def scrub(text: str) -> str:
    """Mask ID-number-shaped strings (``3605**********2015``), mainland mobiles (``138****0001``),
    ``Bearer``/``Basic`` credentials and JWT-like tokens (``[token]``) anywhere in ``text``."""
    if not isinstance(text, str) or not text:
        return text
    text = _SCRUB_BEARER_RE.sub(lambda m: f"{m.group('scheme')} [token]", text)
    text = _SCRUB_JWT_RE.sub("[token]", text)
    text = _SCRUB_ID_RE.sub(lambda m: mask_id_number(m.group(0)) or "", text)
    return _SCRUB_PHONE_RE.sub(_mask_phone_match, text)


def one_line(text: str) -> str:
    """Replace CR, LF and every other character Python treats as a line break with a visible escape, so
    user input written to a log cannot start a forged line."""
    return text.translate(_LINE_BREAKS)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return one_line(scrub(value))
    if isinstance(value, Mapping):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    return value


_STANDARD_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime", "taskName"}
)


class ScrubFilter(logging.Filter):
    """Rewrites each record so no handler can write personal data, tokens or line breaks from input:
    the message is formatted first (so ``log.info("id %s", id_number)`` is caught), then scrubbed and made one
    line; ``record.fields`` (the JSON-lines extra fields), other string ``extra=`` attributes and any
    exception text are scrubbed too. Attach it to handlers: a logger's own filters do not see records
    propagated from child loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not make the logging call raise
            message = f"{record.msg!s} {record.args!r}"
        record.msg = one_line(scrub(message))
        record.args = ()
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            record.fields = _clean(fields)  # a new dict: the caller's dict is left alone
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_RECORD_ATTRS and name != "fields" and isinstance(value, str):
                setattr(record, name, one_line(scrub(value)))
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when set; tracebacks keep their line breaks (a formatter frames them).
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True
