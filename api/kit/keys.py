"""Signing keys by kid. The current key signs; every key in the ring verifies until it is removed (retired).

The ring is one JSON file, `<keys_dir>/jwt.json` (mode 0600): {"current": kid, "keys": {kid: PEM}}. In
embedded mode it is generated on first start; in production it must exist (made by `python -m api.cli
init-keys` on a secure host and shipped as a secret file)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

JWT_FILE = "jwt.json"
PII_FILE = "pii.json"


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
    return "k" + datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
    os.replace(tmp, path)


def load_signing_keys(keys_dir: Path, *, create: bool) -> SigningKeys:
    path = keys_dir / JWT_FILE
    if not path.exists():
        if not create:
            raise KeyringMissing(f"signing keys not found: {path}")
        kid = _new_kid()
        _write_private(path, {"current": kid, "keys": {kid: _pem(Ed25519PrivateKey.generate())}})
    data = json.loads(path.read_text(encoding="utf-8"))
    private = {}
    for kid, pem in data["keys"].items():
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"key {kid} is not Ed25519")
        private[kid] = key
    if data["current"] not in private:
        raise ValueError("current signing key is not in the ring")
    return SigningKeys(current=data["current"], private=private)


def rotate_signing_key(keys_dir: Path) -> str:
    """Add a new key and make it current; older keys keep verifying until retired."""
    path = keys_dir / JWT_FILE
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"keys": {}}
    kid = _new_kid()
    data["keys"][kid] = _pem(Ed25519PrivateKey.generate())
    data["current"] = kid
    _write_private(path, data)
    return kid


def retire_signing_key(keys_dir: Path, kid: str) -> None:
    path = keys_dir / JWT_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    if kid == data["current"]:
        raise ValueError("cannot retire the current key; rotate first")
    data["keys"].pop(kid, None)
    _write_private(path, data)
