"""The statistics' queries: aggregates in SQL (COUNT with GROUP BY and filtered COUNTs), the same on SQLite and
PostgreSQL, each within a work scope; and the names the groups are shown with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Count

from api.kit.clock import CITY_TZ
from api.kit.scopes import WorkScope
from models.applications import Application
from models.catalog import Department, ServiceItem, ServicePoint
from models.feedback import Evaluation
from models.scopes import scope_filter

# what a satisfaction report can be grouped by, and the evaluation column of each
GROUP_COLUMNS = {"point": "point_id", "staff": "staff_id", "item": "item_id", "department": "department_id"}
FIGURES = ("submitted", "accepted", "decided", "on_time", "overdue", "returned")


def _period(field: str, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    # the bounds in the city's zone, the zone times are stored in: SQLite compares stored times as text
    bounds: dict[str, Any] = {}
    if start is not None:
        bounds[f"{field}__gte"] = start.astimezone(CITY_TZ)
    if end is not None:
        bounds[f"{field}__lt"] = end.astimezone(CITY_TZ)
    return bounds


async def evaluation_counts(
    scope: WorkScope, group_by: str, start: datetime | None, end: datetime | None
) -> list[tuple[int | None, int, int]]:
    """(group id, level, how many) for each level each group got in the period; the group id is None for
    the evaluations of online cases (point) or of no recorded clerk (staff)."""
    column = GROUP_COLUMNS[group_by]
    rows = (
        await Evaluation.filter(scope_filter(scope), **_period("created_at", start, end))
        .annotate(n=Count("id"))
        .group_by(column, "level")
        .values(column, "level", "n")
    )
    return [(row[column], int(row["level"]), int(row["n"])) for row in rows]


async def application_figures(
    scope: WorkScope,
    start: datetime | None,
    end: datetime | None,
    point_id: int | None,
    department_id: int | None,
) -> dict[str, int]:
    """One row of filtered counts over the cases created in the period, keyed by FIGURES."""
    qs = Application.filter(scope_filter(scope), **_period("created_at", start, end))
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
    ).values(*(f"n_{figure}" for figure in FIGURES))
    row = rows[0] if rows else {}
    return {figure: int(row.get(f"n_{figure}") or 0) for figure in FIGURES}


async def point_names(ids: list[int]) -> dict[int, tuple[str, str]]:
    """(code, name) of each point."""
    return {p.id: (p.code, p.name) for p in await ServicePoint.filter(id__in=ids)}


async def item_names(ids: list[int]) -> dict[int, tuple[str, str]]:
    return {i.id: (i.code, i.name) for i in await ServiceItem.filter(id__in=ids)}


async def department_names(ids: list[int]) -> dict[int, tuple[str, str]]:
    return {d.id: (d.code, d.name) for d in await Department.filter(id__in=ids)}
