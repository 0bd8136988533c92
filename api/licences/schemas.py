"""Shapes of e-licences, presentations and verifications."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.kit.http import PageQuery
from api.licences.types import FIELDS

LicenceStatus = Literal["valid", "expired", "revoked", "suspended"]
FieldName = Literal[FIELDS]  # type: ignore[valid-type]
Reason = Literal[
    "forged",
    "expired_token",
    "replayed",
    "revoked",
    "suspended",
    "expired_licence",
    "unknown_issuer",
    "status_unavailable",
]


class LicenceOut(BaseModel):
    id: int
    type: str
    type_name: str
    issuer: str = Field(description="the issuing authority's name")
    number: str = Field(description="masked")
    holder: str = Field(description="masked")
    valid_from: date
    valid_until: date | None = Field(description="null: long-term (长期)")
    status: LicenceStatus
    issuer_trusted: bool = Field(description="false: the issuer is not on our trust list; it cannot be shown")
    fields: dict[str, str] = Field(description="the type's own fields, personal ones masked")
    disclosable: list[str] = Field(description="what a presentation of it may disclose")


class LicenceList(BaseModel):
    items: list[LicenceOut]
    stale: bool = Field(False, description="true: the library is down; this is our last good read")
    read_at: datetime = Field(description="when the library was last read for this answer")


class LicenceDetail(LicenceOut):
    stale: bool = False
    read_at: datetime


class PresentationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fields: list[FieldName] | None = Field(
        None, max_length=len(FIELDS), description="what the verifier may learn; default holder and validity"
    )
    single_use: bool = Field(
        False, strict=True, description="the code verifies once (e.g. at a bank counter)"
    )


class PresentationOut(BaseModel):
    token: str = Field(description="what the QR code holds (base45, alphanumeric mode)")
    qr_svg: str = Field(description="the QR code as SVG")
    expires_at: datetime
    fields: list[str]
    single_use: bool


class VerificationIn(BaseModel):
    # not stripped: a base45 token may end in a space
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=400)


class VerifiedLicence(BaseModel):
    type: str
    type_name: str
    issuer: str
    number: str | None = Field(
        description="null unless the holder chose to show it; masked for some verifiers"
    )
    holder: str | None
    valid_from: date | None
    valid_until: date | None
    status: LicenceStatus
    fields: dict[str, str] = Field(description="the chosen fields the licence has")


class VerificationOut(BaseModel):
    valid: bool
    reason: Reason | None = None
    checked_at: datetime
    licence: VerifiedLicence | None = None


class VerificationRecord(BaseModel):
    id: int
    at: datetime
    verifier: str = Field(description="who checked: a system's name, or a role and a masked name")
    verifier_role: str
    valid: bool
    reason: str | None
    fields: list[str]


class VerificationList(BaseModel):
    items: list[VerificationRecord]
    next_cursor: str | None


class VerificationsQuery(PageQuery):
    pass
