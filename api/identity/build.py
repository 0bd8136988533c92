"""Assemble the identity area's service for one worker on the kernel."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher

from api.identity.deps import Identity
from api.kit.container import Kernel
from integrations import Integrations


def build_identity(kernel: Kernel, integrations: Integrations) -> Identity:
    hasher = PasswordHasher()
    return Identity(
        kernel=kernel,
        integrations=integrations,
        hasher=hasher,
        dummy_hash=hasher.hash(secrets.token_urlsafe(16)),
    )
