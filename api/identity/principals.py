"""The identity area's answers to kit: the live account behind a token, and what it may work on."""

from __future__ import annotations

from api.kit.auth import Account, Role
from api.kit.scopes import WorkScope
from models import identity as db


class AccountDirectory:
    """Implements kit's `PrincipalSource` and `ScopeSource` (wired in by the composition root)."""

    async def active_account(self, account_id: int) -> Account | None:
        return await db.active_account(account_id)

    async def work_scope(self, account: Account) -> WorkScope:
        roles = account.role_set
        points = frozenset(await db.point_ids_of(account.id)) if Role.GRID_WORKER in roles else frozenset()
        department_id = getattr(account, "department_id", None)
        departments = frozenset({department_id}) if Role.STAFF in roles and department_id else frozenset()
        return WorkScope(
            account_id=account.id,
            everything=Role.ADMIN in roles,
            point_ids=points,
            department_ids=departments,
        )
