"""Row ids as the API takes them: range-checked before any query, in a path, a query string or a body.

A row id is 1 … the largest value its column holds: `INTEGER` primary keys (PostgreSQL int4) hold 2^31−1,
`BIGINT` ones 2^63−1. SQLite stores both in 64 bits, PostgreSQL does not: a larger number sent to an int4
column is refused by the driver (a 500), so the bound is the column's, and SQLite and PostgreSQL answer the
same. Outside the range:

- a path parameter does not match its route, so the answer is 404 `not_found` (`<name:id>` for INTEGER
  keys, `<name:id64>` for BIGINT ones; registered once on the app's router by `register_id_parameters`);
- a query or body field (`Id`, `QueryId`) is 422 `validation_failed` naming the field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from sanic import Sanic
from sanic_ext.extensions.openapi.types import Schema

MAX_ID = 2**31 - 1  # INTEGER primary keys (int4 on PostgreSQL)
MAX_ID64 = 2**63 - 1  # BIGINT primary keys

Id = Annotated[int, Field(ge=1, le=MAX_ID, strict=True)]
QueryId = Annotated[int, Field(ge=1, le=MAX_ID)]  # a query string is text: "12" is read as 12


def parse_id(text: str, maximum: int = MAX_ID, digits: int | None = None) -> int:
    """`text` as a row id: ASCII digits only (no sign, no spaces, no `_`, no other scripts' digits) and in
    1 … `maximum` (of `digits` digits at most, worked out once by the caller on a hot path); ValueError
    otherwise."""
    if not (text.isascii() and text.isdigit()) or len(text) > (digits or len(str(maximum))):
        raise ValueError(text)
    value = int(text)
    if not 1 <= value <= maximum:
        raise ValueError(text)
    return value


class PathId(Schema):
    """The cast of an id path parameter, and its OpenAPI schema at once.

    sanic-routing calls a parameter type's cast on the path segment and, when it raises ValueError, tries the
    next route, so an out-of-range id matches nothing (404). sanic-ext documents a path parameter by
    `Schema.make(cast)`, which returns a `Schema` as it is: being both, the parameter is documented as the
    integer with the bounds it is checked against."""

    def __init__(self, label: str, maximum: int) -> None:
        fmt = "int32" if maximum == MAX_ID else "int64"
        super().__init__(type="integer", format=fmt, minimum=1, maximum=maximum)
        self.label = label
        self.maximum = maximum
        self.digits = len(str(maximum))
        # the router's generated matcher calls the cast by this name
        self.__name__ = f"ywt_path_{label}"

    def __call__(self, text: str) -> int:
        return parse_id(text, self.maximum, self.digits)


PATH_TYPES = (PathId("id", MAX_ID), PathId("id64", MAX_ID64))


def register_id_parameters(app: Sanic) -> None:
    """Make `<name:id>` and `<name:id64>` known to the app's router; before any route is added."""
    for cast in PATH_TYPES:
        app.router.register_pattern(cast.label, cast, rf"^[0-9]{{1,{len(str(cast.maximum))}}}$")
