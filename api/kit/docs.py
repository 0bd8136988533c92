"""One decorator that describes a route in the OpenAPI document from our pydantic models, and the local
Swagger UI.

Every body, answer and problem model is a component under `components/schemas`, named after its class and
built from pydantic's own JSON schema (so the document says what the validator holds: enums, `required`,
`additionalProperties: false` for `extra="forbid"`, bounds, patterns), written in OpenAPI 3.0 words, which
is what sanic-ext declares (`openapi: 3.0.3`). Two models of one name and different shapes fail at import."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field
from pydantic.json_schema import JsonSchemaMode
from sanic import Sanic
from sanic_ext import openapi
from sanic_ext.extensions.openapi import blueprint as oas_blueprint
from sanic_ext.extensions.openapi.builders import SpecificationBuilder
from sanic_ext.extensions.openapi.definitions import Reference
from sanic_ext.extensions.openapi.types import Schema
from swagger_ui_bundle import swagger_ui_path

T = TypeVar("T")

PAGE_PARAMS = ("limit", "cursor")

ERROR_TEXT = {
    400: "请求有误",
    401: "未登录或令牌无效",
    403: "无权进行此操作",
    404: "资源不存在",
    409: "与当前状态冲突",
    413: "请求体过大",
    415: "请求体类型不受支持",
    422: "输入不符合要求",
    429: "请求过于频繁",
    502: "外部系统返回了无法识别的结果",
    503: "依赖的服务暂时不可用(数据库或 Redis 不可用时任何操作都如此)",
    504: "外部系统响应超时",
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
    errors: list[FieldError] | None = Field(None, description="on 422: the fields refused, and why")


class _Raw(Schema):
    """A schema object written out as given (sanic-ext's Schema keeps only the keys it knows)."""

    def __init__(self, value: dict[str, Any]) -> None:
        super().__init__(**value)

    def guard(self, fields: dict[str, Any]) -> dict[str, Any]:
        return fields


_COMPONENT = "#/components/schemas/{model}"
# JSON Schema words OpenAPI 3.0 has not (a dict's key rules: the validator still holds them)
_NOT_IN_OAS30 = (
    "$defs",
    "$schema",
    "$id",
    "propertyNames",
    "prefixItems",
    "contains",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedProperties",
    "contentMediaType",
    "contentEncoding",
    "const",
)


def _oas30(schema: Any) -> Any:
    """pydantic's JSON Schema (2020-12) in OpenAPI 3.0 words: `const` as a one-value enum, `X | None` as
    `nullable`, a `$ref` with siblings inside `allOf`, numeric exclusive bounds as boolean ones, `examples`
    as one `example`; no `$defs` (they become components beside it)."""
    if isinstance(schema, list):
        return [_oas30(part) for part in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":  # property names are not keywords
            out[key] = {name: _oas30(part) for name, part in value.items()}
        elif key in ("anyOf", "oneOf") and {"type": "null"} in value:
            rest = [_oas30(o) for o in value if o != {"type": "null"}]
            out["nullable"] = True
            if len(rest) == 1:
                out = {**rest[0], **out}
            else:
                out[key] = rest
        elif key in ("default", "example", "enum", "const"):
            out[key] = value
        else:
            out[key] = _oas30(value)
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if out.get("type") == "null":
        out.pop("type")
        out["nullable"] = True
        out["enum"] = [None]
    if isinstance(out.get("type"), list):
        kinds = [k for k in out["type"] if k != "null"]
        if len(kinds) < len(out["type"]):
            out["nullable"] = True
        out["type"] = kinds[0]
    if out.get("nullable") and isinstance(out.get("enum"), list) and None not in out["enum"]:
        # OpenAPI 3.0.3: `nullable` does not widen an `enum`, null must be one of its values
        out["enum"] = [*out["enum"], None]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), int | float) and not isinstance(out.get(bound), bool):
            out[plain] = out.pop(bound)
            out[bound] = True
    if "examples" in out:
        examples = out.pop("examples")
        if isinstance(examples, list) and examples:
            out.setdefault("example", examples[0])
    for word in _NOT_IN_OAS30:
        out.pop(word, None)
    if "$ref" in out and len(out) > 1:
        ref = out.pop("$ref")
        out["allOf"] = [{"$ref": ref}]
    if "enum" in out and "type" not in out:
        value_types = {type(v) for v in out["enum"] if v is not None}
        if value_types == {str}:
            out["type"] = "string"
    return out


def _register(name: str, schema: dict[str, Any]) -> None:
    spec = SpecificationBuilder()
    known = spec._components.get("schemas", {}).get(name)
    if known is not None and known != schema:
        raise RuntimeError(f"two different schemas would be the OpenAPI component {name!r}: rename one model")
    spec.add_component("schemas", name, schema)


def json_schema(model: type[BaseModel], mode: JsonSchemaMode = "validation") -> dict[str, Any]:
    """pydantic's JSON schema of a model, its nested models as components (refs to #/components/schemas)."""
    schema = model.model_json_schema(ref_template=_COMPONENT, mode=mode)
    for name, part in schema.pop("$defs", {}).items():
        _register(name, _answered(_oas30(part), mode))
    converted: dict[str, Any] = _answered(_oas30(schema), mode)
    return converted


def _answered(schema: dict[str, Any], mode: JsonSchemaMode) -> dict[str, Any]:
    """An answer (`model_dump`) carries every field, defaults included: all of them are required there."""
    if mode == "serialization" and "properties" in schema:
        schema["required"] = list(schema["properties"])
    return schema


def content(model: type[BaseModel], mode: JsonSchemaMode = "serialization") -> Reference:
    """A model as a component named after it, built from pydantic's JSON schema (no sanic-ext reading of the
    class: that turned Literals into objects and `model_config` into a property); a request body is
    described in validation mode, an answer in serialization mode."""
    _register(model.__name__, json_schema(model, mode))
    return Reference(_COMPONENT.format(model=model.__name__))


def _param_schema(spec: dict[str, Any]) -> _Raw:
    """A query parameter's schema: the field's, without the `null` of an optional field (absent instead)."""
    chosen = dict(spec)
    if chosen.get("nullable"):
        chosen.pop("nullable")
        if chosen.get("enum") == [None]:
            chosen = {"type": "string"}
        elif "enum" in chosen:
            chosen["enum"] = [v for v in chosen["enum"] if v is not None]
    chosen.pop("title", None)
    if chosen.get("default", "") is None:
        chosen.pop("default")
    return _Raw(chosen)


def _is_page(model: type[BaseModel] | None) -> bool:
    return model is not None and "next_cursor" in model.model_fields


SWAGGER_ASSETS = "/docs/assets"
SWAGGER_VERSION = Path(str(swagger_ui_path)).name.removeprefix("swagger-ui-")


def serve_swagger_ui(app: Sanic) -> None:
    """`/docs` from this server alone (an intranet has no CDN): the page is ours (api/kit/swagger.html), its
    scripts and styles are swagger-ui-bundle's files, served under /docs/assets/<version>/."""
    app.config.OAS_PATH_TO_SWAGGER_HTML = str(Path(__file__).with_name("swagger.html"))
    app.config.OAS_UI_SWAGGER_CDN_URL = SWAGGER_ASSETS
    app.config.OAS_UI_SWAGGER_VERSION = SWAGGER_VERSION
    app.static(f"{SWAGGER_ASSETS}/{SWAGGER_VERSION}", str(swagger_ui_path), name="swagger_ui_assets")
    # sanic-ext answers /docs/oauth2-redirect.html with a page it downloads from a CDN: the bundle's copy
    redirect_page = (Path(str(swagger_ui_path)) / "oauth2-redirect.html").read_text(encoding="utf-8")
    # (setattr: the module holds an lru_cache wrapper there, and this stands for it)
    setattr(oas_blueprint, "get_oauth2_redirect_html", lambda version: redirect_page)  # noqa: B010


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
        key_scope: str | None = getattr(handler, "__ywt_api_key_scope__", None)
        secured = bool(roles)
        implied = set()
        if secured:
            implied.add(401)
            if roles != ("*",) or level:
                implied.add(403)
            who = "任一已登录账号" if roles == ("*",) else "、".join(roles)
            note = f"需要登录：{who}" + (f"；实名等级 ≥ {level}" if level else "")
            if key_scope:
                note += f"；或其他系统以 X-API-Key(权限 {key_scope})调用"
            wrapped = openapi.description(note)(wrapped)
        wrapped = openapi.summary(summary)(wrapped)
        # the operationId is the handler's name (unique across areas; a generated client's function names)
        wrapped = openapi.operation(getattr(handler, "__name__", summary))(wrapped)
        wrapped = openapi.tag(tag)(wrapped)
        if query is not None:
            schema = json_schema(query)
            paged = _is_page(ok)
            for name, prop in schema.get("properties", {}).items():
                if name in PAGE_PARAMS and not paged:
                    continue  # one object answered: a page's limit and cursor mean nothing there
                wrapped = openapi.parameter(
                    name,
                    _param_schema(prop),
                    "query",
                    description=prop.get("description", ""),
                    required=name in schema.get("required", []),
                )(wrapped)
        if idempotent:
            wrapped = openapi.parameter(
                "Idempotency-Key",
                _Raw({"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^[\x21-\x7e]+$"}),
                "header",
                description=IDEMPOTENCY_TEXT,
            )(wrapped)
        if body is not None:
            wrapped = openapi.body({content_type: content(body, "validation")}, required=True)(wrapped)
        if ok is not None:
            wrapped = openapi.response(status, {"application/json": content(ok)}, "成功")(wrapped)
        else:
            wrapped = openapi.response(status, {}, "成功")(wrapped)  # no body (None would say */*)
        problems = {*errors, *implied, 503}  # the database or Redis down: every route fails closed
        if query is not None or body is not None:
            problems.add(422)
        if body is not None:
            problems |= {413, 415}
        problem = content(Problem, "validation")  # its `errors` only on a 422
        for code in sorted(problems):
            wrapped = openapi.response(code, {"application/problem+json": problem}, ERROR_TEXT[code])(wrapped)
        if secured:
            wrapped = openapi.secured("bearer")(wrapped)
            if key_scope:
                wrapped = openapi.secured("apiKey")(wrapped)
        return wrapped

    return decorate
