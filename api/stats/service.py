"""满意率 and case figures over a period, within the caller's scope (staff: their department; admin: all).

满意率 = ratings of 3, 4 and 5 over all ratings (DESIGN.md); rates are rounded to 4 decimals, null when
there is nothing to divide by."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from tortoise.timezone import localtime

from api.identity.deps import Identity
from api.identity.service import decrypt_phone
from api.kit.errors import invalid
from api.kit.pii import PiiDecryptError, mask_phone
from api.kit.scopes import WorkScope
from api.stats import queries
from api.stats.schemas import ApplicationStats, ApplicationStatsQuery, SatisfactionReport, SatisfactionRow
from models import catalog as catalog_db
from models.scopes import scope_filter

COLUMNS = {"point": "point_id", "staff": "staff_id", "item": "item_id", "department": "department_id"}
LEVELS = ("5", "4", "3", "2", "1")
SATISFIED = ("5", "4", "3")


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _period(start: datetime | None, end: datetime | None) -> tuple[datetime | None, datetime | None]:
    """The bounds in the database's time zone: SQLite compares stored times as text."""
    if start is not None and end is not None and end <= start:
        raise invalid("to", "to 须晚于 from")
    return (localtime(start) if start else None, localtime(end) if end else None)


async def satisfaction(
    ident: Identity, scope: WorkScope, group_by: str, start: datetime | None, end: datetime | None
) -> SatisfactionReport:
    start, end = _period(start, end)
    column = COLUMNS[group_by]
    counts: dict[int | None, dict[str, int]] = defaultdict(lambda: dict.fromkeys(LEVELS, 0))
    for row in await queries.evaluation_counts(scope_filter(scope), column, start, end):
        level = str(row["level"])
        if level in LEVELS:
            counts[row[column]][level] += int(row["n"])
    names = await _names(ident, group_by, [k for k in counts if k is not None])
    rows = []
    # groups in code (staff: account id) order; online cases, or those of no recorded clerk, last
    for key_id in sorted(counts, key=lambda k: (k is None, _order(names, k, group_by))):
        levels = counts[key_id]
        total = sum(levels.values())
        key, name = names.get(key_id) or _unnamed(group_by, key_id)
        rows.append(
            SatisfactionRow(
                key=key,
                name=name,
                total=total,
                levels=levels,
                satisfaction_rate=_rate(sum(levels[lv] for lv in SATISFIED), total),
            )
        )
    return SatisfactionReport(items=rows)


def _order(names: dict[int | None, tuple[str, str]], key_id: int | None, group_by: str) -> tuple[int, str]:
    if key_id is None:
        return (0, "")
    if group_by == "staff":
        return (key_id, "")
    return (0, names.get(key_id, ("", ""))[0])


def _unnamed(group_by: str, key_id: int | None) -> tuple[str, str]:
    if key_id is None:
        return ("online", "网上办理") if group_by == "point" else ("unknown", "未记录")
    return (str(key_id), f"#{key_id}")


async def _names(ident: Identity, group_by: str, ids: list[int]) -> dict[int | None, tuple[str, str]]:
    if group_by == "point":
        return {i: (p.code, p.name) for i, p in (await queries.points_by_id(ids)).items()}
    if group_by == "item":
        return {i: (it.code, it.name) for i, it in (await queries.items_by_id(ids)).items()}
    if group_by == "department":
        return {i: (d.code, d.name) for i, d in (await queries.departments_by_id(ids)).items()}
    names: dict[int | None, tuple[str, str]] = {}
    for account_id in ids:
        names[account_id] = (str(account_id), f"窗口#{account_id}")
    for account_id, account in (await queries.accounts_by_id(ids)).items():
        try:
            phone = decrypt_phone(ident.cipher, account)
        except PiiDecryptError:
            phone = None
        if phone:
            names[account_id] = (str(account_id), mask_phone(phone) or f"窗口#{account_id}")
    return names


async def application_figures(scope: WorkScope, query: ApplicationStatsQuery) -> ApplicationStats:
    start, end = _period(query.start, query.end)
    point_id = department_id = None
    if query.point_code is not None:
        point = await catalog_db.point_by_code(query.point_code)
        if point is None:
            raise invalid("point_code", "没有这个服务网点", "unknown_point")
        point_id = point.id
    if query.department is not None:
        department = await catalog_db.department_by_code(query.department)
        if department is None:
            raise invalid("department", "没有这个部门", "unknown_department")
        department_id = department.id
    n = await queries.application_figures(scope_filter(scope), start, end, point_id, department_id)
    return ApplicationStats(
        submitted=n["submitted"],
        accepted=n["accepted"],
        decided=n["decided"],
        completion_rate=_rate(n["decided"], n["accepted"]),
        on_time_rate=_rate(n["on_time"], n["decided"]),
        overdue=n["overdue"],
        returned=n["returned"],
    )
