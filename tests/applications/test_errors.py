"""Every error code of the applications area that can reach a client, one typed error each."""

from __future__ import annotations

import inspect

from api.applications import errors
from api.kit.errors import AppError

# code -> HTTP status: what clients of the applications routes may read in `code` (besides the kernel's own,
# e.g. invalid_cursor and unsupported_media_type, listed in tests/foundation/test_error_codes.py)
CODES = {
    "application_not_found": 404,
    "material_not_found": 404,
    "invalid_transition": 409,
    "already_returned": 409,
    "file_too_large": 413,
    "quota_exceeded": 413,
    "unknown_item": 422,
    "unknown_point": 422,
    "not_handled_online": 422,
    "not_handled_at_point": 422,
    "delivery_mode_not_offered": 422,
    "unknown_filter_value": 422,
    "unknown_material": 422,
    "unsupported_file_type": 422,
    "too_many_files": 422,
}


def _classes() -> list[type[AppError]]:
    return [
        obj
        for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, AppError) and not name.startswith("_")
        and obj.__module__ == errors.__name__
    ]  # fmt: skip


def test_one_class_per_code():
    classes = _classes()
    assert sorted(c.code for c in classes) == sorted(CODES)
    assert {c.code: c.status for c in classes} == CODES


def test_an_error_without_detail_reads_its_title_and_a_field_error_names_its_field():
    exc = errors.ApplicationNotFound()
    assert (exc.status, exc.code, exc.detail) == (404, "application_not_found", "没有这个办件")
    exc = errors.InvalidTransition.of("accept", "closed")
    assert exc.detail == "当前状态(closed)不能进行该操作(accept)" and exc.code == "invalid_transition"
    unknown = errors.UnknownItem()
    assert unknown.errors == [{"field": "item_code", "message": "没有这个事项"}]
    assert unknown.detail == "没有这个事项"
    other = errors.UnknownFilterValue("没有这个服务网点", field="point_code")
    assert other.errors == [{"field": "point_code", "message": "没有这个服务网点"}]
    assert other.status == 422 and other.code == "unknown_filter_value"
