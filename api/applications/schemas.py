"""Shapes of cases: what a resident submits, what clerks send as actions, what both read back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.kit.http import PageQuery

Status = Literal[
    "submitted", "returned", "refused", "accepted", "in_review", "suspended",
    "approved", "rejected", "ready", "delivered", "closed", "withdrawn",
]  # fmt: skip
DeliveryMode = Literal["pickup", "mail", "grid_worker"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DeliveryIn(_In):
    mode: DeliveryMode
    address: str | None = Field(None, min_length=5, max_length=200)

    @model_validator(mode="after")
    def _address_for_mail(self) -> DeliveryIn:
        if self.mode in ("mail", "grid_worker") and not self.address:
            raise ValueError("邮寄或网格员送达须填写地址(address)")
        return self


FormValue = str | int | float | bool | None


class ApplicationIn(_In):
    item_code: str = Field(min_length=1, max_length=64)
    point_code: str | None = Field(
        ..., max_length=32, description="the community point that handles it; null for online"
    )
    form: dict[Annotated[str, Field(min_length=1, max_length=64)], FormValue] = Field(
        default_factory=dict, max_length=50
    )
    delivery: DeliveryIn

    @field_validator("form")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if isinstance(item, str) and len(item) > 2000:
                raise ValueError(f"表单字段 {key[:20]} 太长")
        return value


class Ref(BaseModel):
    code: str
    name: str


class EventOut(BaseModel):
    action: str
    from_status: Status | None
    to_status: Status
    actor_role: str
    channel: str
    at: datetime
    note: dict[str, Any]


class MaterialOut(BaseModel):
    id: int
    material_code: str
    sha256: str
    size: int
    content_type: str
    created_at: datetime | None = None


class MissingMaterial(_In):
    material_code: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=2, max_length=200)


class DeliveryOut(BaseModel):
    mode: DeliveryMode
    address: str | None = Field(description="masked")


class ApplicationOut(BaseModel):
    id: int
    number: str
    status: Status
    item: Ref
    point: Ref | None
    department: Ref
    channel: str
    delivery: DeliveryOut
    form: dict[str, Any]
    created_at: datetime
    accepted_at: datetime | None
    due_at: datetime | None
    deadline_status: Literal["normal", "warning", "overdue"]
    decided_at: datetime | None
    decision: Literal["approved", "rejected"] | None
    missing_materials: list[MissingMaterial] = Field(description="the one-time notice of the last return")
    materials: list[MaterialOut]
    events: list[EventOut]
    evaluated: bool = False


class ApplicationSummary(BaseModel):
    id: int
    number: str
    status: Status
    item: Ref
    point: Ref | None
    created_at: datetime
    due_at: datetime | None
    deadline_status: Literal["normal", "warning", "overdue"]


class ApplicationList(BaseModel):
    items: list[ApplicationSummary]
    next_cursor: str | None


class MyApplicationsQuery(PageQuery):
    status: Status | None = None


class WorkApplicationsQuery(PageQuery):
    point_code: str | None = Field(None, max_length=32)
    status: Status | None = None
    due_before: datetime | None = Field(None, description="ISO 8601; without an offset it is Beijing time")
    overdue: bool | None = None

    @field_validator("due_before")
    @classmethod
    def _plausible(cls, value: datetime | None) -> datetime | None:
        # 0001-01-01 or 9999-12-31 with an offset overflows when moved to another zone (500 instead of 422)
        if value is not None and not 2000 <= value.year <= 2199:
            raise ValueError("due_before 应在 2000 至 2199 年之间")
        return value


class ActionIn(_In):
    """One body for every clerk action; the fields each action needs are checked by the service."""

    action: Literal[
        "accept", "return", "refuse", "start_review", "suspend", "resume",
        "approve", "reject", "mark_ready", "deliver", "close",
    ]  # fmt: skip
    note: str | None = Field(None, max_length=500)
    missing_materials: list[MissingMaterial] | None = Field(None, min_length=1, max_length=30)
    reason: str | None = Field(None, min_length=2, max_length=500)
    legal_basis: str | None = Field(None, min_length=2, max_length=300)
    expected_days: int | None = Field(None, ge=1, le=120)
    tracking_no: str | None = Field(None, min_length=6, max_length=40, pattern=r"^[A-Za-z0-9\-]+$")
    recipient: str | None = Field(None, min_length=2, max_length=32)
    photo: str | None = Field(
        None, max_length=3_000_000, description="base64 JPEG or PNG, proof of door-to-door delivery"
    )


class WithdrawIn(_In):
    reason: str | None = Field(None, max_length=200)
