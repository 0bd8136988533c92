"""Every error code of the applications area that can reach a client, one class each.

A class keeps the status and the code; its title is the message clients read when the raise gives no
detail of its own. A 422 about one field names that field in `errors` (plain `invalid(field, message)` of
kit stays for the 422s whose code is validation_failed)."""

from __future__ import annotations

from typing import ClassVar

from api.kit.errors import AppError, Conflict, InvalidInput, NotFoundError


class _FieldError(InvalidInput):
    """A 422 about one field with a code of its own: the message in the detail and in `errors`."""

    field: ClassVar[str] = "body"

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        text = message or self.title
        super().__init__(text, errors=[{"field": field or self.field, "message": text}])


# ---- 404 -----------------------------------------------------------------------------------------------


class ApplicationNotFound(NotFoundError):
    code = "application_not_found"
    title = "没有这个办件"


class MaterialNotFound(NotFoundError):
    code = "material_not_found"
    title = "没有这个材料"


# ---- 409 -----------------------------------------------------------------------------------------------


class InvalidTransition(Conflict):
    """The state machine does not allow the step now (or another clerk's step won the race)."""

    code = "invalid_transition"
    title = "当前状态不能进行该操作"

    @classmethod
    def of(cls, action: str, status: str) -> InvalidTransition:
        return cls(f"当前状态({status})不能进行该操作({action})")

    @classmethod
    def raced(cls) -> InvalidTransition:
        return cls("该办件刚被他人处理，请刷新后再试")


class AlreadyReturned(Conflict):
    code = "already_returned"
    title = "一次性告知：该申请已退回补正过一次，请受理或不予受理"


# ---- 413 / 415 -----------------------------------------------------------------------------------------


class FileTooLarge(AppError):
    status = 413
    code = "file_too_large"
    title = "文件过大"


class QuotaExceeded(AppError):
    status = 413
    code = "quota_exceeded"
    title = "上传空间不足"


# ---- 422 with a code of its own ------------------------------------------------------------------------


class UnknownItem(_FieldError):
    code = "unknown_item"
    title = "没有这个事项"
    field = "item_code"


class UnknownPoint(_FieldError):
    code = "unknown_point"
    title = "没有这个服务网点"
    field = "point_code"


class NotHandledOnline(_FieldError):
    code = "not_handled_online"
    title = "该事项不能网上办理，请选择服务网点"
    field = "point_code"


class NotHandledAtPoint(_FieldError):
    code = "not_handled_at_point"
    title = "该事项不能在这个网点办理"
    field = "point_code"


class DeliveryModeNotOffered(_FieldError):
    code = "delivery_mode_not_offered"
    title = "该事项不支持这种送达方式"
    field = "delivery.mode"


class UnknownFilterValue(_FieldError):
    code = "unknown_filter_value"
    title = "筛选条件的取值不存在"


class UnknownMaterial(_FieldError):
    code = "unknown_material"
    title = "不是该事项办事指南所列的材料"
    field = "material_code"


class UnsupportedFileType(_FieldError):
    code = "unsupported_file_type"
    title = "只接受 JPEG、PNG 或 PDF 文件(按文件内容判断)"
    field = "file"


class TooManyFiles(_FieldError):
    code = "too_many_files"
    title = "该办件的文件数已达上限"
    field = "file"
