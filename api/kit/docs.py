"""One decorator that describes a route in the OpenAPI document from our pydantic models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, RootModel
from sanic_ext import openapi
from sanic_ext.extensions.openapi.builders import SpecificationBuilder
from sanic_ext.extensions.openapi.definitions import Reference
from sanic_ext.extensions.openapi.types import Schema

T = TypeVar("T")

ERROR_TEXT = {
    400: "请求有误",
    401: "未登录或令牌无效",
    403: "无权进行此操作",
    404: "资源不存在",
    409: "与当前状态冲突",
    413: "请求体过大",
    422: "输入不符合要求",
    429: "请求过于频繁",
    503: "依赖的服务暂时不可用",
}


IDEMPOTENCY_TEXT = (
    "1–128 个可见 ASCII 字符，按调用者区分；同一键与同一请求体重放首次应答(Idempotent-Replayed: true)，"
    "不同请求体 422 idempotency_key_reused；保留 applications.idempotency_ttl 秒(默认 24 小时)"
)


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, with our stable `code` and the request id."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    request_id: str | None
    errors: list[FieldError] | None = None


def _param_schema(spec: dict[str, Any]) -> Schema:
    options = [s for s in spec.get("anyOf", [spec]) if s.get("type") != "null"]
    chosen = dict(options[0]) if options else {"type": "string"}
    chosen.pop("title", None)
    if "const" in chosen:
        chosen["enum"] = [chosen.pop("const")]
    return Schema(**chosen)


def _oas30(schema: Any) -> Any:
    """pydantic's JSON Schema in OpenAPI 3.0 words: `const` as a one-value enum, `X | None` as nullable."""
    if isinstance(schema, list):
        return [_oas30(part) for part in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _oas30(value) for key, value in schema.items()}
    if "const" in out and not isinstance(out["const"], dict):  # not a property named const
        out["enum"] = [out.pop("const")]
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        out.pop("anyOf")
        out.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
        out["nullable"] = True
    return out


def _root_component(model: type[RootModel[Any]]) -> Reference:
    """A RootModel (a discriminated union, say) as a component built from pydantic's JSON schema, its member
    models beside it: sanic-ext describes a model by its fields, and a RootModel has only `root`."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    spec = SpecificationBuilder()
    for name, part in schema.pop("$defs", {}).items():
        spec.add_component("schemas", name, _oas30(part))
    spec.add_component("schemas", model.__name__, _oas30(schema))
    return Reference(f"#/components/schemas/{model.__name__}")


def _content(model: type[BaseModel]) -> Any:
    """A model as sanic-ext documents it; a RootModel becomes a component of its own (see above)."""
    return _root_component(model) if issubclass(model, RootModel) else model


def documented(
    summary: str,
    *,
    tag: str,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    ok: type[BaseModel] | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    content_type: str = "application/json",
    idempotent: bool = False,
) -> Callable[[T], T]:
    """Describe a route. Its security comes from the `@require` / `@public` below it (put `@documented` above):
    a route that requires a sign-in is documented as bearer-secured with 401, and with 403 when it names
    roles or a real-name level; the roles are written into the operation's description."""

    def decorate(handler: T) -> T:
        wrapped: Any = handler
        roles: tuple[str, ...] = getattr(handler, "__ywt_roles__", ())
        level: int = getattr(handler, "__ywt_real_name_level__", 0)
        secured = bool(roles)
        implied = set()
        if secured:
            implied.add(401)
            if roles != ("*",) or level:
                implied.add(403)
            who = "任一已登录账号" if roles == ("*",) else "、".join(roles)
            note = f"需要登录：{who}" + (f"；实名等级 ≥ {level}" if level else "")
            wrapped = openapi.description(note)(wrapped)
        wrapped = openapi.summary(summary)(wrapped)
        wrapped = openapi.tag(tag)(wrapped)
        if query is not None:
            schema = query.model_json_schema()
            for name, prop in schema.get("properties", {}).items():
                wrapped = openapi.parameter(
                    name,
                    _param_schema(prop),
                    "query",
                    description=prop.get("description", ""),
                    required=name in schema.get("required", []),
                )(wrapped)
        if idempotent:
            wrapped = openapi.parameter("Idempotency-Key", str, "header", description=IDEMPOTENCY_TEXT)(
                wrapped
            )
        if body is not None:
            wrapped = openapi.body({content_type: _content(body)}, required=True)(wrapped)
        if ok is not None:
            wrapped = openapi.response(status, {"application/json": _content(ok)}, "成功")(wrapped)
        else:
            wrapped = openapi.response(status, None, "成功")(wrapped)
        for code in sorted({*errors, *implied, 422 if (query or body) else 0} - {0}):
            wrapped = openapi.response(code, {"application/problem+json": Problem}, ERROR_TEXT[code])(wrapped)
        if secured:
            wrapped = openapi.secured("bearer")(wrapped)
        return wrapped

    return decorate
