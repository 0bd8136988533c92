"""Cases, evaluations and notifications made straight as rows, in whatever state a test needs (the state
machine and the routes that make them are tested elsewhere)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from api.applications.states import DECIDED, NEVER_ACCEPTED
from models.applications import Application
from models.catalog import ServiceItem, ServicePoint
from models.feedback import Complaint, Evaluation
from models.notifications import Notification

SHANGHAI = ZoneInfo("Asia/Shanghai")
_numbers = itertools.count(1)


def at(text: str) -> datetime:
    """A Shanghai time from 'YYYY-MM-DD HH:MM'."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


async def make_case(
    applicant_id: int,
    *,
    item: str = "360500-MZ-001",
    point: str | None = "P360502001001",
    status: str = "approved",
    accepted_by: int | None = None,
    created_at: datetime | None = None,
    accepted: bool | None = None,
    decided_on_time: bool | None = None,
    deadline_status: str = "normal",
    returned_count: int = 0,
    **columns: Any,
) -> Application:
    """One case. Accepted when its status is past intake (or `accepted=True`); decided when its status is
    a decision, on time unless `decided_on_time=False`. Any other column (due_at=, suspended_at= …) is set as
    given, over what the status implies."""
    item_row = await ServiceItem.get(code=item)
    point_row = await ServicePoint.get(code=point) if point else None
    created = created_at or datetime.now(SHANGHAI)
    if accepted is None:
        accepted = status not in NEVER_ACCEPTED | {"withdrawn"}
    decided = status in DECIDED
    fields: dict[str, Any] = {}
    if accepted:
        fields.update(accepted_at=created + timedelta(hours=1), due_at=created + timedelta(days=7))
    if decided:
        on_time = True if decided_on_time is None else decided_on_time
        fields.update(
            decided_at=created + timedelta(days=3 if on_time else 9),
            decision="rejected" if status == "rejected" else "approved",
            decided_on_time=on_time,
        )
    app = await Application.create(
        number=f"TT{next(_numbers):012d}",
        applicant_id=applicant_id,
        item_id=item_row.id,
        department_id=item_row.department_id,
        point_id=point_row.id if point_row else None,
        channel="app",
        status=status,
        form={},
        delivery_mode="pickup",
        returned_count=returned_count,
        accepted_by_id=accepted_by if accepted else None,
        deadline_status=deadline_status,
        **{**fields, **columns},
    )
    # created_at is set by the database on insert: move it to the time the test wants
    await Application.filter(id=app.id).update(created_at=created)
    return await Application.get(id=app.id)


async def make_evaluation(app: Application, level: int, *, created_at: datetime | None = None) -> Evaluation:
    row = await Evaluation.create(
        application_id=app.id,
        level=level,
        channel="app",
        point_id=app.point_id,
        staff_id=app.accepted_by_id,
        item_id=app.item_id,
        department_id=app.department_id,
    )
    if created_at is not None:
        await move_evaluation(row.id, created_at)
    return row


async def move_evaluation(evaluation_id: int, when: datetime) -> None:
    await Evaluation.filter(id=evaluation_id).update(created_at=when.astimezone(SHANGHAI))


async def make_notification(
    account_id: int, title: str, *, application_id: int | None = None
) -> Notification:
    return await Notification.create(
        account_id=account_id,
        kind="application_status",
        title=title,
        body=f"测试：{title}",
        application_id=application_id,
    )


async def complaint_row(complaint_id: int) -> Complaint:
    return await Complaint.get(id=complaint_id)


async def residents_with_devices(count: int, prefix: str) -> list[int]:
    """`count` resident accounts, each with one app install (registration id `<prefix>-<account id>`),
    bulk-inserted; their ids (SQLite keeps its id sequence across the tests' emptied tables)."""
    from models.identity import Account
    from models.notifications import Device

    now = datetime.now(SHANGHAI)
    last = await Account.all().order_by("-id").first()
    await Account.bulk_create(
        [Account(phone_index=None, roles="resident", real_name_level=2) for _ in range(count)],
        batch_size=2000,
    )
    ids = await Account.filter(id__gt=last.id if last else 0).order_by("id").values_list("id", flat=True)
    await Device.bulk_create(
        [
            Device(
                account_id=i,
                registration_id=f"{prefix}-{i}",
                platform="android",
                app_version="3.2.0",
                created_at=now,
                updated_at=now,
            )
            for i in ids
        ],
        batch_size=2000,
    )
    return list(ids)
