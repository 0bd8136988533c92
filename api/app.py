"""create_app(settings) -> Sanic: configuration, listeners, middleware, error handlers, routes.

The composition root: the one module that knows every area. `build_services` makes the kernel and each
area's service on it, once per worker, into one container (`app.ctx.services`); kit reaches the parts it
needs (the kernel, the principal and scope sources) through the protocols it defines."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

import orjson
from redis.asyncio import Redis
from sanic import Request, Sanic
from sanic.compat import Header
from sanic.response import BaseHTTPResponse, HTTPResponse
from sanic_ext import openapi
from sanic_ext.extensions.http.extension import HTTPExtension
from sanic_ext.extensions.openapi.extension import OpenAPIExtension

from api.apikeys.service import ApiKeyDirectory
from api.applications.deadlines import watch_forever
from api.applications.deps import Cases
from api.applications.files import FileStore
from api.catalog.service import CatalogCache
from api.identity.build import build_identity
from api.identity.deps import Identity
from api.identity.principals import AccountDirectory
from api.kit import metrics, versions
from api.kit.answer import Answer
from api.kit.auth import Role, client_ip, require
from api.kit.config import ConfigError, Settings, load_settings
from api.kit.container import Kernel, build_kernel
from api.kit.db import close_database, instrument_database, open_database, ping_database
from api.kit.docs import documented, serve_swagger_ui
from api.kit.errors import new_request_id, problem, register_error_handlers, request_id_of
from api.kit.http import json_bytes
from api.kit.ids import register_id_parameters
from api.kit.kv import make_redis
from api.kit.logs import AccessLog, setup_logging
from api.kit.target import YwtSanic
from api.licences.deps import Licences, build_licences
from api.licences.service import expiry_forever
from api.notifications.delivery import Senders, deliver_forever
from api.routes import api_v1, root
from api.wechat.deps import Official
from api.wechat.service import replies_forever
from integrations import Integrations, build_integrations

access_log = AccessLog("ywt.access")
log = logging.getLogger("ywt.app")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{8,64}$")
Handler = Callable[[Request], Awaitable[HTTPResponse]]


@dataclass
class Services:
    """The one container of a worker's services, on `app.ctx.services`."""

    kernel: Kernel
    integrations: Integrations
    principals: AccountDirectory
    scopes: AccountDirectory
    catalog: CatalogCache
    identity: Identity
    cases: Cases
    official: Official
    licences: Licences
    api_keys: ApiKeyDirectory
    jwks_body: bytes

    async def close(self) -> None:
        await self.integrations.close()
        await self.kernel.versions.close()
        await self.kernel.redis.aclose()


def build_services(settings: Settings, redis: Redis | None = None) -> Services:
    """Every service of one process (a server worker, the CLI, the background worker), on one kernel."""
    redis = redis or make_redis(settings)
    kernel = build_kernel(settings, redis)
    integrations = build_integrations(settings, redis)
    directory = AccountDirectory(kernel.versions)
    # with the in-process Redis a `load-catalog` run elsewhere cannot move the catalogue's version: what a
    # submission checks (item_facts, point_facts) is then read again after a second, not after cache_ttl
    catalog = CatalogCache(
        redis, settings.catalog.cache_ttl, facts_ttl=1.0 if settings.memory_redis else None
    )
    # account writes made in this context (the CLI's, the worker's) copy their versions to this Redis; each
    # request sets it again in its own context (`_start`)
    versions.publisher.set(kernel.versions)
    identity = build_identity(kernel, integrations)
    licences = build_licences(kernel, identity, integrations.licences, integrations.licence_issuers)
    return Services(
        kernel=kernel,
        integrations=integrations,
        principals=directory,
        scopes=directory,
        catalog=catalog,
        identity=identity,
        cases=Cases(kernel=kernel, files=FileStore(settings.uploads_dir), catalog=catalog, licences=licences),
        official=Official(kernel=kernel, identity=identity, catalog=catalog, wechat=integrations.wechat),
        licences=licences,
        api_keys=ApiKeyDirectory(redis),
        jwks_body=orjson.dumps(kernel.tokens.keys.jwks()),
    )


def create_app(settings: Settings | None = None) -> Sanic:
    if not isinstance(settings, Settings):
        # `sanic api.app:create_app --factory` may hand the factory its own argument namespace
        settings = None
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError as exc:
            # the one line an operator needs, no traceback
            print(exc, file=sys.stderr)
            raise SystemExit(2) from None
    setup_logging(settings.app.log_level)

    app = YwtSanic(settings.app.name, dumps=_dumps, request_class=YwtRequest)
    app.ctx.settings = settings
    _configure(app, settings)
    register_error_handlers(app)
    register_id_parameters(app)
    app.blueprint(api_v1(embedded=settings.embedded))
    for blueprint in root():
        app.blueprint(blueprint)
    _register_health(app)
    _register_metrics(app)
    app.register_listener(prepare_metrics, "main_process_start")
    app.register_listener(open_resources, "before_server_start")
    app.register_listener(close_resources, "after_server_stop")
    app.register_listener(start_background, "after_server_start")
    app.register_listener(freeze_start_up_objects, "after_server_start")
    app.register_listener(stop_background, "before_server_stop")
    return app


def _dumps(obj: object, **_: object) -> str:
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()


def _configure(app: Sanic, settings: Settings) -> None:
    app.config.REQUEST_MAX_SIZE = settings.server.max_body_bytes
    # on SIGTERM requests in flight get the same grace as the delivery loop's pass (Sanic's default: 15 s)
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = settings.notifications.stop_grace
    app.config.ACCESS_LOG = False
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.DEBUG = settings.server.debug and settings.embedded
    app.config.PROXIES_COUNT = 0
    app.config.REAL_IP_HEADER = None
    app.config.OAS_URL_PREFIX = "/docs"
    app.config.OAS_UI_DEFAULT = "swagger"
    app.config.OAS_UI_REDOC = False
    serve_swagger_ui(app)  # before the first app.ext, which reads the OAS_ config
    app.config.OAS_AUTODOC = False
    app.config.OAS_IGNORE_HEAD = True
    app.config.OAS_IGNORE_OPTIONS = True
    app.config.CORS = bool(settings.server.cors_origins)
    app.config.CORS_ORIGINS = ",".join(settings.server.cors_origins)
    app.config.HEALTH = False
    # the two sanic-ext extensions we use (the OpenAPI document; CORS and HEAD/OPTIONS), not the built-in
    # set: its dependency injection, which nothing here uses, dispatched a signal on every request
    app.extend(built_in_extensions=False, extensions=[OpenAPIExtension, HTTPExtension])
    app.ext.openapi.describe(
        "Yiwangtong 一网通 API",
        version="1",
        description=(
            "一网通办：统一身份认证与实名核验、办事指南与服务网点查询、社区通办(网上申请、材料上传、受理与办理)、"
            "消息通知、评价与投诉、统计。错误一律为 RFC 9457 problem+json。"
        ),
    )
    app.ext.openapi.add_security_scheme("bearer", "http", scheme="bearer", bearer_format="JWT")
    app.ext.openapi.add_security_scheme("apiKey", "apiKey", name="X-API-Key", location="header")


async def prepare_metrics(app: Sanic) -> None:
    """Sanic's main process, before the workers: the folder where they keep their metrics."""
    metrics.prepare_workers_dir(app.ctx.settings.data_dir)


async def open_resources(app: Sanic) -> None:
    """Per worker process: database pool, Redis client, outside-system clients, every area's service."""
    settings: Settings = app.ctx.settings
    await open_database(settings)
    instrument_database()
    app.ctx.services = build_services(settings, make_redis(settings, timed=True))


async def start_background(app: Sanic) -> None:
    """Embedded mode runs the deadline watch and the delivery loop in the server; production runs them in
    `python -m api.worker`."""
    settings: Settings = app.ctx.settings
    if settings.embedded:
        interval = settings.applications.deadline_watch_interval
        stop = app.ctx.watch_stop = asyncio.Event()
        integrations = app.ctx.services.integrations
        senders = Senders(push=integrations.push, wechat=integrations.wechat, settings=settings.notifications)
        loops = {
            "deadline_watch": watch_forever(app.ctx.services.cases, interval, stop, first_after=interval),
            "delivery_loop": deliver_forever(senders, stop, first_after=settings.notifications.interval),
            "wechat_replies": replies_forever(app.ctx.services.official, stop),
            "licence_expiry": expiry_forever(
                app.ctx.services.licences,
                settings.licences.expiry_watch_interval,
                stop,
                first_after=min(60.0, settings.licences.expiry_watch_interval),
            ),
        }
        # tasks of our own, not Sanic's (`app.add_task`): on SIGTERM Sanic cancels its tasks at once, before
        # any stop listener runs, which cut the delivery loop's pass short mid-write every time instead of
        # giving it its grace period; these are stopped by `stop_background`, through `watch_stop`
        app.ctx.background = [asyncio.create_task(coro, name=name) for name, coro in loops.items()]


async def freeze_start_up_objects(app: Sanic) -> None:
    """Once the worker is up, what start-up made (modules, routes, schemas, OpenAPI, pools: several hundred
    thousand objects that live as long as the process) moves out of the garbage collector's reach.

    Measured (make bench, PostgreSQL, 1 worker, INFO): without it a full collection walked all of them,
    ~80 ms with the event loop stopped, every ~20 s under load; the 64 connections' requests waiting
    through it made the catalogue's p99 (~75 ms against a p50 of ~18 ms). After gc.freeze() a full
    collection walks only what was made since."""
    gc.collect()
    gc.freeze()


async def stop_background(app: Sanic) -> None:
    stop = getattr(app.ctx, "watch_stop", None)
    if stop is None:
        return
    stop.set()
    # each loop ends its pass: the delivery loop within `stop_grace` seconds, then it gives back what it holds;
    # a loop still running after that is cancelled (the delivery loop gives back what it holds then too)
    grace = app.ctx.settings.notifications.stop_grace + 2
    done, late = await asyncio.wait(app.ctx.background, timeout=grace)
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "background loop failed",
                exc_info=task.exception(),
                extra={"fields": {"loop": task.get_name()}},
            )


async def close_resources(app: Sanic) -> None:
    services: Services | None = getattr(app.ctx, "services", None)
    if services is not None:
        await services.close()
    await close_database()
    metrics.worker_exited()


def _register_health(app: Sanic) -> None:
    @app.get("/healthz")
    async def healthz(request: Request) -> HTTPResponse:
        """The process is up."""
        return json_bytes(b'{"status":"ok"}')

    @app.get("/readyz")
    async def readyz(request: Request) -> HTTPResponse:
        """The database and Redis answer; 503 names the one that doesn't."""
        down = []
        try:
            await ping_database()
        except Exception:  # noqa: BLE001 — any failure means not ready
            down.append("database")
        try:
            await request.app.ctx.services.kernel.redis.ping()
        except Exception:  # noqa: BLE001
            down.append("redis")
        if down:
            return problem(
                request,
                503,
                "not_ready",
                "服务未就绪",
                "不可用：" + "、".join(down),
                extra={"unavailable": down},
            )
        return json_bytes(b'{"status":"ready","database":"ok","redis":"ok"}')


def _register_metrics(app: Sanic) -> None:
    @app.get("/metrics")
    @openapi.secured({})  # the alternative to the bearer token: no token at all, from an allowed address
    @openapi.description("需要登录：admin；调用方地址在 metrics.allow 中时无需令牌")
    @openapi.response(200, {metrics.CONTENT_TYPE.split(";")[0]: str}, "Prometheus 文本格式")
    @documented("Prometheus 指标", tag="operations")
    @_admin_or_allowed_address
    async def get_metrics(request: Request) -> HTTPResponse:
        """Request counts and latencies per route template and status, database and Redis call latencies,
        cache lookups, in the Prometheus text format, summed over every worker."""
        return Answer(metrics.exposition(), content_type=metrics.CONTENT_TYPE)


def _admin_or_allowed_address(handler: Handler) -> Handler:
    """A caller whose address is in `metrics.allow` (api/kit/metrics.py), or else what `@require(Role.ADMIN)`
    lets through: no or a bad token 401, a signed-in caller without the admin role 403."""
    guarded: Any = require(Role.ADMIN)(handler)

    @wraps(handler)
    async def gate(request: Request) -> HTTPResponse:
        networks = metrics.allowed_networks(request.app.ctx.settings)
        if metrics.address_allowed(client_ip(request), networks):
            return await handler(request)
        answer: HTTPResponse = await guarded(request)
        return answer

    marked: Any = gate  # Any: it carries what @require put on its handler, which kit.docs and the tests read
    marked.__ywt_roles__ = guarded.__ywt_roles__
    marked.__ywt_real_name_level__ = guarded.__ywt_real_name_level__
    return gate


def _start(request: Request) -> None:
    """As a request is made (its head read): the account writes it makes copy their new versions to this
    worker's Redis once committed; its id (the caller's, if well formed); the moment, for its latency."""
    versions.publisher.set(request.app.ctx.services.kernel.versions)
    given = request.headers.get("x-request-id", "")
    ctx = request.ctx
    ctx.request_id = given if _REQUEST_ID.match(given) else new_request_id()
    ctx.started = time.perf_counter()


def _finish(request: Request, response: BaseHTTPResponse) -> None:
    """As it is answered: its id and `nosniff` on the answer, its metrics, its access line."""
    request_id = request_id_of(request)
    response.headers["X-Request-ID"] = request_id
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    seconds = time.perf_counter() - request.ctx.started  # set by `_start`, for every request
    route = request.route
    metrics.observe_request(request.method, route.path if route else None, response.status, seconds)
    # the path only: query strings may carry personal data
    access_log.request(
        # "NONE": a request refused before Sanic read its method (see api/kit/target.py)
        request.method if request.method != "NONE" else None,
        request.path,
        response.status,
        round(seconds * 1000, 2),
        request_id,
    )


class YwtRequest(Request):
    """Sanic's request, doing as it is made and as it is answered what a request and a response middleware
    would (`_start`, `_finish`), for every request, a refused or unrouted one too, and for every answer,
    an error's too (Sanic's error handling answers through `respond` as a handler's answer does). Without
    the middleware machinery around them: measured ~6 µs of a catalogue read's ~80."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _start(self)

    async def respond(
        self,
        response: BaseHTTPResponse | None = None,
        *,
        status: int = 200,
        headers: Header | dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> Any:
        answer = await super().respond(response, status=status, headers=headers, content_type=content_type)
        if isinstance(answer, BaseHTTPResponse) and not getattr(self.ctx, "finished", False):
            self.ctx.finished = True
            _finish(self, answer)
        return answer
