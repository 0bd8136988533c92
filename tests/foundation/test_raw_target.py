"""Raw UTF-8 in the request target is taken (as curl sends it), against the real server over a raw socket;
a request Sanic refuses names its reason and is logged with its real method, never "NONE"."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from api.kit.target import ascii_target
from tests.support.server import server_env, serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    folder = tmp_path_factory.mktemp("raw-target")
    env = server_env(folder)
    log = folder / "server.log"
    with serving(env, log):
        yield "127.0.0.1", int(env["YWT_SERVER__PORT"]), log


def send(server: tuple[str, int, Path], head: bytes) -> tuple[int, dict[str, str], bytes]:
    """`head` sent as it is on a new connection (closed after the answer): status, headers, body."""
    host, port, _ = server
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(head)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    top, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = top.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ")[1]), headers, body


def get(target: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def access_lines(server: tuple[str, int, Path], request_id: str) -> list[dict]:
    """The access-log lines of one request, read from the server's output."""
    deadline = time.monotonic() + 5
    while True:
        lines = [
            orjson.loads(x) for x in server[2].read_text(encoding="utf-8").splitlines() if x.startswith("{")
        ]
        found = [x for x in lines if x.get("logger") == "ywt.access" and x.get("request_id") == request_id]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_ascii_target_percent_encodes_bytes_beyond_ascii_only():
    assert ascii_target("/api/v1/items?q=a%20b") == "/api/v1/items?q=a%20b"
    assert ascii_target("/api/v1/items?q=身份证") == "/api/v1/items?q=%E8%BA%AB%E4%BB%BD%E8%AF%81"
    invalid = b"/x?q=\xff".decode("utf-8", "surrogateescape")
    assert ascii_target(invalid) == "/x?q=%FF"


def test_raw_utf8_in_the_query_is_taken_as_percent_encoded(server):
    status, headers, body = send(server, get("/api/v1/items?q=身份证".encode()))
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    items = orjson.loads(body)["items"]
    assert items and all("身份证" in item["name"] or "身份证" in item["code"] for item in items)
    # the same answer as for the percent-encoded target
    _, _, encoded = send(server, get(b"/api/v1/items?q=%E8%BA%AB%E4%BB%BD%E8%AF%81"))
    assert orjson.loads(encoded)["items"] == items


def test_raw_utf8_in_the_path_and_bytes_that_are_not_utf8_are_no_500(server):
    status, headers, body = send(server, get("/api/v1/items/身份证".encode()))
    assert status == 404 and headers["content-type"] == "application/problem+json", body
    status, headers, body = send(server, get(b"/api/v1/items?q=\xff\xfe"))
    assert status < 500, body


def test_a_refused_request_names_its_reason_and_logs_its_real_method(server):
    head = b"GET /api/v1/items HTTP/1.1\r\nHost: 127.0.0.1\r\nbroken header line\r\nConnection: close\r\n\r\n"
    status, headers, body = send(server, head)
    assert status == 400 and headers["content-type"] == "application/problem+json"
    problem = orjson.loads(body)
    assert problem["code"] == "bad_request" and problem["detail"] == "请求行或请求头格式不正确"
    (line,) = access_lines(server, problem["request_id"])
    assert line["method"] == "GET" and line["status"] == 400


def test_a_request_with_no_readable_method_logs_none(server):
    status, _, body = send(server, b"?? broken\r\nHost: x\r\n\r\n")
    assert status == 400
    (line,) = access_lines(server, orjson.loads(body)["request_id"])
    assert line["method"] is None
