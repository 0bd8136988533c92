"""The e-licence library (电子证照库) interface: a holder's licences, one licence, and the issuers we trust.

A record is what the library's sharing service (共享服务接口, the GB/T 36906 family) hands out: the licence's
surface data, signed by the authority that issued it (an issuer signature over `signed_bytes`), and its status
as the library knows it now (valid, revoked, suspended). Expiry is not a status the library sends: it is read
from `valid_until` against the city's date.

The signature covers every field but the status (the library changes the status, the issuer signs the licence):
`signed_bytes` is the record's fields as JSON with sorted keys, no spaces, UTF-8, dates as YYYY-MM-DD and an
open-ended validity (长期) as null. `check_signature` is the one place it is verified; the trust list
(`IssuerKey` by issuer code) comes from configuration or the sandbox, never from the library itself (a library
that could name its own trusted keys could sign anything).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal, Protocol

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

LibraryStatus = Literal["valid", "revoked", "suspended"]
STATUSES: tuple[LibraryStatus, ...] = ("valid", "revoked", "suspended")
# issuer signature algorithms we can check; GB/T 39786 expects SM2 (with SM3) from government issuers, which
# a later step adds here (the record names its algorithm, the trust list the key's)
ALGORITHMS = ("Ed25519",)


@dataclass(frozen=True)
class LibraryLicence:
    id: str  # the library's licence identifier (证照标识): opaque to us, never shown
    type: str  # our type code (LICENCE_TYPES in api.licences.types)
    issuer: str  # the issuing authority's code
    issuer_name: str
    number: str
    holder_name: str
    holder_id_number: str
    valid_from: date
    valid_until: date | None  # None: open-ended (长期)
    data: dict[str, str] = field(default_factory=dict)  # the type's own fields (address, vehicle class...)
    alg: str = "Ed25519"
    signature: str = ""  # base64 of the issuer's signature over signed_bytes()
    status: LibraryStatus = "valid"

    def signed_bytes(self) -> bytes:
        return signed_bytes(self)


def signed_bytes(record: LibraryLicence) -> bytes:
    return orjson.dumps(
        {
            "id": record.id,
            "type": record.type,
            "issuer": record.issuer,
            "issuer_name": record.issuer_name,
            "number": record.number,
            "holder_name": record.holder_name,
            "holder_id_number": record.holder_id_number,
            "valid_from": record.valid_from.isoformat(),
            "valid_until": record.valid_until.isoformat() if record.valid_until else None,
            "data": record.data,
        },
        option=orjson.OPT_SORT_KEYS,
    )


@dataclass(frozen=True)
class IssuerKey:
    code: str
    name: str
    alg: str
    public_key: bytes  # raw (32 bytes for Ed25519)


SignatureCheck = Literal["ok", "bad", "unknown_issuer"]


def check_signature(record: LibraryLicence, issuers: dict[str, IssuerKey]) -> SignatureCheck:
    """Whether the issuer named in the record signed it: "unknown_issuer" when we trust no key of that code,
    "bad" for a missing, malformed or wrong signature or an algorithm the key is not for."""
    issuer = issuers.get(record.issuer)
    if issuer is None:
        return "unknown_issuer"
    if record.alg != issuer.alg or record.alg not in ALGORITHMS or not record.signature:
        return "bad"
    try:
        signature = base64.b64decode(record.signature, validate=True)
        Ed25519PublicKey.from_public_bytes(issuer.public_key).verify(signature, signed_bytes(record))
    except (binascii.Error, ValueError, InvalidSignature):
        return "bad"
    return "ok"


class LicenceLibrary(Protocol):
    async def licences_of(self, holder_name: str, holder_id_number: str) -> list[LibraryLicence]:
        """Every licence the library holds for this person (any status), as the library has them now."""
        ...

    async def licence(self, licence_id: str) -> LibraryLicence | None:
        """One licence by the library's identifier, with its status now; None when the library has none."""
        ...

    async def aclose(self) -> None: ...


def load_issuers(path: Path) -> dict[str, IssuerKey]:
    """The trust list file: {"CODE": {"name": "…", "alg": "Ed25519", "public_key": "<base64 of the raw key>"}}.
    ValueError naming the file for anything else (a bad trust list must stop the start, not trust nothing)."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ValueError(f"licence issuers file not found: {path}") from None
    except orjson.JSONDecodeError:
        raise ValueError(f"licence issuers file is not JSON: {path}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"licence issuers file names no issuer: {path}")
    issuers = {}
    for code, entry in data.items():
        try:
            key = base64.b64decode(entry["public_key"], validate=True)
            alg = entry["alg"]
            if alg not in ALGORITHMS:
                raise ValueError(alg)
            Ed25519PublicKey.from_public_bytes(key)
            if not isinstance(entry["name"], str) or not entry["name"]:
                raise ValueError("name")
            issuers[code] = IssuerKey(code=code, name=entry["name"], alg=alg, public_key=key)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise ValueError(
                f"licence issuers file: issuer {code!r} needs name, alg (Ed25519) and a public_key"
            ) from None
    return issuers
