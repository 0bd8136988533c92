"""Expected failures as typed errors, and the one place every error becomes RFC 9457 problem+json."""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sanic import Request, Sanic
from sanic.constants import HTTP_METHODS
from sanic.exceptions import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    SanicException,
)
from sanic.response import HTTPResponse
from sanic_ext.exceptions import ValidationError as SanicExtValidationError

from api.kit.answer import Answer
from api.kit.db import DBConnectionError
from api.kit.pii import KnownClean

log = logging.getLogger("ywt.errors")

PROBLEM_TYPE_BASE = "https://ywt.example.gov.cn/problems/"


class AppError(Exception):
    """An expected failure with its HTTP status, stable code and a message for people (Chinese)."""

    status: int = 400
    code: str = "bad_request"
    title: str = "请求有误"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code:
            self.code = code
        if status:
            self.status = status
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra


class InvalidInput(AppError):
    status = 422
    code = "validation_failed"
    title = "输入不符合要求"


def invalid(field: str, message: str) -> InvalidInput:
    """A 422 `validation_failed` about one field, the message in the detail and in errors (a 422 with a code of
    its own is a typed error of its area)."""
    return InvalidInput(message, errors=[{"field": field, "message": message}])


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"
    title = "未登录或登录已失效"


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    title = "无权进行此操作"


class NotFoundError(AppError):
    status = 404
    code = "not_found"
    title = "资源不存在"


class Conflict(AppError):
    status = 409
    code = "conflict"
    title = "与当前状态冲突"


class TooManyRequests(AppError):
    status = 429
    code = "rate_limited"
    title = "请求过于频繁，请稍后再试"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, int(retry_after)))})


class ServiceUnavailable(AppError):
    status = 503
    code = "service_unavailable"
    title = "服务暂时不可用"


class UpstreamError(AppError):
    status = 502
    code = "upstream_error"
    title = "外部系统返回了无法识别的结果"


class UpstreamTimeout(AppError):
    status = 504
    code = "upstream_timeout"
    title = "外部系统响应超时"


# ---- the kernel's own typed errors (each area has its own in api/<area>/errors.py) -----------------------


class InvalidToken(Unauthorized):
    code = "invalid_token"
    title = "访问令牌无效或已过期"
    reason = ""  # why, for the log line (expired, unknown_kid …); never sent to the client


class RealNameRequired(Forbidden):
    code = "real_name_required"
    title = "请先完成实名认证"


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"
    title = "分页游标无效"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, errors=[{"field": "cursor", "message": "无效的分页游标"}])


class UnsupportedMediaType(AppError):
    status = 415
    code = "unsupported_media_type"
    title = "不支持的请求体类型"


class InvalidJson(InvalidInput):
    code = "invalid_json"
    title = "请求体不是合法的 JSON"

    def __init__(self) -> None:
        super().__init__(errors=[{"field": "body", "message": "不是合法的 JSON"}])


class InvalidIdempotencyKey(InvalidInput):
    code = "invalid_idempotency_key"
    title = "Idempotency-Key 应为 1–128 个可见 ASCII 字符"

    def __init__(self) -> None:
        super().__init__(errors=[{"field": "Idempotency-Key", "message": "格式不正确"}])


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency_key_reused"
    title = "该 Idempotency-Key 已用于另一个请求体"

    def __init__(self) -> None:
        super().__init__(errors=[{"field": "Idempotency-Key", "message": "已用于不同的请求"}])


class IdempotencyRetry(Conflict):
    code = "idempotency_retry"
    title = "同一 Idempotency-Key 的请求刚刚失败，请重试"


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"
    title = "同一 Idempotency-Key 的请求仍在处理中"


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Pydantic errors -> [{field, message}] in our words, nothing about pydantic internals."""
    out = []
    for err in errors:
        field = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query")) or "body"
        out.append({"field": field, "message": _message_for(err)})
    return out


_MESSAGES = {
    "missing": "必填",
    "extra_forbidden": "不允许的字段",
    "string_too_short": "太短",
    "string_too_long": "太长",
    "string_pattern_mismatch": "格式不正确",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "float_parsing": "应为数字",
    "bool_parsing": "应为 true 或 false",
    "greater_than_equal": "数值太小",
    "less_than_equal": "数值太大",
    "greater_than": "数值太小",
    "less_than": "数值太大",
    "literal_error": "不是允许的取值",
    "enum": "不是允许的取值",
    "json_invalid": "不是合法的 JSON",
    "model_type": "应为 JSON 对象",
    "dict_type": "应为 JSON 对象",
    "list_type": "应为列表",
    "string_type": "应为字符串",
}


def _message_for(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "value_error":
        # our own validators raise ValueError with a Chinese message meant for people
        return str(err.get("ctx", {}).get("error", "取值不正确"))
    if kind == "literal_error" and "expected" in err.get("ctx", {}):
        return f"不是允许的取值，可选：{err['ctx']['expected']}"
    return _MESSAGES.get(kind, "取值不正确")


# A request id we make: this process's 64 random bits, then a count (32 hex digits). Unique across processes
# and restarts without a call to the system's random source per request; hex digits only, so known clean
# (the log scrubbing need not look at it).
_REQUEST_ID_PREFIX = secrets.token_hex(8)
_request_numbers = itertools.count(1)


def new_request_id() -> KnownClean:
    return KnownClean(f"{_REQUEST_ID_PREFIX}{next(_request_numbers):016x}")


def request_id_of(request: Request | None) -> str | None:
    """The request's id (api/app.py `YwtRequest` gives every request one); made here for any other."""
    if request is None:
        return None
    request_id = getattr(request.ctx, "request_id", None)
    if request_id is None:
        request_id = request.ctx.request_id = new_request_id()
    return request_id


def problem(
    request: Request | None,
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> HTTPResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id_of(request),
    }
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return Answer(orjson.dumps(body), status=status, headers=headers, content_type="application/problem+json")


_SANIC_CODES: list[tuple[type[SanicException], str, str]] = [
    (NotFound, "not_found", "资源不存在"),
    (MethodNotAllowed, "method_not_allowed", "不支持该请求方法"),
    (PayloadTooLarge, "payload_too_large", "请求体过大"),
    (RequestTimeout, "request_timeout", "请求超时"),
    (BadRequest, "bad_request", "请求有误"),
]


# the reasons Sanic's HTTP/1 parser gives for refusing a request, in our words (other messages may quote input)
_SANIC_REASONS = {
    "Bad Request": "请求行或请求头格式不正确",
    "URL may only contain US-ASCII characters.": "请求地址含有无法识别的字符",
    "Bad content-length": "Content-Length 不正确",
    "Bad chunked encoding": "分块传输编码不正确",
}


def register_error_handlers(app: Sanic) -> None:
    """Route every exception through one function that answers problem+json."""

    @app.exception(Exception)
    async def _handle(request: Request, exc: Exception) -> HTTPResponse:
        return to_problem(request, exc)


def to_problem(request: Request | None, exc: Exception) -> HTTPResponse:
    if isinstance(exc, AppError):
        return problem(
            request, exc.status, exc.code, exc.title, exc.detail, exc.errors, exc.headers, exc.extra
        )
    if isinstance(exc, SanicExtValidationError):
        errors = getattr(getattr(exc, "extra", None), "get", lambda *_: None)("errors")
        return problem(
            request, 422, "validation_failed", "输入不符合要求", "请求内容不符合要求", errors or []
        )
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        log.error("redis unavailable: %s", type(exc).__name__, extra=_context(request, exc))
        return problem(
            request, 503, "redis_unavailable", "服务暂时不可用", "缓存服务(Redis)暂时不可用，请稍后再试"
        )
    if isinstance(exc, DBConnectionError | ConnectionError | OSError):
        log.error("database unavailable: %s", type(exc).__name__, extra=_context(request, exc))
        return problem(request, 503, "database_unavailable", "服务暂时不可用", "数据库暂时不可用，请稍后再试")
    if isinstance(exc, SanicException):
        status = int(getattr(exc, "status_code", 500) or 500)
        if status < 500:
            for kind, code, title in _SANIC_CODES:
                if isinstance(exc, kind):
                    headers = dict(getattr(exc, "headers", {}) or {})
                    if isinstance(exc, MethodNotAllowed) and "Allow" not in headers and request is not None:
                        headers["Allow"] = ", ".join(allowed_methods(request))
                    detail = _SANIC_REASONS.get(str(exc), title) if isinstance(exc, BadRequest) else title
                    return problem(request, status, code, title, detail, headers=headers)
            return problem(request, status, "bad_request", "请求有误", "请求有误")
    # the request id the answer gives the user to quote, the route and the exception's type (the traceback
    # follows in `error`); nothing of it goes into the answer
    log.exception("unhandled error", extra=_context(request, exc))
    return problem(request, 500, "internal_error", "服务器内部错误", "服务器内部错误，请凭请求编号联系运维")


def allowed_methods(request: Request) -> list[str]:
    """The methods the request's path has a route for. Sanic names them in a 405 of a fixed path only (for a
    path with parameters its router raises without them), so they are asked of the router one by one, as
    the request itself was routed: on a 405 only."""
    router = request.app.router
    host = request.headers.get("host")
    found = []
    for method in HTTP_METHODS:
        try:
            router.get(request.path, method, host)
        except SanicException:
            continue
        found.append(str(method))
    return found


def _context(request: Request | None, exc: Exception) -> dict[str, Any]:
    """The fields of an error's log line: request id, method, route (its path template and name, never the
    path itself: ids and codes in it are the caller's) and the exception's type."""
    route = getattr(request, "route", None) if request is not None else None
    kind = type(exc)
    return {
        "fields": {
            "request_id": request_id_of(request),
            "method": getattr(request, "method", None),
            "route": "/" + route.path if route is not None else None,
            "route_name": route.name if route is not None else None,
            "error_type": f"{kind.__module__}.{kind.__qualname__}",
        }
    }
