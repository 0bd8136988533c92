"""Outbound HTTP rules shared by every client of an outside system (SECURITY row 16).

Every call to a provider goes through `make_client` + `call_json` so the rules hold in one place:
TLS verified, redirects never followed (a redirect from a provider is an error, not a hint: following it
could send our API key or WeChat secret to another host), one overall deadline per call (httpx's timeouts are
per phase, a server trickling bytes would never trip them), the body read in a stream and cut off at a size
cap (a misbehaving provider cannot fill our memory), and the answer must be JSON.

Failures become `UpstreamTimeout` (504) or `UpstreamError` (502) with a message for people in Chinese.
Secrets travel in headers and query strings (API keys, the WeChat app secret and access token), so neither
exception messages nor log lines ever carry a URL's query, a header or the provider's body.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from typing import Any, TypeVar

import httpx
import orjson
from pydantic import BaseModel, ValidationError

from api.kit.errors import UpstreamError, UpstreamTimeout

log = logging.getLogger("ywt.integrations")

M = TypeVar("M", bound=BaseModel)

DEFAULT_MAX_BYTES = 1_000_000


class _RedactQuery(logging.Filter):
    """httpx logs every request at INFO with its full URL, query included (the WeChat app secret and access
    token travel there): the URLs in its records lose their query before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(_without_query(a) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


def _without_query(url: httpx.URL) -> str:
    return str(url.copy_with(query=None)) + ("?<redacted>" if url.query else "")


def _guard_httpx_log() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactQuery) for f in logger.filters):
        logger.addFilter(_RedactQuery())


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process (certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR when set):
    loading the CA bundle costs tens of milliseconds, so every client shares it."""
    return httpx.create_ssl_context(verify=True)


def make_client(base_url: str, timeout: float) -> httpx.AsyncClient:
    """An httpx client for one provider: TLS verified, no redirects, `timeout` on every phase.

    Build it in a `before_server_start` listener (one per worker process), never at import.
    A private CA can be trusted through the SSL_CERT_FILE / SSL_CERT_DIR environment variables.
    """
    _guard_httpx_log()
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=timeout, read=timeout, write=timeout, pool=timeout),
        verify=tls_context(),
        follow_redirects=False,
        headers={"User-Agent": "yiwangtong/1"},
    )


def _deadline(client: httpx.AsyncClient) -> float | None:
    phases = client.timeout
    values = [t for t in (phases.connect, phases.read, phases.write, phases.pool) if t is not None]
    return max(values) if values else None


def _where(client: httpx.AsyncClient, url: str) -> str:
    """Host and path of a call for log lines: never the query (it may carry a secret)."""
    try:
        target = httpx.URL(url)
        if target.is_absolute_url:
            return f"{target.host}{target.path}"
        base = client.base_url
        return f"{base.host}{base.path.rstrip('/')}/{target.path.lstrip('/')}"
    except (httpx.InvalidURL, TypeError):
        return "?"


async def call_json(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    name: str = "外部系统",
    **kwargs: Any,
) -> Any:
    """Send one request and return the decoded JSON answer of a 2xx response.

    `name` is how the provider is called in messages (e.g. "微信接口"). The whole call, body included, must
    finish within the client's timeout. Raises UpstreamTimeout when it does not, UpstreamError on a connection
    failure, a redirect (never followed), a non-2xx status, a body over `max_bytes` or a body that is not JSON.
    """
    where = _where(client, url)
    body = bytearray()
    try:
        async with asyncio.timeout(_deadline(client)):
            async with client.stream(method, url, **kwargs) as response:
                status = response.status_code
                if 300 <= status < 400:
                    log.warning(
                        "upstream %s %s answered a redirect (%s), not followed", method, where, status
                    )
                    raise UpstreamError(f"{name}返回了重定向（HTTP {status}），已拒绝跟随")
                if not 200 <= status < 300:
                    log.warning("upstream %s %s answered HTTP %s", method, where, status)
                    raise UpstreamError(f"{name}返回了错误状态（HTTP {status}）")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    log.warning("upstream %s %s declared %s bytes, over the cap", method, where, declared)
                    raise UpstreamError(f"{name}返回的内容过大")
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        log.warning(
                            "upstream %s %s sent more than %s bytes, cut off", method, where, max_bytes
                        )
                        raise UpstreamError(f"{name}返回的内容过大")
    except (TimeoutError, httpx.TimeoutException):
        log.warning("upstream %s %s timed out", method, where)
        raise UpstreamTimeout(f"{name}响应超时") from None
    except httpx.HTTPError as exc:
        # connection refused, TLS verification failed, connection dropped, broken encoding...
        log.warning("upstream %s %s failed: %s", method, where, type(exc).__name__)
        raise UpstreamError(f"{name}暂时无法访问") from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        log.warning("upstream %s %s answered something that is not JSON", method, where)
        raise UpstreamError(f"{name}返回的内容不是合法的 JSON") from None


def validate_answer(model: type[M], data: Any, *, name: str = "外部系统") -> M:
    """Check a provider's JSON against the shape we expect; anything else is UpstreamError (502)."""
    try:
        return model.model_validate(data)
    except ValidationError:
        log.warning("upstream %s answered an unexpected shape (%s)", name, type(data).__name__)
        raise UpstreamError(f"{name}返回了无法识别的结果") from None
