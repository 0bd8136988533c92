"""The audit log, reachable from every area: who did what to whose personal data, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.expressions import Q

from api.kit.auth import Principal
from api.kit.clock import CITY_TZ
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
    actor: int | None = None,
) -> None:
    """One audit row. `principal` is None for the command line (`actor_role` says which tool) and for a
    sign-in, where `actor` names the account that signed in (None when it failed before one was known)."""
    await AuditLog.create(
        actor_id=principal.account_id if principal else actor,
        actor_role=actor_role if actor_role is not None else (principal.role if principal else ""),
        action=action,
        subject_id=subject,
        request_id=request_id,
        ip=ip,
        detail=detail or {},
    )


def _city_time(value: datetime | None) -> datetime | None:
    """A bound in the database's own zone, the city's. SQLite keeps datetimes as text in that zone and
    compares them as text, so a bound given in another offset (UTC, say) would compare wrong. A time without
    an offset is read as city time."""
    if value is None:
        return None
    return value.replace(tzinfo=CITY_TZ) if value.tzinfo is None else value.astimezone(CITY_TZ)


async def audit_entries(
    account_id: int | None, start: datetime | None, end: datetime | None, before_id: int | None, limit: int
) -> list[AuditLog]:
    """Newest first: rows where the account acted or was acted on, at or after `start`, before `end`, with
    an id below `before_id`."""
    query = AuditLog.all()
    if account_id is not None:
        query = query.filter(Q(actor_id=account_id) | Q(subject_id=account_id))
    if (start := _city_time(start)) is not None:
        query = query.filter(at__gte=start)
    if (end := _city_time(end)) is not None:
        query = query.filter(at__lt=end)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    return await query.order_by("-id").limit(limit)
