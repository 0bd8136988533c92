"""The HTTP/1.1 server taking raw UTF-8 in the request target, as many servers do.

`curl '127.0.0.1:8000/api/v1/items?q=身份证'` sends the UTF-8 bytes of 身份证 as they are. RFC 9112 asks for an
ASCII request target, and Sanic 25 refuses any other: `sanic.http.http1.Http.http1_request_header` decodes the
head (UTF-8, `surrogateescape`), splits the request line into `method, self.url, protocol`, then answers
`self.url.encode("ASCII")` failing with 400 "URL may only contain US-ASCII characters." Such a target is an
IRI; RFC 3987 §3.1 maps an IRI to a URI by percent-encoding the UTF-8 bytes of every non-ASCII character,
and that is what this does, at the one point where Sanic stores the target: `url` of `Http` (one of its
slots) becomes a property whose setter percent-encodes every byte ≥ 0x80 (bytes that are not UTF-8 too, kept
by `surrogateescape`). Nothing else of the parser changes; the request then reads `?q=%E8%BA%AB…` and Sanic
decodes it as it decodes any percent-encoded query.

Sanic chooses its HTTP/1 class through `HttpProtocol.HTTP_CLASS` and its protocol through the `protocol`
argument of `run`/`prepare`; `YwtSanic.prepare` makes `Utf8TargetProtocol` the default, so `app.run(…)` and
`sanic api.app:create_app --factory` (which calls `prepare`) both use it.

A request Sanic refuses before it has one (a malformed request line, say) is answered on an empty request
whose method Sanic sets to "NONE"; `Utf8TargetHttp` gives it the method of the request line when that is a
well-formed token, so the access log names the real method.
"""

from __future__ import annotations

import re
from typing import Any

from sanic import Sanic
from sanic.http import Http
from sanic.server.protocols.http_protocol import HttpProtocol

_URL_SLOT: Any = Http.__dict__["url"]  # the slot where Http keeps the request target
_METHOD = re.compile(rb"([A-Z]{1,20}) ")


def ascii_target(target: str) -> str:
    """`target` (decoded as Sanic decodes the head: UTF-8, surrogateescape) with every byte ≥ 0x80 of it
    percent-encoded; an ASCII target is returned as it is."""
    if target.isascii():
        return target
    raw = target.encode("utf-8", "surrogateescape")
    return "".join(chr(byte) if byte < 0x80 else f"%{byte:02X}" for byte in raw)


class Utf8TargetHttp(Http):
    __slots__ = ()

    @property
    def url(self) -> str | None:
        return _URL_SLOT.__get__(self, Http)

    @url.setter
    def url(self, value: str | None) -> None:
        _URL_SLOT.__set__(self, ascii_target(value) if value else value)

    def create_empty_request(self) -> None:
        super().create_empty_request()
        found = _METHOD.match(bytes(self.recv_buffer[:21]))
        if found:
            self.request.method = found.group(1).decode("ascii")


class Utf8TargetProtocol(HttpProtocol):
    HTTP_CLASS = Utf8TargetHttp


class YwtSanic(Sanic):
    """Sanic serving HTTP/1.1 with `Utf8TargetProtocol` unless told another protocol."""

    def prepare(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("protocol") is None and not self.websocket_enabled:
            kwargs["protocol"] = Utf8TargetProtocol
        super().prepare(*args, **kwargs)
