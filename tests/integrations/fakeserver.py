"""A real HTTP(S) server on 127.0.0.1 (a free port) for testing the clients of outside systems.

It runs `http.server` in a thread, so the clients go through real sockets, real HTTP parsing and real timeouts.
Routes answer with a `Reply` (or a function of the request returning one); every request is recorded.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line
    content_length: bool = True  # False: no Content-Length, the body ends when the connection closes
    trickle: float = 0.0  # seconds between single bytes of the body
    drop: bool = False  # close the connection without an answer (a provider that crashed mid-request)

    def payload(self) -> bytes:
        if self.body is not None:
            return self.body
        return json.dumps(self.json, ensure_ascii=False).encode()


Route = Reply | Callable[[Seen], Reply]


class FakeServer:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.scheme = "http"

    def reset(self) -> None:
        """Forget routes and requests (one server serves a whole session; each test starts clean)."""
        with self._lock:
            self.routes = {}
            self.seen = []

    def route(self, method: str, path: str, reply: Route) -> None:
        self.routes[(method, path)] = reply

    def hits(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path == path]

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, ssl_context: ssl.SSLContext | None = None, *, keep_alive: bool = False) -> FakeServer:
        """Serve on a free port. `keep_alive`: HTTP/1.1 connections kept open between requests (many
        requests from one client, quickly); otherwise each answer closes its connection."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    method=self.command,
                    path=parts.path,
                    query={k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                with fake._lock:
                    fake.seen.append(seen)
                route = fake.routes.get((self.command, parts.path))
                if route is None:
                    reply = Reply(404, {"error": "no route"})
                else:
                    reply = route(seen) if callable(route) else route
                if reply.delay and fake._stopping.wait(reply.delay):
                    return
                if reply.drop:
                    self.close_connection = True
                    return
                payload = reply.payload()
                try:
                    self.send_response(reply.status)
                    headers = {"Content-Type": "application/json; charset=utf-8", **reply.headers}
                    if reply.content_length:
                        headers["Content-Length"] = str(len(payload))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if not keep_alive:
                        self.send_header("Connection", "close")
                    self.end_headers()
                    if reply.trickle:
                        for i in range(len(payload)):
                            self.wfile.write(payload[i : i + 1])
                            self.wfile.flush()
                            if fake._stopping.wait(reply.trickle):
                                return
                    else:
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    pass  # the client gave up (size cap, timeout): that is what some tests want

        class Server(ThreadingHTTPServer):
            # many clients at once (two delivery workers) wait in the backlog instead of being reset
            request_queue_size = 512

        server = Server(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if ssl_context is not None:
            server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
            self.scheme = "https"
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
