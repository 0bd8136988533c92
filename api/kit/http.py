"""Small HTTP helpers shared by every area: strict query parsing, opaque cursors, JSON answers."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sanic import Request
from sanic.response import HTTPResponse

from api.kit.answer import Answer
from api.kit.errors import InvalidCursor, InvalidInput, InvalidJson, UnsupportedMediaType, field_errors
from api.kit.ids import MAX_ID

M = TypeVar("M", bound=BaseModel)


class QueryModel(BaseModel):
    """Base for query-string models: unknown parameters are refused, a parameter given twice is refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PageQuery(QueryModel):
    limit: int | None = Field(None, json_schema_extra={"minimum": 1})  # the rule is _positive below
    cursor: str | None = None

    @field_validator("limit")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("limit 至少为 1")
        return value


def parse_query(request: Request, model: type[M]) -> M:
    """The query string validated by `model`. A parameter given with no value (`?to=`) is given as "", so an
    enum, a date or a number refuses it (422) instead of taking it as absent, as Sanic's `request.args`
    (which drops blank values) would."""
    raw: dict[str, Any] = {}
    for key, values in request.get_args(keep_blank_values=True).items():
        if len(values) > 1:
            raise InvalidInput(errors=[{"field": key, "message": "参数重复"}])
        raw[key] = values[0]
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(errors=field_errors(exc.errors())) from None


def page_limit(request: Request, asked: int | None) -> int:
    """The page size: the default when not asked, capped at the configured maximum."""
    pagination = request.app.ctx.settings.pagination
    return pagination.default_limit if asked is None else min(asked, pagination.max_limit)


def encode_cursor(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(cursor: str | None, expected_key: str) -> Any:
    """The position inside an opaque cursor; a cursor we did not make is a 422."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError, orjson.JSONDecodeError):
        position = None
    if not isinstance(position, dict) or expected_key not in position:
        raise InvalidCursor()
    return position[expected_key]


def json_bytes(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    return Answer(body, status=status, headers=headers, content_type="application/json")


def json_model(model: BaseModel, status: int = 200) -> HTTPResponse:
    return json_bytes(orjson.dumps(model.model_dump(mode="json")), status)


def parse_body(request: Request, model: type[M]) -> M:
    """A JSON body validated strictly: wrong Content-Type 415, bad JSON or shape 422 naming the fields."""
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType("请求体应为 application/json")
    try:
        raw = orjson.loads(request.body or b"null")
    except orjson.JSONDecodeError:
        raise InvalidJson() from None
    if not isinstance(raw, dict):
        raise InvalidInput(errors=[{"field": "body", "message": "应为 JSON 对象"}])
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(errors=field_errors(exc.errors())) from None


def no_content() -> HTTPResponse:
    return HTTPResponse(status=204)


T = TypeVar("T")


def cursor_id(value: Any, maximum: int = MAX_ID) -> int:
    """A row id read from a cursor: an integer in 1 … `maximum` (the column's, see api/kit/ids.py), or 422
    `invalid_cursor` — a cursor we did not make never reaches a query."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        raise InvalidCursor()
    return value


def decode_id_cursor(cursor: str | None, expected_key: str, maximum: int = MAX_ID) -> int | None:
    """A cursor holding a row id (newest-first lists) of a column holding up to `maximum` (INTEGER keys unless
    told); anything else is a 422."""
    position = decode_cursor(cursor, expected_key)
    return None if position is None else cursor_id(position, maximum)


def decode_code_cursor(cursor: str | None, expected_key: str, max_length: int) -> str | None:
    """A cursor holding a code (lists ordered by code) of a column of `max_length`; anything else is a 422."""
    position = decode_cursor(cursor, expected_key)
    if position is not None and (not isinstance(position, str) or not 0 < len(position) <= max_length):
        raise InvalidCursor()
    return position


def page(rows: list[T], limit: int, position: Callable[[T], dict[str, Any]]) -> tuple[list[T], str | None]:
    """Rows fetched with limit + 1: the page itself, and the cursor after its last row when there is more."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(position(rows[-1]))
