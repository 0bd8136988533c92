"""E-licence library (电子证照库): the interface, the seeded sandbox and the HTTP client."""

from integrations.elicence.base import (
    IssuerKey,
    LibraryLicence,
    LibraryStatus,
    LicenceLibrary,
    check_signature,
    signed_bytes,
)
from integrations.elicence.http import HttpLibrary
from integrations.elicence.sandbox import SANDBOX_ISSUERS, SandboxLibrary, sandbox_licences

__all__ = [
    "SANDBOX_ISSUERS",
    "HttpLibrary",
    "IssuerKey",
    "LibraryLicence",
    "LibraryStatus",
    "LicenceLibrary",
    "SandboxLibrary",
    "check_signature",
    "sandbox_licences",
    "signed_bytes",
]
