"""Shapes of evaluations and complaints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.kit.http import PageQuery
from api.kit.ids import Id

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
    """Either `level` (1–5, GB/T 39046) or `pad_key`, the hall pad's four keys — exactly one of them.

    No `channel`: where a rating came from is the sign-in's channel, set by the server (a client that sends
    one gets 422, as for any unknown field). `pad_key` is a way of giving the level, not a claim to be the
    pad."""

    level: int | None = Field(None, ge=1, le=5, strict=True, description="5 非常满意 … 1 非常不满意")
    pad_key: PadKey | None = Field(
        None, description="hall pad: very_satisfied 5, satisfied 4, average 3, dissatisfied 2"
    )
    comment: str | None = Field(None, max_length=500)


class EvaluationOut(BaseModel):
    id: int
    application_id: int
    level: int
    comment: str
    channel: EvaluationChannel = Field(description="the channel of the sign-in the rating was given through")
    created_at: datetime


class ComplaintIn(_In):
    kind: ComplaintKind
    content: str = Field(min_length=5, max_length=2000)
    application_id: Id | None = Field(None, description="one of my applications")
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
