"""What the licences area works with, built once per worker by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from api.identity.service import Identity
from api.kit.container import Kernel
from api.kit.keys import LICENCE_FILE, load_signing_keys
from api.licences.tokens import Ed25519Signer, Signer
from integrations.elicence import IssuerKey, LicenceLibrary


@dataclass
class Licences:
    kernel: Kernel
    identity: Identity
    library: LicenceLibrary
    issuers: dict[str, IssuerKey]
    signer: Signer
    # every algorithm a token may name, by its byte (tokens.read picks the signer)
    signers: dict[int, Signer] = field(default_factory=dict)

    # /.well-known/licence-keys.json: the public keys that sign presentations, as a JWKS (made once)
    keys_body: bytes = b""

    def __post_init__(self) -> None:
        self.signers.setdefault(self.signer.alg, self.signer)
        self.keys_body = orjson.dumps(self.signer.jwks())


def build_licences(
    kernel: Kernel, identity: Identity, library: LicenceLibrary, issuers: dict[str, IssuerKey]
) -> Licences:
    settings = kernel.settings
    keys = load_signing_keys(settings.keys_dir, create=settings.embedded, file=LICENCE_FILE)
    return Licences(
        kernel=kernel, identity=identity, library=library, issuers=issuers, signer=Ed25519Signer(keys)
    )
