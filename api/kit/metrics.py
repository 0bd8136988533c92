"""Prometheus metrics: requests per route template and status, database and Redis call latencies, cache hits.

Recording is a few module functions, each one `perf_counter` pair at its caller and one counter or histogram
update here, on a label child looked up once and kept (no `labels()` call per event):

- `observe_request(method, route, status, seconds)` — each answer (api/app.py `YwtRequest`); `route` is the
  router's template (`/api/v1/items/<code:str>`), `UNMATCHED` for a path no route has, so the number of
  series is bounded by the routes and the statuses the code answers, never by what callers send;
- `observe_db(sql, seconds)` — every statement (api/kit/db.py), labelled by its kind (select, insert, update,
  delete, other, script), never by its text;
- `observe_redis(command, seconds)` — every Redis command or pipeline (api/kit/kv.py), by command name;
- `cache_hit(name)` / `cache_miss(name)` — a cache lookup (`catalog`, `account`, `token`).

Requests and cache lookups are tallied in plain numbers and handed to prometheus-client once a second
(`Tally`); statements and Redis commands are recorded as they happen.

With several Sanic workers the values live in files, one per worker, under PROMETHEUS_MULTIPROC_DIR
(prometheus-client's multiprocess mode, chosen when prometheus_client is imported): Sanic's main process
sets and empties that folder (`prepare_workers_dir`, a `main_process_start` listener) before it starts the
workers, which import everything afresh and inherit it; `/metrics` sums every worker's files. In a single
process (one worker, the in-process tests) the values are in memory, with the process and garbage-collector
metrics beside them.

`/metrics` (registered in api/app.py) is not public: it answers a caller whose address is in `metrics.allow`
(addresses or networks; unset: the loopback addresses in embedded mode, nobody in production) and otherwise
behaves as `@require(Role.ADMIN)`: no or a bad token 401, a valid token without the admin role 403."""

from __future__ import annotations

import ipaddress
import os
from bisect import bisect_left
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from sanic.constants import HTTP_METHODS

from api.kit.config import Settings
from api.kit.later import OnceLater

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
UNMATCHED = "unmatched"  # the route label of a request no route matched
_METHODS = frozenset(str(method) for method in HTTP_METHODS)

# an anonymous catalogue read takes ~1 ms, a submission tens: buckets from 0.5 ms up
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# a database statement or Redis command: from 0.1 ms up
CALL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)

REQUESTS = Counter(
    "ywt_http_requests", "HTTP requests answered, by route template and status", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "ywt_http_request_duration_seconds",
    "Time from the request's head being read to its answer being ready, by route template and status",
    ["method", "route", "status"],
    buckets=REQUEST_BUCKETS,
)
DB_SECONDS = Histogram(
    "ywt_db_query_duration_seconds",
    "Database statements, by kind (select, insert, update, delete, other, script)",
    ["operation"],
    buckets=CALL_BUCKETS,
)
REDIS_SECONDS = Histogram(
    "ywt_redis_command_duration_seconds",
    "Redis commands (a pipeline: PIPELINE, or MULTI when transactional), by command",
    ["command"],
    buckets=CALL_BUCKETS,
)
CACHE_LOOKUPS = Counter(
    "ywt_cache_lookups", "Cache lookups by cache and result (hit or miss)", ["cache", "result"]
)

# label children, made once per label set (the label sets are bounded, see the module docstring)
_request_children: dict[tuple[str, str | None, int], tuple[Any, Any]] = {}
_db_children: dict[str, Any] = {}
_redis_children: dict[str, Any] = {}
_lookups: dict[tuple[str, str], Any] = {}

_SQL_KINDS = {"SELECT": "select", "INSERT": "insert", "UPDATE": "update", "DELETE": "delete"}


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    """One answered request: `route` is the router's path of its route (`api/v1/items/<code:str>`, the
    label gets a leading /), None when no route matched. Tallied (see `Tally`)."""
    key = (method, route, status)
    counts = _tally.requests.get(key)
    if counts is None:
        counts = _tally.requests[key] = [0, 0.0] + [0] * (len(REQUEST_BUCKETS) + 1)
    counts[0] += 1
    counts[1] += seconds
    counts[2 + bisect_left(REQUEST_BUCKETS, seconds)] += 1
    _tally.due()


def _request_children_of(key: tuple[str, str | None, int]) -> tuple[Any, Any]:
    children = _request_children.get(key)
    if children is None:
        method, route, status = key
        labels = (
            method if method in _METHODS else "other",
            UNMATCHED if route is None else "/" + route,
            str(status),
        )
        children = (REQUESTS.labels(*labels), REQUEST_SECONDS.labels(*labels))
        _request_children[key] = children
    return children


class Tally:
    """What the hottest events (answered requests, cache lookups) add up to, in plain numbers, handed to
    prometheus-client together: at most `EVERY` seconds after the first of them (a timer on the running
    loop), before every exposition, and as the worker stops. Each update of a prometheus-client value
    takes a lock, checks the process id (a system call) and, across workers, writes its file: per request
    (a counter, a histogram's sum and bucket, a cache lookup) that was ~15 % of a catalogue read's
    throughput (interleaved A/B, issue 9). A worker killed outright loses at most its last second of these
    counts; the database and Redis call latencies are recorded as they happen."""

    EVERY = 1.0

    def __init__(self) -> None:
        # per (method, route, status): [count, sum of seconds, one count per bucket of REQUEST_BUCKETS, +Inf]
        self.requests: dict[tuple[str, str | None, int], list[Any]] = {}
        self.lookups: dict[tuple[str, str], int] = {}
        self._later = OnceLater(self.hand_over)

    def lookup(self, cache: str, result: str) -> None:
        key = (cache, result)
        self.lookups[key] = self.lookups.get(key, 0) + 1
        self.due()

    def due(self) -> None:
        if not self._later.ask(self.EVERY):
            self.hand_over()

    def hand_over(self) -> None:
        requests, self.requests = self.requests, {}
        lookups, self.lookups = self.lookups, {}
        for key, counts in requests.items():
            counter, histogram = _request_children_of(key)
            counter.inc(counts[0])
            # prometheus-client's Histogram.observe, for many observations at once: the sum, then the
            # one bucket each fell in (its exposition makes them cumulative)
            histogram._sum.inc(counts[1])
            for bucket, count in zip(histogram._buckets, counts[2:], strict=True):
                if count:
                    bucket.inc(count)
        for (cache, result), count in lookups.items():
            _lookup_child(cache, result).inc(count)


_tally = Tally()


def sql_kind(sql: str) -> str:
    """The kind of one statement from its first word: select, insert, update, delete or other."""
    head = sql[:6] if sql[:1].isalpha() else sql.lstrip()[:6]
    return _SQL_KINDS.get(head.upper(), "other")


def observe_db(kind: str, seconds: float) -> None:
    child = _db_children.get(kind)
    if child is None:
        child = _db_children[kind] = DB_SECONDS.labels(kind)
    child.observe(seconds)


def observe_redis(command: str, seconds: float) -> None:
    child = _redis_children.get(command)
    if child is None:
        child = _redis_children[command] = REDIS_SECONDS.labels(command)
    child.observe(seconds)


def cache_hit(cache: str) -> None:
    """A lookup of cache `cache` ("catalog", "account", "token") answered from the cache. Tallied."""
    _tally.lookup(cache, "hit")


def cache_miss(cache: str) -> None:
    """A lookup of cache `cache` that had to go to the source. Tallied."""
    _tally.lookup(cache, "miss")


def _lookup_child(cache: str, result: str) -> Any:
    child = _lookups.get((cache, result))
    if child is None:
        child = _lookups[(cache, result)] = CACHE_LOOKUPS.labels(cache, result)
    return child


# ---- the multiprocess folder --------------------------------------------------------------------------


def multiprocess_mode() -> bool:
    """Whether this process keeps its values in files (prometheus-client chose so when it was imported)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def prepare_workers_dir(data_dir: Path) -> Path:
    """In the main process, before it starts the workers: the folder of their files, emptied, in the
    environment they inherit. The operator's PROMETHEUS_MULTIPROC_DIR, else data_dir/metrics (one folder
    per server: a second server on the same folder would empty the first one's)."""
    folder = Path(os.environ.get(MULTIPROC_ENV) or data_dir / "metrics")
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):  # a previous run's workers: their counts are not this server's
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def exposition() -> bytes:
    """Every metric in the Prometheus text format: in multiprocess mode the sums over every worker's file
    (this worker's tally handed over first; another worker's is at most `Tally.EVERY` seconds behind)."""
    _tally.hand_over()
    if not multiprocess_mode():
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=os.environ[MULTIPROC_ENV])
    return generate_latest(registry)


def worker_exited() -> None:
    """A worker's bookkeeping as it stops: its tally handed over; prometheus-client's `mark_process_dead`
    (its live gauges go)."""
    _tally.hand_over()
    if multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid(), os.environ[MULTIPROC_ENV])


# ---- who may read /metrics ----------------------------------------------------------------------------

LOOPBACK = ("127.0.0.1/32", "::1/128")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def allowed_networks(settings: Settings) -> tuple[Network, ...]:
    """`metrics.allow` as networks; unset: loopback in embedded mode, none in production."""
    given = settings.metrics.allow
    if given is None:
        given = list(LOOPBACK) if settings.embedded else []
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in given)


def address_allowed(address: str, networks: tuple[Network, ...]) -> bool:
    if not networks or not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)
