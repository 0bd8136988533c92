"""Signing keys by kid. The current key signs; every key in the ring verifies until it is removed (retired).

The ring is one JSON file, `<keys_dir>/jwt.json` (mode 0600, written atomically by api.kit.keyfile):
{"current": kid, "keys": {kid: PEM}}. In embedded mode it is generated on first start; in production it must
exist (made by `python -m api.cli init-keys` on a secure host and shipped as a secret file)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from api.kit import clock
from api.kit.keyfile import read_or_create, write_private

JWT_FILE = "jwt.json"
PII_FILE = "pii.json"
# the ring that signs licence presentations (QR tokens): separate from the sign-in ring, published apart
LICENCE_FILE = "licence.json"


class KeyringMissing(Exception):
    """No key file where production expects one."""


@dataclass(frozen=True)
class SigningKeys:
    current: str
    private: dict[str, Ed25519PrivateKey]

    @cached_property
    def public(self) -> dict[str, Ed25519PublicKey]:
        # derived once: every request verifies against these
        return {kid: key.public_key() for kid, key in self.private.items()}

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, public in sorted(self.public.items()):
            jwk = json.loads(OKPAlgorithm.to_jwk(public))
            jwk.update({"kid": kid, "use": "sig", "alg": "EdDSA"})
            keys.append(jwk)
        return {"keys": keys}


def _new_kid() -> str:
    return "k" + clock.now().strftime("%Y%m%d%H%M%S%f")


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _encode(data: dict[str, Any]) -> bytes:
    return json.dumps(data, indent=1).encode("utf-8")


def _new_ring() -> bytes:
    kid = _new_kid()
    return _encode({"current": kid, "keys": {kid: _pem(Ed25519PrivateKey.generate())}})


def load_signing_keys(keys_dir: Path, *, create: bool, file: str = JWT_FILE) -> SigningKeys:
    """The ring ``file`` in ``keys_dir``; with ``create``, made first if missing. Workers starting at once on a
    fresh data dir all end up with the one ring the first of them wrote (it is created exclusively)."""
    path = keys_dir / file
    try:
        raw = read_or_create(path, _new_ring) if create else path.read_bytes()
    except FileNotFoundError:
        raise KeyringMissing(f"signing keys not found: {path}") from None
    data = json.loads(raw)
    private = {}
    for kid, pem in data["keys"].items():
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"key {kid} is not Ed25519")
        private[kid] = key
    if data["current"] not in private:
        raise ValueError("current signing key is not in the ring")
    return SigningKeys(current=data["current"], private=private)


def rotate_signing_key(keys_dir: Path, file: str = JWT_FILE) -> str:
    """Add a new key and make it current; older keys keep verifying until retired. An operator action: do
    not run two at once."""
    path = keys_dir / file
    existed = path.exists()
    data = json.loads(path.read_text(encoding="utf-8")) if existed else {"keys": {}}
    kid = _new_kid()
    data["keys"][kid] = _pem(Ed25519PrivateKey.generate())
    data["current"] = kid
    # a ring that appeared meanwhile (a worker's first start) is not overwritten: FileExistsError
    write_private(path, _encode(data), replace=existed)
    return kid


def retire_signing_key(keys_dir: Path, kid: str, file: str = JWT_FILE) -> None:
    path = keys_dir / file
    data = json.loads(path.read_text(encoding="utf-8"))
    if kid == data["current"]:
        raise ValueError("cannot retire the current key; rotate first")
    data["keys"].pop(kid, None)
    write_private(path, _encode(data), replace=True)
