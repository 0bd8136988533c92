"""The catalogue's errors, one class per code a client can get."""

from __future__ import annotations

from api.kit.errors import InvalidInput, NotFoundError


class ItemNotFound(NotFoundError):
    code = "item_not_found"
    title = "没有这个事项"


class PointNotFound(NotFoundError):
    code = "point_not_found"
    title = "没有这个服务网点"


class UnknownFilterValue(InvalidInput):
    """A filter naming a department, district or community that does not exist."""

    code = "unknown_filter_value"
    title = "筛选条件的取值不存在"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, errors=[{"field": field, "message": message}])
