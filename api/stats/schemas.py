"""Shapes of the statistics: a period is `from` (inclusive) to `to` (exclusive), ISO 8601 with an offset."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from api.kit.clock import Instant
from api.kit.http import QueryModel

GroupBy = Literal["point", "staff", "item", "department"]


def _aware(value: Any) -> Any:
    if value is None or isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError("应为 ISO 8601 时间，如 2026-05-01T00:00:00+08:00") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("时间须带时区偏移，如 +08:00")
    return parsed


class PeriodQuery(QueryModel):
    start: Instant | None = Field(None, alias="from", description="inclusive, e.g. 2026-05-01T00:00:00+08:00")
    end: Instant | None = Field(None, alias="to", description="exclusive, e.g. 2026-06-01T00:00:00+08:00")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _with_offset(cls, value: Any) -> Any:
        return _aware(value)


class SatisfactionQuery(PeriodQuery):
    group_by: GroupBy = "department"


class ApplicationStatsQuery(PeriodQuery):
    point_code: str | None = Field(None, min_length=1, max_length=32)
    department: str | None = Field(None, min_length=1, max_length=64, description="department code")


class SatisfactionRow(BaseModel):
    key: str = Field(description="point code, staff account id, item code or department code")
    name: str
    total: int
    levels: dict[str, int] = Field(description='ratings per level, "5" … "1"')
    satisfaction_rate: float | None = Field(description="ratings of 3, 4 and 5 over all, 4 decimals")


class SatisfactionReport(BaseModel):
    items: list[SatisfactionRow]


class ApplicationStats(BaseModel):
    submitted: int
    accepted: int
    decided: int
    completion_rate: float | None = Field(description="decided / accepted")
    on_time_rate: float | None = Field(description="decided on time / decided")
    overdue: int = Field(description="past due now, or decided after the due time")
    returned: int = Field(description="returned for correction at least once")
