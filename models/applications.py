"""Applications (办件) and what hangs on them: the event timeline, uploaded materials, and the per-day
number sequence. (Evaluations and complaints are in models.feedback, the inbox in models.notifications.)"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

STATUSES = (
    "submitted",
    "returned",
    "refused",
    "accepted",
    "in_review",
    "suspended",
    "approved",
    "rejected",
    "ready",
    "delivered",
    "closed",
    "withdrawn",
)


class Application(Model):
    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=32, unique=True)
    applicant: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Account", related_name="applications", on_delete=fields.RESTRICT
    )
    item: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.ServiceItem", related_name="applications", on_delete=fields.RESTRICT
    )
    # copied from the item at submission, so scoping and statistics never need a join
    department: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Department", related_name="applications", on_delete=fields.RESTRICT
    )
    point: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.ServicePoint", related_name="applications", null=True, on_delete=fields.RESTRICT
    )  # null: online
    # the key columns tortoise adds for the relations above, declared for the type checker
    applicant_id: int
    item_id: int
    department_id: int
    point_id: int | None
    channel = fields.CharField(max_length=16)  # app | wechat | handheld | counter
    status = fields.CharField(max_length=16, default="submitted", db_index=True)
    version = fields.IntField(default=1)  # optimistic lock: one clerk's action wins
    form: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    delivery_mode = fields.CharField(max_length=16)  # pickup | mail | grid_worker
    delivery_address_enc = fields.TextField(null=True)
    returned_count = fields.SmallIntField(default=0)
    accepted_at = fields.DatetimeField(null=True)
    accepted_by: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Account", related_name="accepted_applications", null=True, on_delete=fields.SET_NULL
    )
    accepted_by_id: int | None
    due_at = fields.DatetimeField(null=True, db_index=True)
    suspended_at = fields.DatetimeField(null=True)
    paused_workdays = fields.IntField(default=0)
    deadline_status = fields.CharField(
        max_length=16, default="normal", db_index=True
    )  # normal | warning | overdue
    decided_at = fields.DatetimeField(null=True)
    decision = fields.CharField(max_length=16, null=True)  # approved | rejected
    decided_on_time = fields.BooleanField(null=True)
    delivered_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "application"
        # the clerks' queue reads in (due_at, id) order within a grid worker's point or a department, with
        # or without a status: each index ends in that order, so a page is a range of one index and never a
        # sort. On PostgreSQL the two without a status also carry the other columns of a queue row
        # (migration 0006), so a page is read from the index alone.
        indexes = (
            ("point_id", "due_at", "id"),
            ("point_id", "status", "due_at", "id"),
            ("department_id", "due_at", "id"),
            ("department_id", "status", "due_at", "id"),
        )


class ApplicationEvent(Model):
    """One step of a case: its timeline and its audit trail."""

    id = fields.BigIntField(primary_key=True)
    application: fields.ForeignKeyRelation[Application] = fields.ForeignKeyField(
        "models.Application", related_name="events", on_delete=fields.CASCADE
    )
    action = fields.CharField(max_length=32)
    from_status = fields.CharField(max_length=16, null=True)
    to_status = fields.CharField(max_length=16)
    actor: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Account", related_name="application_events", null=True, on_delete=fields.SET_NULL
    )
    application_id: int
    actor_id: int | None
    actor_role = fields.CharField(max_length=16)
    channel = fields.CharField(max_length=16, default="")
    at = fields.DatetimeField(auto_now_add=True)
    note: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "application_event"


class ApplicationMaterial(Model):
    id = fields.IntField(primary_key=True)
    application: fields.ForeignKeyRelation[Application] = fields.ForeignKeyField(
        "models.Application", related_name="materials", on_delete=fields.CASCADE
    )
    material_code = fields.CharField(max_length=32)
    sha256 = fields.CharField(max_length=64)
    size = fields.IntField()
    content_type = fields.CharField(max_length=64)
    uploaded_by: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Account", related_name="uploads", null=True, on_delete=fields.SET_NULL
    )
    application_id: int
    uploaded_by_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "application_material"


class ApplicationLicence(Model):
    """An e-licence attached for a material instead of a file (免提交): a reference, checked when attached."""

    id = fields.IntField(primary_key=True)
    application: fields.ForeignKeyRelation[Application] = fields.ForeignKeyField(
        "models.Application", related_name="licence_materials", on_delete=fields.CASCADE
    )
    application_id: int
    material_code = fields.CharField(max_length=32)
    licence: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Licence", related_name="applications", on_delete=fields.RESTRICT
    )
    licence_id: int
    licence_type = fields.CharField(max_length=32)
    # what the check found when it was attached: the issuer's signature good, the status valid, in date
    verified_at = fields.DatetimeField()

    class Meta:
        table = "application_licence"
        unique_together = (("application", "material_code"),)


class NumberSequence(Model):
    """Last application number handed out per day (XY + YYYYMMDD + 6 digits)."""

    day = fields.CharField(max_length=8, primary_key=True)
    last_value = fields.IntField(default=0)

    class Meta:
        table = "number_sequence"


# ---- queries -------------------------------------------------------------------------------------------

from dataclasses import dataclass  # noqa: E402
from datetime import datetime, tzinfo  # noqa: E402

from tortoise import connections  # noqa: E402
from tortoise.expressions import Q  # noqa: E402
from tortoise.functions import Sum  # noqa: E402
from tortoise.queryset import QuerySet  # noqa: E402
from tortoise.timezone import get_default_timezone, make_aware  # noqa: E402

from api.kit.scopes import WorkScope  # noqa: E402
from models.identity import Account  # noqa: E402
from models.notifications import notify  # noqa: E402
from models.scopes import scope_filter  # noqa: E402
from models.sql import Placeholders, as_db  # noqa: E402


async def next_sequence(day: str) -> int:
    """The next number of the day, atomically on SQLite and PostgreSQL (one upsert, no read-then-write)."""
    conn = connections.get("default")
    placeholder = "$1" if conn.capabilities.dialect == "postgres" else "?"
    rows = await conn.execute_query_dict(
        f'INSERT INTO "number_sequence" ("day", "last_value") VALUES ({placeholder}, 1) '  # noqa: S608 — only the driver's placeholder is formatted in
        'ON CONFLICT ("day") DO UPDATE SET "last_value" = "number_sequence"."last_value" + 1 '
        'RETURNING "last_value"',
        [day],
    )
    return int(rows[0]["last_value"])


def _with_refs(qs: QuerySet[Application]) -> QuerySet[Application]:
    return qs.select_related("item", "point", "department")


async def application_of_applicant(application_id: int, account_id: int) -> Application | None:
    return await _with_refs(Application.filter(id=application_id, applicant_id=account_id)).first()


async def application_in_scope(application_id: int, scope: WorkScope) -> Application | None:
    return await _with_refs(Application.filter(scope_filter(scope), id=application_id)).first()


@dataclass(frozen=True, slots=True)
class Submitted:
    """What a submission wrote: the case, its first event and the applicant's notification (all at `at`)."""

    id: int
    number: str
    at: datetime


def case_written_in_one_statement() -> bool:
    """Whether `submit_case` writes its rows in one statement (PostgreSQL), atomic without a
    transaction around it; on SQLite it is three inserts, to be wrapped in one."""
    return connections.get("default").capabilities.dialect == "postgres"


async def submit_case(
    *,
    number: str,
    at: datetime,
    applicant_id: int,
    item_id: int,
    department_id: int,
    point_id: int | None,
    channel: str,
    form: dict[str, Any],
    delivery_mode: str,
    delivery_address_enc: str | None,
    actor_role: str,
    event_channel: str,
    title: str,
    body: str,
) -> Submitted:
    """A submitted case, its first event ("submit", → submitted), the applicant's inbox entry and its outbox
    row, all dated `at`. On PostgreSQL one statement writes the four rows (each insert feeding the next from RETURNING);
    on SQLite, which cannot insert from a WITH, three inserts, inside the caller's transaction."""
    conn = connections.get("default")
    if conn.capabilities.dialect != "postgres":
        app = await Application.create(
            number=number,
            created_at=at,
            applicant_id=applicant_id,
            item_id=item_id,
            department_id=department_id,
            point_id=point_id,
            channel=channel,
            status="submitted",
            form=form,
            delivery_mode=delivery_mode,
            delivery_address_enc=delivery_address_enc,
        )
        await add_event(
            app.id,
            action="submit",
            from_status=None,
            to_status="submitted",
            actor_id=applicant_id,
            actor_role=actor_role,
            channel=event_channel,
            note={},
            at=at,
        )
        await notify(
            applicant_id,
            "application_status",
            title,
            body,
            application_id=app.id,
            at=at,
            topic="application_submitted",
        )
        return Submitted(id=app.id, number=number, at=at)
    when = as_db(Application, "created_at", at)
    rows = await conn.execute_query_dict(
        _SUBMIT_POSTGRES,
        [
            number, applicant_id, item_id, department_id, point_id, channel,
            as_db(Application, "form", form), delivery_mode, delivery_address_enc, when,
            actor_role, event_channel, title, body,
        ],
    )  # fmt: skip
    return Submitted(id=int(rows[0]["id"]), number=number, at=at)


# $1 number, $2 applicant, $3 item, $4 department, $5 point, $6 channel, $7 form, $8 delivery mode,
# $9 address, $10 the moment, $11 actor role, $12 event channel, $13 title, $14 body. Every column without
# a database default is named (tortoise's defaults are Python's, not the table's).
_SUBMIT_POSTGRES = """
WITH app AS (
    INSERT INTO "application" (
        "number", "applicant_id", "item_id", "department_id", "point_id", "channel", "status", "version",
        "form", "delivery_mode", "delivery_address_enc", "returned_count", "paused_workdays",
        "deadline_status", "created_at", "updated_at"
    ) VALUES (
        $1::varchar, $2::int, $3::int, $4::int, $5::int, $6::varchar, 'submitted', 1,
        $7::jsonb, $8::varchar, $9::text, 0, 0, 'normal', $10::timestamptz, $10::timestamptz
    ) RETURNING "id"
), event AS (
    INSERT INTO "application_event" (
        "application_id", "action", "from_status", "to_status", "actor_id", "actor_role", "channel", "at",
        "note"
    ) SELECT "id", 'submit', NULL, 'submitted', $2::int, $11::varchar, $12::varchar, $10::timestamptz,
        '{}'::jsonb FROM app
), inbox AS (
    INSERT INTO "notification" ("account_id", "kind", "title", "body", "application_id", "created_at")
    SELECT $2::int, 'application_status', $13::varchar, $14::text, "id", $10::timestamptz FROM app
    RETURNING "id"
), outbox AS (
    INSERT INTO "outbox" ("topic", "notification_id", "created_at")
    SELECT 'application_submitted', "id", $10::timestamptz FROM inbox
)
SELECT "id" FROM app
"""


async def add_event(
    application_id: int,
    *,
    action: str,
    from_status: str | None,
    to_status: str,
    actor_id: int,
    actor_role: str,
    channel: str,
    note: dict[str, Any],
    at: datetime | None = None,
) -> None:
    """One step on the case's timeline; `at` defaults to the moment of writing."""
    moment: dict[str, Any] = {"at": at} if at is not None else {}
    await ApplicationEvent.create(
        application_id=application_id,
        action=action,
        from_status=from_status,
        to_status=to_status,
        actor_id=actor_id,
        actor_role=actor_role,
        channel=channel,
        note=note,
        **moment,
    )


async def status_of(application_id: int) -> str | None:
    """The case's status as stored now (None: no such case)."""
    rows = await Application.filter(id=application_id).values("status")
    return str(rows[0]["status"]) if rows else None


async def applications_of_applicant(
    account_id: int, status: str | None, before_id: int | None, limit: int
) -> list[dict[str, Any]]:
    """His cases, newest first, as summary rows (like the clerks' queue)."""
    qs = Application.filter(applicant_id=account_id)
    if status:
        qs = qs.filter(status=status)
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    return list(await qs.order_by("-id").limit(limit).values(*SUMMARY_FIELDS))


async def work_queue(
    scope: WorkScope,
    *,
    point_code: str | None,
    status: str | None,
    due_before: datetime | None,
    overdue: bool | None,
    after: tuple[datetime | None, int] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The clerk's queue, soonest due first, then the cases without a due date; keyset-paginated. Rows
    carry the keys of SUMMARY_FIELDS, times in the city's zone as the ORM gives them.

    Two index-ordered reads instead of one ORDER BY over a computed "no due date" flag (NULLs sort first on
    SQLite and last on PostgreSQL), so a page costs the same with a hundred thousand cases in the table. The
    point filter is a subquery on its code, so a page is one round trip (an unknown code, or one outside
    the scope, finds nothing: the caller tells the two apart). A grid worker's several points are read as
    one index range each, merged (an IN list over the index's first column gives no order, and the
    database would read and sort all his cases). Written as SQL, not as a queryset: building the query
    through the ORM cost more than running it, and the text stays the same from one request to the next,
    so the driver's prepared statement is reused."""
    if not scope.everything and not scope.point_ids and not scope.department_ids:
        return []
    conn = connections.get("default")
    postgres = conn.capabilities.dialect == "postgres"
    filters = _QueueFilters(scope, point_code, status, due_before, overdue)
    rows: list[dict[str, Any]] = []
    in_undated = after is not None and after[0] is None
    if not in_undated:
        rows = await filters.read(conn, Placeholders(postgres), dated=True, after=after, limit=limit)
    if len(rows) < limit and due_before is None:
        rows += await filters.read(
            conn,
            Placeholders(postgres),
            dated=False,
            after=after if in_undated else None,
            limit=limit - len(rows),
        )
    tz = get_default_timezone()
    for row in rows:
        row["created_at"] = _moment(row["created_at"], tz)
        row["due_at"] = _moment(row["due_at"], tz)
    return rows


# a queue row: the case's own columns (_QUEUE_CASE), then its item's and point's code and name
_QUEUE_CASE = 'a."id", a."number", a."status", a."created_at", a."due_at", a."deadline_status", a."item_id", a."point_id"'
_QUEUE_ROW = (
    'a."id", a."number", a."status", a."created_at", a."due_at", a."deadline_status", '
    'i."code" AS "item__code", i."name" AS "item__name", p."code" AS "point__code", p."name" AS "point__name"'
)
_QUEUE_REFS = (
    'JOIN "service_item" i ON i."id" = a."item_id" LEFT JOIN "service_point" p ON p."id" = a."point_id"'
)
# within the cases without a due date the order is by id; "due_at, id" says the same and is the order of
# the queue's indexes, so the database reads it off the index instead of sorting (IS NULL is no equality
# to its planner)
_QUEUE_ORDER = 'ORDER BY a."due_at", a."id"'
_MERGED_POINTS = 16  # a grid worker with more points than this is read with one IN list


class _QueueFilters:
    """The scope and the filters of a queue read, as SQL (the same for both of its reads)."""

    def __init__(
        self,
        scope: WorkScope,
        point_code: str | None,
        status: str | None,
        due_before: datetime | None,
        overdue: bool | None,
    ) -> None:
        self.scope = scope
        self.point_code = point_code
        self.status = status
        self.due_before = due_before
        self.overdue = overdue
        only_points = not scope.everything and not scope.department_ids
        self.lanes = (
            sorted(scope.point_ids)
            if only_points and point_code is None and 1 < len(scope.point_ids) <= _MERGED_POINTS
            else None
        )

    async def read(
        self,
        conn: Any,
        arg: Placeholders,
        *,
        dated: bool,
        after: tuple[datetime | None, int] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        # every piece below is our own text; the values all go through `arg` as the driver's placeholders
        if self.lanes is None:
            where = self._where(arg, None, dated, after)
            sql = f'SELECT {_QUEUE_ROW} FROM "application" a {_QUEUE_REFS} WHERE {where} '  # noqa: S608
        else:
            parts = []
            for point_id in self.lanes:
                where = self._where(arg, point_id, dated, after)
                case = f'SELECT {_QUEUE_CASE} FROM "application" a WHERE {where}'  # noqa: S608
                parts.append(f"SELECT * FROM ({case} {_QUEUE_ORDER} LIMIT {arg(limit)}) lane")  # noqa: S608
            sql = f"SELECT {_QUEUE_ROW} FROM ({' UNION ALL '.join(parts)}) a {_QUEUE_REFS} "  # noqa: S608
        rows: list[dict[str, Any]] = await conn.execute_query_dict(
            f"{sql}{_QUEUE_ORDER} LIMIT {arg(limit)}", arg.values
        )
        return rows

    def _where(
        self, arg: Placeholders, lane: int | None, dated: bool, after: tuple[datetime | None, int] | None
    ) -> str:
        scope, where = self.scope, []
        if lane is not None:
            where.append(f'a."point_id" = {arg(lane)}')
        elif self.point_code is not None:
            code = arg(self.point_code)
            if not scope.everything and not scope.department_ids:  # his points only: the subquery says so
                ids = ", ".join(arg(p) for p in sorted(scope.point_ids))
                point = f'SELECT "id" FROM "service_point" WHERE "code" = {code} AND "id" IN ({ids})'  # noqa: S608
                where.append(f'a."point_id" = ({point})')
            else:
                point = f'SELECT "id" FROM "service_point" WHERE "code" = {code}'  # noqa: S608
                where.append(f'a."point_id" = ({point})')
                if not scope.everything:
                    where.append(self._scope(arg))
        elif not scope.everything:
            where.append(self._scope(arg))
        if self.status:
            where.append(f'a."status" = {arg(self.status)}')
        if self.due_before is not None:
            where.append(f'a."due_at" < {arg(self.due_before)}')
        if self.overdue is True:
            where.append("a.\"deadline_status\" = 'overdue'")
        elif self.overdue is False:
            where.append("a.\"deadline_status\" <> 'overdue'")
        where.append('a."due_at" IS NOT NULL' if dated else 'a."due_at" IS NULL')
        if after is not None:
            due, last_id = after
            if due is None:
                where.append(f'a."id" > {arg(last_id)}')
            else:
                where.append(f'(a."due_at", a."id") > ({arg(due)}, {arg(last_id)})')
        return " AND ".join(where)

    def _scope(self, arg: Placeholders) -> str:
        lanes = []
        if self.scope.point_ids:
            lanes.append(f'a."point_id" IN ({", ".join(arg(p) for p in sorted(self.scope.point_ids))})')
        if self.scope.department_ids:
            lanes.append(
                f'a."department_id" IN ({", ".join(arg(d) for d in sorted(self.scope.department_ids))})'
            )
        return lanes[0] if len(lanes) == 1 else f"({' OR '.join(lanes)})"


def _moment(value: datetime | str | None, tz: tzinfo) -> datetime | None:
    """A time as read by the driver (asyncpg: an aware datetime; SQLite: its text), in the city's zone."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return make_aware(moment, tz) if moment.tzinfo is None else moment.astimezone(tz)


SUMMARY_FIELDS = (
    "id", "number", "status", "created_at", "due_at", "deadline_status",
    "item__code", "item__name", "point__code", "point__name",
)  # fmt: skip


async def events_of(application_id: int) -> list[ApplicationEvent]:
    return await ApplicationEvent.filter(application_id=application_id).order_by("id")


async def add_licence_materials(application_id: int, attached: list[tuple[str, int, str, datetime]]) -> None:
    """(material code, licence id, licence type, verified at) of each e-licence attached."""
    await ApplicationLicence.bulk_create(
        [
            ApplicationLicence(
                application_id=application_id,
                material_code=code,
                licence_id=licence_id,
                licence_type=kind,
                verified_at=at,
            )
            for code, licence_id, kind, at in attached
        ]
    )


async def licence_materials_of(application_id: int) -> list[ApplicationLicence]:
    return await ApplicationLicence.filter(application_id=application_id).order_by("id")


async def materials_of(application_id: int) -> list[ApplicationMaterial]:
    return await ApplicationMaterial.filter(application_id=application_id).order_by("id")


async def material_of(application_id: int, material_id: int) -> ApplicationMaterial | None:
    return await ApplicationMaterial.get_or_none(id=material_id, application_id=application_id)


async def material_with_content(
    application_id: int, material_code: str, sha256: str
) -> ApplicationMaterial | None:
    """The row of these very bytes for this material of this case, if they were uploaded before."""
    return await ApplicationMaterial.get_or_none(
        application_id=application_id, material_code=material_code, sha256=sha256
    )


async def material_count(application_id: int) -> int:
    return await ApplicationMaterial.filter(application_id=application_id).count()


async def uploaded_bytes(account_id: int) -> int:
    """What an applicant has stored over all his cases (the quota counts every row, shared bytes included)."""
    rows = (
        await ApplicationMaterial.filter(uploaded_by_id=account_id)
        .annotate(total=Sum("size"))
        .values("total")
    )
    return int(rows[0]["total"] or 0) if rows else 0


async def lock_uploads_of(account_id: int) -> None:
    """Serialise an applicant's uploads until the caller's transaction ends: a row lock on his account on
    PostgreSQL (SQLite runs one write transaction at a time anyway)."""
    await Account.filter(id=account_id).select_for_update().first()


async def add_material(
    *, application_id: int, material_code: str, sha256: str, size: int, content_type: str, uploaded_by_id: int
) -> ApplicationMaterial:
    return await ApplicationMaterial.create(
        application_id=application_id,
        material_code=material_code,
        sha256=sha256,
        size=size,
        content_type=content_type,
        uploaded_by_id=uploaded_by_id,
    )


async def move(application_id: int, version: int, **changes: object) -> bool:
    """Apply a transition only if nobody changed the case since it was read: one concurrent clerk wins."""
    updated = await Application.filter(id=application_id, version=version).update(
        version=version + 1, **changes
    )
    return updated == 1


async def application_with_refs(application_id: int) -> Application:
    return await _with_refs(Application.filter(id=application_id)).get()


async def application_with_refs_or_none(application_id: int) -> Application | None:
    return await _with_refs(Application.filter(id=application_id)).first()


async def running_cases_near_due(
    running: list[str], horizon: datetime, after_id: int, limit: int
) -> list[dict[str, Any]]:
    """Cases whose clock runs and that are due before `horizon` or already flagged, by id from `after_id`."""
    candidates = Q(status__in=running, due_at__isnull=False) & (
        Q(due_at__lte=horizon) | ~Q(deadline_status="normal")
    )
    return list(
        await Application.filter(candidates, id__gt=after_id)
        .order_by("id")
        .limit(limit)
        .values("id", "number", "version", "due_at", "deadline_status", "department_id", "point_id")
    )


async def set_deadline_status(
    application_id: int, version: int, old: str, new: str, running: list[str]
) -> bool:
    """Change the deadline flag only if the case is as it was read (the version is left alone on purpose:
    the watch must never make a clerk's optimistic lock fail)."""
    changed = await Application.filter(
        id=application_id, version=version, deadline_status=old, status__in=running
    ).update(deadline_status=new)
    return changed == 1
