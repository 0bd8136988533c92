"""满意率 and case figures over a period, within the caller's scope (staff: their department; admin: all).

满意率 = ratings of 3, 4 and 5 over all ratings (DESIGN.md); rates are rounded to 4 decimals, null when
there is nothing to divide by."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from api.identity import service as identity
from api.kit.errors import invalid
from api.kit.pii import PiiCipher
from api.kit.scopes import WorkScope
from api.stats.errors import UnknownDepartment, UnknownPoint
from api.stats.schemas import ApplicationStats, ApplicationStatsQuery, SatisfactionReport, SatisfactionRow
from models import catalog as catalog_db
from models import stats as db

LEVELS = ("5", "4", "3", "2", "1")
SATISFIED = ("5", "4", "3")


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _check_period(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise invalid("to", "to 须晚于 from")


async def satisfaction(
    cipher: PiiCipher, scope: WorkScope, group_by: str, start: datetime | None, end: datetime | None
) -> SatisfactionReport:
    _check_period(start, end)
    counts: dict[int | None, dict[str, int]] = defaultdict(lambda: dict.fromkeys(LEVELS, 0))
    for key_id, level_number, n in await db.evaluation_counts(scope, group_by, start, end):
        level = str(level_number)
        if level in LEVELS:
            counts[key_id][level] += n
    names = await _names(cipher, group_by, [k for k in counts if k is not None])
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


async def _names(cipher: PiiCipher, group_by: str, ids: list[int]) -> dict[int | None, tuple[str, str]]:
    """(key, name) of each group: code and name of a point, item or department; a clerk by account id and
    masked phone."""
    found: dict[int, tuple[str, str]]
    if group_by == "point":
        found = await db.point_names(ids)
    elif group_by == "item":
        found = await db.item_names(ids)
    elif group_by == "department":
        found = await db.department_names(ids)
    else:
        found = await _staff_names(cipher, ids)
    return dict(found.items())


async def _staff_names(cipher: PiiCipher, ids: list[int]) -> dict[int, tuple[str, str]]:
    """A clerk by account id and masked phone (the identity area decrypts); `窗口#id` when it has none."""
    masked = await identity.masked_phones(cipher, ids)
    return {
        account_id: (str(account_id), masked.get(account_id) or f"窗口#{account_id}") for account_id in ids
    }


async def application_figures(scope: WorkScope, query: ApplicationStatsQuery) -> ApplicationStats:
    _check_period(query.start, query.end)
    point_id = department_id = None
    if query.point_code is not None:
        point = await catalog_db.point_by_code(query.point_code)
        if point is None:
            raise UnknownPoint()
        point_id = point.id
    if query.department is not None:
        department = await catalog_db.department_by_code(query.department)
        if department is None:
            raise UnknownDepartment()
        department_id = department.id
    n = await db.application_figures(scope, query.start, query.end, point_id, department_id)
    return ApplicationStats(
        submitted=n["submitted"],
        accepted=n["accepted"],
        decided=n["decided"],
        completion_rate=_rate(n["decided"], n["accepted"]),
        on_time_rate=_rate(n["on_time"], n["decided"]),
        overdue=n["overdue"],
        returned=n["returned"],
    )
