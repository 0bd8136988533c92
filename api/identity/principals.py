"""The identity area's answers to kit: the live account behind a token, and what it may work on."""

from __future__ import annotations

from api.kit.auth import Account, PrincipalSource, Role
from api.kit.scopes import ScopeSource, WorkScope
from models import identity as db


class AccountDirectory(PrincipalSource, ScopeSource):
    """Implements kit's `PrincipalSource` and `ScopeSource` (wired in by the composition root)."""

    async def active_account(self, account_id: int) -> db.Account | None:
        return await db.active_account(account_id)

    async def work_scope(self, account: Account) -> WorkScope:
        """Admins everything; grid workers their service points; staff their department."""
        row = account if isinstance(account, db.Account) else await db.account_by_id(account.id)
        roles = account.role_set
        points = frozenset(await db.point_ids_of(account.id)) if Role.GRID_WORKER in roles else frozenset()
        department_id = row.department_id if row is not None else None
        departments = frozenset({department_id}) if Role.STAFF in roles and department_id else frozenset()
        return WorkScope(
            account_id=account.id,
            everything=Role.ADMIN in roles,
            point_ids=points,
            department_ids=departments,
        )
