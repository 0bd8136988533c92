"""The statistics' errors, one class per code a client can get."""

from __future__ import annotations

from api.kit.errors import InvalidInput


class UnknownPoint(InvalidInput):
    code = "unknown_point"
    title = "没有这个服务网点"

    def __init__(self) -> None:
        super().__init__(errors=[{"field": "point_code", "message": self.title}])


class UnknownDepartment(InvalidInput):
    code = "unknown_department"
    title = "没有这个部门"

    def __init__(self) -> None:
        super().__init__(errors=[{"field": "department", "message": self.title}])
