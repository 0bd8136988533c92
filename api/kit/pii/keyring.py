"""The personal-data keyring file: encryption keys by kid, the current one, the blind-index key."""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from api.kit.keyfile import read_or_create, write_private
from api.kit.pii.cipher import _KID_RE, KEY_BYTES, _check_key

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


def create_keyring(path: Path) -> None:
    """Create a new keyring file (one encryption key ``k1`` and a blind-index key), mode 0o600, parent folders
    created. Refuses (FileExistsError) to overwrite an existing one: that would make all data unreadable."""
    write_private(Path(path), _new_keyring(), replace=False)


def _new_keyring() -> bytes:
    return _encode_keyring({"k1": generate_key()}, "k1", generate_key())


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
    return _parse_keyring(Path(path).read_bytes(), path)


def _parse_keyring(raw: bytes, path: Path) -> tuple[dict[str, bytes], str, bytes]:
    try:
        doc = json.loads(raw)
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
    return _parse_keyring(read_or_create(path, _new_keyring), path)


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
    write_private(path, _encode_keyring(keys, kid, blind), replace=True)
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
    write_private(path, _encode_keyring(keys, current, blind), replace=True)
