"""Presentation tokens (亮证码): what a licence's QR code carries, signed with the licence key ring.

Binary, then base45 (RFC 9285) behind the prefix `YL1:`, so the whole text is in a QR code's alphanumeric
mode (README "E-licences" gives the layout; an outside verifier needs only it and
/.well-known/licence-keys.json):

    offset size
    0      1    version (1)
    1      1    algorithm (1: Ed25519; SM2 would be 2)
    2      4    key: the first 4 bytes of SHA-256 of the raw public key
    6      4    licence id (ours, unsigned big-endian)
    10     4    fields disclosed: a bit mask over api.licences.types.FIELDS
    14     1    flags: bit 0 single use
    15     4    expires at, Unix seconds
    19     8    nonce
    27     64   signature over b"YWT-LP1" + bytes 0..26

91 bytes, 141 characters: a version 6 QR code at level M. The token names no person and no value: the
disclosed values are given only by the online verification, so a photographed code tells nothing.

The algorithm is a `Signer`: the ring's keys sign and verify through it, so SM2/SM3 (GB/T 39786) is one more
implementation with its own algorithm byte, and a verifier picks the key by algorithm and key bytes.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
from dataclasses import dataclass
from typing import Any, Protocol

import base45
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import OKPAlgorithm

from api.kit.keys import SigningKeys

PREFIX = "YL1:"
VERSION = 1
CONTEXT = b"YWT-LP1"
_BODY = struct.Struct(">BB4sIIBI8s")
SIGNATURE_BYTES = 64
TOKEN_BYTES = _BODY.size + SIGNATURE_BYTES
SINGLE_USE = 0x01


class Signer(Protocol):
    """One signature algorithm over one ring of keys."""

    alg: int
    name: str

    def current(self) -> bytes:
        """The key id (4 bytes) that signs now."""
        ...

    def sign(self, data: bytes) -> bytes: ...

    def verify(self, key: bytes, data: bytes, signature: bytes) -> bool: ...

    def jwks(self) -> dict[str, Any]: ...


def _key_id(public: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).digest()[:4]


class Ed25519Signer:
    alg = 1
    name = "Ed25519"

    def __init__(self, keys: SigningKeys) -> None:
        self._private: Ed25519PrivateKey = keys.private[keys.current]
        self._current = _key_id(self._private.public_key())
        self._public = {_key_id(public): public for public in keys.public.values()}

    def current(self) -> bytes:
        return self._current

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    def verify(self, key: bytes, data: bytes, signature: bytes) -> bool:
        public = self._public.get(key)
        if public is None:
            return False
        try:
            public.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def jwks(self) -> dict[str, Any]:
        keys = []
        for key_id, public in sorted(self._public.items()):
            jwk = json.loads(OKPAlgorithm.to_jwk(public))
            jwk.update({"kid": key_id.hex(), "use": "sig", "alg": "EdDSA"})
            keys.append(jwk)
        return {"keys": keys}


@dataclass(frozen=True)
class Presentation:
    licence_id: int
    fields: int
    single_use: bool
    expires_at: int
    nonce: bytes


class BadToken(Exception):
    """Not a token of ours: malformed, unknown key, or a signature that does not verify."""


def make(
    signer: Signer, licence_id: int, fields: int, single_use: bool, expires_at: int
) -> tuple[str, bytes]:
    """The token text and its nonce."""
    nonce = secrets.token_bytes(8)
    body = _BODY.pack(
        VERSION,
        signer.alg,
        signer.current(),
        licence_id,
        fields,
        SINGLE_USE if single_use else 0,
        expires_at,
        nonce,
    )
    signature = signer.sign(CONTEXT + body)
    return PREFIX + base45.b45encode(body + signature).decode("ascii"), nonce


def read(signers: dict[int, Signer], token: str) -> Presentation:
    """The presentation a genuine token carries, or BadToken. Expiry is the caller's to judge."""
    if not isinstance(token, str) or not token.startswith(PREFIX) or len(token) > 400:
        raise BadToken("format")
    try:
        raw = base45.b45decode(token[len(PREFIX) :])
    except (ValueError, KeyError, IndexError):
        raise BadToken("encoding") from None
    if len(raw) != TOKEN_BYTES:
        raise BadToken("length")
    body, signature = raw[: _BODY.size], raw[_BODY.size :]
    version, alg, key, licence_id, fields, flags, expires_at, nonce = _BODY.unpack(body)
    signer = signers.get(alg)
    if version != VERSION or signer is None:
        raise BadToken("version")
    if not signer.verify(key, CONTEXT + body, signature):
        raise BadToken("signature")
    return Presentation(
        licence_id=licence_id,
        fields=fields,
        single_use=bool(flags & SINGLE_USE),
        expires_at=expires_at,
        nonce=nonce,
    )
