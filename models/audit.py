"""The audit log, reachable from every area: who did what to whose personal data, and when."""

from __future__ import annotations

from typing import Any

from api.kit.auth import Principal
from models.identity import AuditLog


async def audit(
    principal: Principal | None,
    action: str,
    *,
    subject: int | None,
    request_id: str = "",
    ip: str = "",
    detail: dict[str, Any] | None = None,
    actor_role: str | None = None,
) -> None:
    """One audit row. `principal` is None for the command line (`actor_role` says which tool)."""
    await AuditLog.create(
        actor_id=principal.account_id if principal else None,
        actor_role=actor_role if actor_role is not None else (principal.role if principal else ""),
        action=action,
        subject_id=subject,
        request_id=request_id,
        ip=ip,
        detail=detail or {},
    )
