"""Aggregates in SQL (COUNT with GROUP BY and filtered COUNTs), the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Count

from models.applications import Application, Evaluation
from models.catalog import Department, ServiceItem, ServicePoint
from models.identity import Account


def _period(field: str, start: datetime | None, end: datetime | None) -> Q:
    condition = Q()
    if start is not None:
        condition &= Q(**{f"{field}__gte": start})
    if end is not None:
        condition &= Q(**{f"{field}__lt": end})
    return condition


async def evaluation_counts(
    scope: Q, column: str, start: datetime | None, end: datetime | None
) -> list[dict[str, Any]]:
    """Rows of {column, "level", "n"}: how many ratings of each level each group got in the period."""
    return (
        await Evaluation.filter(scope, _period("created_at", start, end))
        .annotate(n=Count("id"))
        .group_by(column, "level")
        .values(column, "level", "n")
    )


async def application_figures(
    scope: Q,
    start: datetime | None,
    end: datetime | None,
    point_id: int | None,
    department_id: int | None,
) -> dict[str, int]:
    """One row of filtered counts over the cases created in the period."""
    qs = Application.filter(scope, _period("created_at", start, end))
    if point_id is not None:
        qs = qs.filter(point_id=point_id)
    if department_id is not None:
        qs = qs.filter(department_id=department_id)
    rows = await qs.annotate(
        n_submitted=Count("id"),
        n_accepted=Count("id", _filter=Q(accepted_at__isnull=False)),
        n_decided=Count("id", _filter=Q(decided_at__isnull=False)),
        n_on_time=Count("id", _filter=Q(decided_at__isnull=False, decided_on_time=True)),
        n_overdue=Count("id", _filter=Q(deadline_status="overdue") | Q(decided_on_time=False)),
        n_returned=Count("id", _filter=Q(returned_count__gt=0)),
    ).values("n_submitted", "n_accepted", "n_decided", "n_on_time", "n_overdue", "n_returned")
    row = rows[0] if rows else {}
    return {
        key.removeprefix("n_"): int(row.get(key) or 0)
        for key in ("n_submitted", "n_accepted", "n_decided", "n_on_time", "n_overdue", "n_returned")
    }


async def points_by_id(ids: list[int]) -> dict[int, ServicePoint]:
    return {p.id: p for p in await ServicePoint.filter(id__in=ids)}


async def items_by_id(ids: list[int]) -> dict[int, ServiceItem]:
    return {i.id: i for i in await ServiceItem.filter(id__in=ids)}


async def departments_by_id(ids: list[int]) -> dict[int, Department]:
    return {d.id: d for d in await Department.filter(id__in=ids)}


async def accounts_by_id(ids: list[int]) -> dict[int, Account]:
    return {a.id: a for a in await Account.filter(id__in=ids)}
