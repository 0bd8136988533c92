"""Who may see which object: a resident his own, a grid worker his points', staff his department's, admin all.

Services take a WorkScope and pass it to the scoped queries in models/, so authorisation cannot be forgotten
in a handler; a case outside the scope is answered 404, never 403 (its existence is not revealed)."""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.expressions import Q

from api.kit.auth import Principal
from models import identity as identity_db


@dataclass(frozen=True)
class WorkScope:
    account_id: int
    everything: bool
    point_ids: frozenset[int]
    department_ids: frozenset[int]

    def q(self, point_field: str = "point_id", department_field: str = "department_id") -> Q:
        """A filter selecting exactly the objects this scope may see."""
        if self.everything:
            return Q()
        condition = Q(id__in=[])  # nothing, unless a role below opens something
        if self.point_ids:
            condition |= Q(**{f"{point_field}__in": sorted(self.point_ids)})
        if self.department_ids:
            condition |= Q(**{f"{department_field}__in": sorted(self.department_ids)})
        return condition

    def covers(self, point_id: int | None, department_id: int | None) -> bool:
        return (
            self.everything
            or (point_id is not None and point_id in self.point_ids)
            or (department_id is not None and department_id in self.department_ids)
        )


async def work_scope(principal: Principal, account: identity_db.Account) -> WorkScope:
    roles = account.role_set
    points = frozenset(await identity_db.point_ids_of(account.id)) if "grid_worker" in roles else frozenset()
    departments = (
        frozenset({account.department_id}) if "staff" in roles and account.department_id else frozenset()
    )
    return WorkScope(
        account_id=account.id, everything="admin" in roles, point_ids=points, department_ids=departments
    )
