"""The shared outbound HTTP rules (SECURITY row 16) against a real server on 127.0.0.1."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
import time
from pathlib import Path

import httpx
import pytest
import stamina
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import BaseModel

from api.kit.errors import UpstreamError, UpstreamTimeout
from integrations.http import call_json, longest_call, make_client, tls_context, validate_answer
from tests.integrations.fakeserver import FakeServer, Reply
from tests.support.server import free_port

SECRET = "s3cr3t-never-shown"


async def test_make_client_rules() -> None:
    client = make_client("https://provider.example", 2.5)
    try:
        assert client.follow_redirects is False
        assert client.base_url == httpx.URL("https://provider.example")
        t = client.timeout
        assert (t.connect, t.read, t.write, t.pool) == (2.5, 2.5, 2.5, 2.5)
        context = tls_context()
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    finally:
        await client.aclose()


async def test_success_returns_json_and_sends_the_request(fake: FakeServer) -> None:
    fake.route("POST", "/api/thing", Reply(200, {"ok": True, "名字": "张三"}))
    async with make_client(fake.url, 2) as client:
        data = await call_json(
            client, "POST", "/api/thing", params={"q": "1"}, json={"a": 1}, headers={"X-Key": "k"}
        )
    assert data == {"ok": True, "名字": "张三"}
    [seen] = fake.hits("/api/thing")
    assert seen.method == "POST"
    assert seen.query == {"q": "1"}
    assert seen.headers["x-key"] == "k"
    assert seen.json() == {"a": 1}


@pytest.mark.parametrize("status", [400, 401, 404, 500, 503])
async def test_error_status_is_upstream_error(fake: FakeServer, status: int) -> None:
    fake.route("GET", "/x", Reply(status, {"message_id": "looks fine but the status is not"}))
    async with make_client(fake.url, 2) as client:
        with pytest.raises(UpstreamError) as err:
            await call_json(client, "GET", "/x")
    assert str(status) in str(err.value)
    assert err.value.status == 502


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_is_not_followed(fake: FakeServer, status: int) -> None:
    fake.route("GET", "/x", Reply(status, {}, headers={"Location": "/evil"}))
    fake.route("GET", "/evil", Reply(200, {"followed": True}))
    async with make_client(fake.url, 2) as client:
        with pytest.raises(UpstreamError, match="重定向"):
            await call_json(client, "GET", "/x")
    assert len(fake.hits("/x")) == 1
    assert fake.hits("/evil") == []


@pytest.mark.parametrize("body", [b"<html>busy</html>", b"", b'{"a": 1', b"\xff\xfe"])
async def test_body_that_is_not_json_is_upstream_error(fake: FakeServer, body: bytes) -> None:
    fake.route("GET", "/x", Reply(200, body=body))
    async with make_client(fake.url, 2) as client:
        with pytest.raises(UpstreamError, match="JSON"):
            await call_json(client, "GET", "/x")


async def test_size_cap_with_declared_length(fake: FakeServer) -> None:
    # the body would take minutes to arrive: a declared length over the cap is refused before reading it
    fake.route("GET", "/big", Reply(200, body=b'"' + b"a" * 2000 + b'"', trickle=0.05))
    async with make_client(fake.url, 2) as client:
        started = time.monotonic()
        with pytest.raises(UpstreamError, match="过大"):
            await call_json(client, "GET", "/big", max_bytes=1000)
    assert time.monotonic() - started < 1.0


async def test_size_cap_while_streaming_without_length(fake: FakeServer) -> None:
    payload = b'"' + b"a" * 200_000 + b'"'
    fake.route("GET", "/big", Reply(200, body=payload, content_length=False))
    fake.route("GET", "/fits", Reply(200, body=payload, content_length=False))
    async with make_client(fake.url, 2) as client:
        with pytest.raises(UpstreamError, match="过大"):
            await call_json(client, "GET", "/big", max_bytes=100_000)
        # the same body under a cap it fits: the cap, not the body, caused the failure
        assert await call_json(client, "GET", "/fits", max_bytes=len(payload)) == "a" * 200_000


async def test_default_cap_is_one_megabyte(fake: FakeServer) -> None:
    fake.route("GET", "/big", Reply(200, body=b'"' + b"a" * 1_100_000 + b'"', content_length=False))
    async with make_client(fake.url, 2) as client:
        with pytest.raises(UpstreamError, match="过大"):
            await call_json(client, "GET", "/big")


async def test_slow_answer_is_timeout(fake: FakeServer) -> None:
    fake.route("GET", "/slow", Reply(200, {"ok": True}, delay=3))
    async with make_client(fake.url, 0.3) as client:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout) as err:
            await call_json(client, "GET", "/slow")
    assert time.monotonic() - started < 1.0
    assert err.value.status == 504


async def test_trickling_body_hits_the_overall_deadline(fake: FakeServer) -> None:
    # every byte arrives well within the read timeout, the whole body does not: httpx alone would wait 2 s
    fake.route("GET", "/trickle", Reply(200, body=b'"' + b"a" * 18 + b'"', trickle=0.1))
    async with make_client(fake.url, 0.3) as client:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await call_json(client, "GET", "/trickle")
    assert time.monotonic() - started < 1.0


async def test_connection_refused_is_upstream_error() -> None:
    async with make_client(f"http://127.0.0.1:{free_port()}", 1) as client:
        with pytest.raises(UpstreamError, match="无法访问"):
            await call_json(client, "GET", "/x")


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


async def test_tls_certificate_is_verified(tmp_path: Path) -> None:
    context, cert_file = _self_signed(tmp_path)
    server = FakeServer().start(ssl_context=context)
    try:
        server.route("GET", "/x", Reply(200, {"ok": True}))
        # the server works for a client that trusts its certificate...
        trusting = ssl.create_default_context(cafile=str(cert_file))
        async with httpx.AsyncClient(base_url=server.url, verify=trusting) as client:
            assert await call_json(client, "GET", "/x") == {"ok": True}
        # ...and make_client, which trusts only real CAs, refuses it
        async with make_client(server.url, 2) as client:
            with pytest.raises(UpstreamError, match="无法访问"):
                await call_json(client, "GET", "/x")
        assert len(server.hits("/x")) == 1
    finally:
        server.stop()


async def test_no_secret_in_messages_or_logs(fake: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    fake.route("GET", "/x", Reply(500, {"echo": SECRET}))
    fake.route("GET", "/r", Reply(302, {}, headers={"Location": "/evil"}))
    fake.route("GET", "/slow", Reply(200, {}, delay=2))
    caplog.set_level(logging.DEBUG)
    messages = []
    async with make_client(fake.url, 0.3) as client:
        for path in ("/x", "/r", "/slow"):
            with pytest.raises((UpstreamError, UpstreamTimeout)) as err:
                await call_json(
                    client, "GET", path, params={"secret": SECRET}, headers={"Authorization": SECRET}
                )
            messages.append(str(err.value))
            messages.append(err.value.detail)
    assert fake.hits("/x")[0].query == {"secret": SECRET}  # it was really sent
    assert all(SECRET not in m for m in messages)
    assert SECRET not in caplog.text
    assert "/x" in caplog.text  # the log does name the call, without its query
    assert "?<redacted>" in caplog.text  # httpx's own request line is kept, its query cut


class _Shape(BaseModel):
    message_id: str


@pytest.mark.parametrize("data", [{"id": "1"}, [], "text", None, {"message_id": None}])
def test_validate_answer_wrong_shape(data: object) -> None:
    with pytest.raises(UpstreamError):
        validate_answer(_Shape, data)
    assert validate_answer(_Shape, {"message_id": "m1", "extra": 1}).message_id == "m1"


# ---- retries ------------------------------------------------------------------------------------------------


def once_then(first: Reply, then: Reply):
    """A route that answers `first` to the first request and `then` to every later one."""
    seen = []

    def answer(_request) -> Reply:
        seen.append(_request)
        return first if len(seen) == 1 else then

    return answer


TRANSIENT = {
    "502": Reply(502, {"busy": True}),
    "503": Reply(503, {"busy": True}),
    "504": Reply(504, {"busy": True}),
    "dropped connection": Reply(drop=True),
    "timeout": Reply(200, {"late": True}, delay=1),
}


@pytest.mark.parametrize("first", TRANSIENT.values(), ids=TRANSIENT.keys())
async def test_a_get_that_fails_once_in_passing_is_tried_again_and_succeeds(fake: FakeServer, first) -> None:
    fake.route("GET", "/x", once_then(first, Reply(200, {"ok": True})))
    async with make_client(fake.url, 0.3) as client:
        assert await call_json(client, "GET", "/x", params={"q": "1"}) == {"ok": True}
    assert [(s.method, s.query) for s in fake.hits("/x")] == [("GET", {"q": "1"})] * 2


@pytest.mark.parametrize("attempts", [1, 2, 3])
async def test_a_get_is_tried_at_most_attempts_times(fake: FakeServer, attempts: int) -> None:
    fake.route("GET", "/x", Reply(503, {}))
    async with make_client(fake.url, 0.3) as client:
        with pytest.raises(UpstreamError, match="503"):
            await call_json(client, "GET", "/x", attempts=attempts)
    assert len(fake.hits("/x")) == attempts


async def test_the_last_try_decides_the_answer(fake: FakeServer) -> None:
    fake.route("GET", "/x", once_then(Reply(503, {}), Reply(200, {}, delay=1)))
    async with make_client(fake.url, 0.3) as client:
        with pytest.raises(UpstreamTimeout):
            await call_json(client, "GET", "/x")
    assert len(fake.hits("/x")) == 2


@pytest.mark.parametrize("first", TRANSIENT.values(), ids=TRANSIENT.keys())
async def test_a_post_is_sent_once_whatever_happens(fake: FakeServer, first) -> None:
    fake.route("POST", "/send", once_then(first, Reply(200, {"sent": True})))
    async with make_client(fake.url, 0.3) as client:
        with pytest.raises((UpstreamError, UpstreamTimeout)):
            await call_json(client, "POST", "/send", json={"to": "13800000001"}, attempts=3)
    assert len(fake.hits("/send")) == 1


async def test_a_post_its_caller_marks_idempotent_is_tried_again(fake: FakeServer) -> None:
    fake.route("POST", "/lookup", once_then(Reply(drop=True), Reply(200, {"found": True})))
    async with make_client(fake.url, 0.3) as client:
        assert await call_json(client, "POST", "/lookup", json={"id": 1}, idempotent=True) == {"found": True}
    assert [s.json() for s in fake.hits("/lookup")] == [{"id": 1}] * 2


@pytest.mark.parametrize(
    "first",
    [
        Reply(500, {}),
        Reply(404, {}),
        Reply(429, {}),
        Reply(302, {}, headers={"Location": "/elsewhere"}),
        Reply(200, body=b"<html>not json</html>"),
        Reply(200, body=b'"' + b"a" * 2000 + b'"'),
    ],
    ids=["500", "404", "429", "redirect", "not json", "too big"],
)
async def test_a_get_that_fails_for_good_is_not_repeated(fake: FakeServer, first: Reply) -> None:
    fake.route("GET", "/x", once_then(first, Reply(200, {"ok": True})))
    async with make_client(fake.url, 0.3) as client:
        with pytest.raises(UpstreamError):
            await call_json(client, "GET", "/x", max_bytes=1000, attempts=3)
    assert len(fake.hits("/x")) == 1


async def test_a_certificate_that_does_not_verify_is_not_tried_again(tmp_path: Path) -> None:
    context, _ = _self_signed(tmp_path)
    server = FakeServer().start(ssl_context=context)
    connections = []
    accept = server._server.get_request

    def counted_accept():
        connections.append(1)
        return accept()

    server._server.get_request = counted_accept
    try:
        async with make_client(server.url, 1) as client:
            with pytest.raises(UpstreamError, match="无法访问"):
                await call_json(client, "GET", "/x", attempts=3)
    finally:
        server.stop()
    assert len(connections) == 1


async def test_the_backoff_is_short_and_bounded(fake: FakeServer) -> None:
    fake.route("GET", "/x", once_then(Reply(503, {}), Reply(200, {"ok": True})))
    with stamina.set_testing(False):  # the real backoff, as in production
        async with make_client(fake.url, 0.3) as client:
            started = time.monotonic()
            assert await call_json(client, "GET", "/x") == {"ok": True}
            waited = time.monotonic() - started
    assert 0.1 <= waited < 0.1 + 0.1 + 0.3  # the first backoff is 0.1 s plus up to 0.1 s of jitter
    assert longest_call(5.0, 2) == pytest.approx(2 * 5.0 + 0.2)
    assert longest_call(5.0, 1) == 5.0
