"""Outbound HTTP rules shared by every client of an outside system (SECURITY row 16).

Every call to a provider goes through `make_client` + `call_json` so the rules hold in one place:
TLS verified, redirects never followed (a redirect from a provider is an error, not a hint: following it
could send our API key or WeChat secret to another host), one overall deadline per try (httpx's timeouts are
per phase, a server trickling bytes would never trip them), the body read in a stream and cut off at a size
cap (a misbehaving provider cannot fill our memory), and the answer must be JSON.

A call that is safe to repeat (GET, HEAD, OPTIONS, PUT, DELETE, or a POST its caller marks idempotent) and
fails in a way that may pass (a timeout, a refused or dropped connection, HTTP 502/503/504) is tried again
through `stamina`, up to `attempts` tries in all with a short jittered backoff, each try within its own
deadline. A POST is tried once (an SMS or a WeChat message sent twice is worse than a 502), and no other
failure is repeated.

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
import stamina
from pydantic import BaseModel, ValidationError

from api.kit.errors import UpstreamError, UpstreamTimeout

log = logging.getLogger("ywt.integrations")

M = TypeVar("M", bound=BaseModel)

DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_ATTEMPTS = 2
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})
# backoff before try n+1: min(WAIT_MAX, WAIT_INITIAL * 2 ** (n - 1) + up to WAIT_JITTER)
WAIT_INITIAL, WAIT_MAX, WAIT_JITTER = 0.1, 1.0, 0.1


class _Transient(Exception):
    """A failure another try may not meet; carries what the caller gets when no try is left."""

    def __init__(self, final: UpstreamError | UpstreamTimeout) -> None:
        super().__init__(final.detail)
        self.final = final


def longest_call(timeout: float, attempts: int = DEFAULT_ATTEMPTS) -> float:
    """The most seconds one `call_json` can take on a client with this timeout: every try, every backoff."""
    waits = sum(min(WAIT_MAX, WAIT_INITIAL * 2 ** (n - 1) + WAIT_JITTER) for n in range(1, attempts))
    return attempts * timeout + waits


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


def _tls_refused(exc: BaseException) -> bool:
    """Whether a connection failed on TLS (a certificate that does not verify...), somewhere in its causes."""
    cause: BaseException | None = exc
    for _ in range(10):  # a chain can loop; a real one is a few links long
        if cause is None:
            return False
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


async def call_json(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    name: str = "外部系统",
    attempts: int = DEFAULT_ATTEMPTS,
    idempotent: bool | None = None,
    **kwargs: Any,
) -> Any:
    """Send one request and return the decoded JSON answer of a 2xx response.

    `name` is how the provider is called in messages (e.g. "微信接口"). Each try, body included, must finish
    within the client's timeout. A request that is safe to repeat (`idempotent`, by default true for GET,
    HEAD, OPTIONS, PUT and DELETE) is tried up to `attempts` times while it times out, loses its connection or
    gets HTTP 502/503/504 (`longest_call` bounds the whole). Raises UpstreamTimeout when the last try timed out,
    UpstreamError on a connection failure, a redirect (never followed), a non-2xx status, a body over
    `max_bytes` or a body that is not JSON.
    """
    where = _where(client, url)
    if idempotent is None:
        idempotent = method.upper() in IDEMPOTENT_METHODS
    tries = max(1, attempts) if idempotent else 1
    try:
        if tries == 1:
            body = await _try_once(client, method, url, where, name, max_bytes, kwargs)
        else:
            async for attempt in stamina.retry_context(
                on=_Transient,
                attempts=tries,
                timeout=None,  # each try has its own deadline; `tries` bounds the whole
                wait_initial=WAIT_INITIAL,
                wait_max=WAIT_MAX,
                wait_jitter=WAIT_JITTER,
            ):
                with attempt:
                    body = await _try_once(client, method, url, where, name, max_bytes, kwargs)
    except _Transient as failed:
        raise failed.final from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        log.warning("upstream %s %s answered something that is not JSON", method, where)
        raise UpstreamError(f"{name}返回的内容不是合法的 JSON") from None


async def _try_once(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    where: str,
    name: str,
    max_bytes: int,
    kwargs: dict[str, Any],
) -> bytes:
    """One try: the body of a 2xx answer; _Transient for what another try may not meet, UpstreamError else."""
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
                    refused = UpstreamStatus(
                        f"{name}返回了错误状态（HTTP {status}）",
                        upstream_status=status,
                        answer=await _error_answer(response, max_bytes),
                    )
                    if status in RETRY_STATUSES:
                        raise _Transient(refused)
                    raise refused
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
        raise _Transient(UpstreamTimeout(f"{name}响应超时")) from None
    except httpx.HTTPError as exc:
        # refused, reset or dropped connection, closed without an answer: worth another try; a certificate
        # that does not verify, broken encoding, a malformed answer, an unsupported URL: not
        log.warning("upstream %s %s failed: %s", method, where, type(exc).__name__)
        failure = UpstreamError(f"{name}暂时无法访问")
        if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError) and not _tls_refused(exc):
            raise _Transient(failure) from None
        raise failure from None
    return bytes(body)


class UpstreamStatus(UpstreamError):
    """A provider answered a status other than 2xx or 3xx: which one, and its body when that was JSON (some
    providers say why in it, e.g. JPush's `{"error": {"code": 1011, ...}}`). Never put in a message."""

    def __init__(self, detail: str, *, upstream_status: int, answer: Any) -> None:
        super().__init__(detail)
        self.upstream_status = upstream_status
        self.answer = answer


async def _error_answer(response: httpx.Response, max_bytes: int) -> Any:
    """The JSON body of an error answer, or None (not JSON, too large, cut off)."""
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                return None
        return orjson.loads(body) if body else None
    except (httpx.HTTPError, orjson.JSONDecodeError):
        return None


def validate_answer(model: type[M], data: Any, *, name: str = "外部系统") -> M:
    """Check a provider's JSON against the shape we expect; anything else is UpstreamError (502)."""
    try:
        return model.model_validate(data)
    except ValidationError:
        log.warning("upstream %s answered an unexpected shape (%s)", name, type(data).__name__)
        raise UpstreamError(f"{name}返回了无法识别的结果") from None
