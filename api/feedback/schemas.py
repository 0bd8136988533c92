"""Shapes of evaluations and complaints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.kit.http import PageQuery

EvaluationChannel = Literal["app", "wechat", "pad", "sms"]
PadKey = Literal["very_satisfied", "satisfied", "average", "dissatisfied"]
ComplaintKind = Literal["consultation", "complaint", "suggestion"]
ComplaintStatus = Literal["open", "answered"]

# the hall's 4-key pad (DESIGN.md 好差评): 非常满意 / 满意 / 一般 / 不满意
PAD_LEVELS: dict[str, int] = {"very_satisfied": 5, "satisfied": 4, "average": 3, "dissatisfied": 2}


class Ref(BaseModel):
    """An item, service point or department by code and name (one shape in applications and feedback)."""

    code: str
    name: str


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EvaluationIn(_In):
    """Either `level` (1–5, GB/T 39046) or, from the hall's pad, `pad_key` — exactly one of them."""

    level: int | None = Field(None, ge=1, le=5, strict=True, description="5 非常满意 … 1 非常不满意")
    pad_key: PadKey | None = Field(
        None, description="hall pad: very_satisfied 5, satisfied 4, average 3, dissatisfied 2"
    )
    comment: str | None = Field(None, max_length=500)
    channel: EvaluationChannel | None = Field(None, description="defaults to the channel of the sign-in")


class EvaluationOut(BaseModel):
    id: int
    application_id: int
    level: int
    comment: str
    channel: EvaluationChannel
    created_at: datetime


class ComplaintIn(_In):
    kind: ComplaintKind
    content: str = Field(min_length=5, max_length=2000)
    application_id: int | None = Field(None, ge=1, strict=True, description="one of my applications")
    point_code: str | None = Field(None, min_length=1, max_length=32)


class ComplaintReplyIn(_In):
    reply: str = Field(min_length=2, max_length=2000)


class ComplaintOut(BaseModel):
    id: int
    kind: ComplaintKind
    content: str
    status: ComplaintStatus
    application_id: int | None
    point: Ref | None
    department: Ref | None
    due_at: datetime
    overdue: bool = Field(description="still open after its answer deadline")
    reply: str | None
    replied_at: datetime | None
    created_at: datetime


class ComplaintList(BaseModel):
    items: list[ComplaintOut]
    next_cursor: str | None


class MyComplaintsQuery(PageQuery):
    status: ComplaintStatus | None = None


class WorkComplaintsQuery(PageQuery):
    status: ComplaintStatus | None = None
