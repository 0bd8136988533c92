"""A work scope as a query filter (the scope itself is kit's `WorkScope`)."""

from __future__ import annotations

from typing import Any

from tortoise.expressions import Q

from api.kit.scopes import WorkScope


def scope_filter(
    scope: WorkScope, point_field: str = "point_id", department_field: str = "department_id"
) -> Q:
    """A filter selecting exactly the objects this scope may see."""
    if scope.everything:
        return Q()
    condition = Q(id__in=[])  # nothing, unless a role below opens something
    # filters by field name go through a dict: Q's keyword typing cannot describe computed names
    if scope.point_ids:
        by_point: dict[str, Any] = {f"{point_field}__in": sorted(scope.point_ids)}
        condition |= Q(**by_point)
    if scope.department_ids:
        by_department: dict[str, Any] = {f"{department_field}__in": sorted(scope.department_ids)}
        condition |= Q(**by_department)
    return condition
