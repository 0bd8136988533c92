"""Shapes of cases: what a resident submits, what clerks send as actions, what both read back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    RootModel,
    ValidationError,
    field_validator,
    model_validator,
)

from api.applications import states
from api.kit.http import PageQuery
from api.kit.ids import Id
from api.kit.unions import Needed, members, tagged_errors

Status = Literal[
    "submitted", "returned", "refused", "accepted", "in_review", "suspended",
    "approved", "rejected", "ready", "delivered", "closed", "withdrawn",
]  # fmt: skip
DeliveryMode = Literal["pickup", "mail", "grid_worker"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DeliveryIn(_In):
    mode: DeliveryMode
    address: str | None = Field(None, min_length=5, max_length=200)

    @model_validator(mode="after")
    def _address_for_mail(self) -> DeliveryIn:
        if self.mode in ("mail", "grid_worker") and not self.address:
            raise ValueError("邮寄或网格员送达须填写地址(address)")
        return self


FormValue = str | int | float | bool | None


class LicenceMaterialIn(_In):
    """An e-licence of the applicant's own, for a material its guide lets one stand in for (免提交)."""

    material_code: str = Field(min_length=1, max_length=32)
    licence_id: Id


class ApplicationIn(_In):
    item_code: str = Field(min_length=1, max_length=64)
    point_code: str | None = Field(
        ..., max_length=32, description="the community point that handles it; null for online"
    )
    form: dict[Annotated[str, Field(min_length=1, max_length=64)], FormValue] = Field(
        default_factory=dict, max_length=50
    )
    delivery: DeliveryIn
    materials: list[LicenceMaterialIn] = Field(
        default_factory=list, max_length=30, description="e-licences attached instead of copies"
    )

    @field_validator("materials")
    @classmethod
    def _once_each(cls, value: list[LicenceMaterialIn]) -> list[LicenceMaterialIn]:
        codes = [m.material_code for m in value]
        if len(set(codes)) != len(codes):
            raise ValueError("每项材料只能附一本电子证照")
        return value

    @field_validator("form")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if isinstance(item, str) and len(item) > 2000:
                raise ValueError(f"表单字段 {key[:20]} 太长")
        return value


class Ref(BaseModel):
    """An item, service point or department by code and name (one shape in applications and feedback)."""

    code: str
    name: str


class EventOut(BaseModel):
    action: str
    from_status: Status | None
    to_status: Status
    actor_role: str
    channel: str
    at: datetime
    note: dict[str, Any]


class MaterialOut(BaseModel):
    id: int
    material_code: str
    sha256: str
    size: int
    content_type: str
    created_at: datetime | None = None


class LicenceMaterialOut(BaseModel):
    material_code: str
    licence_id: int
    licence_type: str
    licence_type_name: str
    verified_at: datetime = Field(description="when its signature and status were checked (at attaching)")


class MissingMaterial(_In):
    material_code: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=2, max_length=200)


class DeliveryOut(BaseModel):
    mode: DeliveryMode
    address: str | None = Field(description="masked")


class ApplicationOut(BaseModel):
    id: int
    number: str
    status: Status
    item: Ref
    point: Ref | None
    department: Ref
    channel: str
    delivery: DeliveryOut
    form: dict[str, Any]
    created_at: datetime
    accepted_at: datetime | None
    due_at: datetime | None
    deadline_status: Literal["normal", "warning", "overdue"]
    decided_at: datetime | None
    decision: Literal["approved", "rejected"] | None
    missing_materials: list[MissingMaterial] = Field(description="the one-time notice of the last return")
    materials: list[MaterialOut]
    licence_materials: list[LicenceMaterialOut] = Field(
        default_factory=list, description="e-licences attached instead of copies, each checked when attached"
    )
    events: list[EventOut]
    evaluated: bool = False


class ApplicationSummary(BaseModel):
    id: int
    number: str
    status: Status
    item: Ref
    point: Ref | None
    created_at: datetime
    due_at: datetime | None
    deadline_status: Literal["normal", "warning", "overdue"]


class ApplicationList(BaseModel):
    items: list[ApplicationSummary]
    next_cursor: str | None


class MyApplicationsQuery(PageQuery):
    status: Status | None = None


class WorkApplicationsQuery(PageQuery):
    point_code: str | None = Field(None, max_length=32)
    status: Status | None = None
    due_before: datetime | None = Field(
        None,
        description="ISO 8601, a year 2000 … 2199; without an offset it is Beijing time",
        json_schema_extra={"pattern": "^2[01][0-9]{2}-"},  # the year rule of _plausible
    )
    overdue: bool | None = None

    @field_validator("due_before")
    @classmethod
    def _plausible(cls, value: datetime | None) -> datetime | None:
        # 0001-01-01 or 9999-12-31 with an offset overflows when moved to another zone (500 instead of 422)
        if value is not None and not 2000 <= value.year <= 2199:
            raise ValueError("due_before 应在 2000 至 2199 年之间")
        return value


# ---- clerk actions: one body per action, told apart by `action` ---------------------------------------


class _Action(_In):
    note: str | None = Field(None, max_length=500)


class AcceptIn(_Action):
    """受理: the promised time starts; the due date is worked out from the working-day calendar."""

    action: Literal["accept"]


class ReturnIn(_Action):
    """退回补正: one notice listing every missing or faulty material of the item's guide, each once."""

    action: Literal["return"]
    missing_materials: Annotated[
        list[MissingMaterial],
        Field(min_length=1, max_length=30),
        Needed("退回补正须列出全部缺少或有误的材料"),
    ]

    @field_validator("missing_materials")
    @classmethod
    def _each_once(cls, value: list[MissingMaterial]) -> list[MissingMaterial]:
        codes = [m.material_code for m in value]
        if len(set(codes)) != len(codes):
            # one notice, each material once with everything wrong about it in its reason
            raise ValueError("同一材料只能列一次，请把问题合并写在一条理由里")
        return value


class RefuseIn(_Action):
    """不予受理."""

    action: Literal["refuse"]
    reason: Annotated[str, Field(min_length=2, max_length=500), Needed("须写明理由")]
    legal_basis: str | None = Field(None, min_length=2, max_length=300)


class StartReviewIn(_Action):
    action: Literal["start_review"]


class SuspendIn(_Action):
    """特别程序: the clock pauses until `resume`."""

    action: Literal["suspend"]
    reason: Annotated[str, Field(min_length=2, max_length=500), Needed("特别程序须写明理由和预计工作日数")]
    expected_days: Annotated[int, Field(ge=1, le=120), Needed("特别程序须写明理由和预计工作日数")]


class ResumeIn(_Action):
    """The due date moves by the working days the case was suspended."""

    action: Literal["resume"]


class ApproveIn(_Action):
    action: Literal["approve"]


class RejectIn(_Action):
    """不予批准: with the reason and the legal basis."""

    action: Literal["reject"]
    reason: Annotated[str, Field(min_length=2, max_length=500), Needed("须写明理由")]
    legal_basis: Annotated[str, Field(min_length=2, max_length=300), Needed("不予批准须写明法律依据")]


class MarkReadyIn(_Action):
    action: Literal["mark_ready"]


class DeliverIn(_Action):
    """送达 in the case's delivery mode: mail needs `tracking_no`, a grid worker at the door `recipient` and
    `photo`; at pickup `recipient` may be written down."""

    action: Literal["deliver"]
    tracking_no: str | None = Field(None, min_length=6, max_length=40, pattern=r"^[A-Za-z0-9\-]+$")
    recipient: str | None = Field(None, min_length=2, max_length=32)
    photo: str | None = Field(
        None, max_length=3_000_000, description="base64 JPEG or PNG, proof of door-to-door delivery"
    )


class CloseIn(_Action):
    action: Literal["close"]


ClerkAction = Annotated[
    AcceptIn | ReturnIn | RefuseIn | StartReviewIn | SuspendIn | ResumeIn | ApproveIn | RejectIn
    | MarkReadyIn | DeliverIn | CloseIn,
    Field(discriminator="action"),
]  # fmt: skip


class ActionIn(RootModel[ClerkAction]):
    """A clerk action on a case, told apart by `action`; each takes exactly the fields listed for it."""

    @model_validator(mode="wrap")
    @classmethod
    def _errors_by_field(cls, value: Any, handler: ModelWrapValidatorHandler[ActionIn]) -> ActionIn:
        # a tagged union puts the tag in front of every error's location ("reject.reason") and has errors of
        # its own for the tag; clients read the body's fields by their names, as in every other body
        try:
            return handler(value)
        except ValidationError as exc:
            errors = tagged_errors(exc, value, "action", _ACTIONS)
            raise ValidationError.from_exception_data(exc.title, errors) from None


# each member by the value of its `action` Literal, in the order of the union
_ACTIONS = members(ClerkAction, "action")
if tuple(_ACTIONS) != states.WORK_ACTIONS:
    raise RuntimeError(f"the clerk action bodies {tuple(_ACTIONS)} are not states.WORK_ACTIONS")


class WithdrawIn(_In):
    reason: str | None = Field(None, max_length=200)
