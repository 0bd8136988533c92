"""Who may see which object: a resident his own, a grid worker his points', staff his department's, admin all.

Services take a WorkScope and pass it to the scoped queries in models/ (`models.scopes.scope_filter` turns it
into the query filter), so authorisation cannot be forgotten in a handler; a case outside the scope is
answered 404, never 403 (its existence is not revealed). The identity area builds the scope of an account
(`ScopeSource`, wired in by the composition root)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sanic import Request

from api.kit.auth import Account


@dataclass(frozen=True)
class WorkScope:
    account_id: int
    everything: bool
    point_ids: frozenset[int]
    department_ids: frozenset[int]

    def covers(self, point_id: int | None, department_id: int | None) -> bool:
        return (
            self.everything
            or (point_id is not None and point_id in self.point_ids)
            or (department_id is not None and department_id in self.department_ids)
        )


class ScopeSource(Protocol):
    async def work_scope(self, account: Account) -> WorkScope: ...


async def work_scope(request: Request) -> WorkScope:
    """The work scope of the signed-in caller (after `@require`)."""
    scopes: ScopeSource = request.app.ctx.services.scopes
    return await scopes.work_scope(request.ctx.account)
