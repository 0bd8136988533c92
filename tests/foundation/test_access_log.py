"""The access log's own path (api/kit/logs.py AccessLog): the same line as the logging path, scrubbed, held
for at most LineStream.WRITE_EVERY inside an event loop, and out of the way whenever logging is configured
otherwise (a capturing handler sees every line as a record)."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.kit.logs import AccessLog, JsonLines, LineStream, utc_milliseconds
from api.kit.pii import KnownClean, ScrubFilter

ID_NUMBER = "360502198803152015"
PHONE = "13800000001"


@pytest.fixture
def stream(monkeypatch):
    """A logger tree of its own set up as setup_logging sets up `ywt`, with no handler on the root logger
    (pytest's capturing handlers would otherwise route every line through logging)."""
    parent = logging.getLogger("ywtaccesstest")
    parent.setLevel(logging.INFO)
    out = io.StringIO()
    handler = LineStream(out)
    handler.setFormatter(JsonLines())
    handler.addFilter(ScrubFilter())
    monkeypatch.setattr(parent, "handlers", [handler])
    return out


def direct(monkeypatch) -> AccessLog:
    """The access log of that tree, with the root logger's handlers (pytest's, added for the test's own
    phase) out of the way, so its lines take the direct path."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    access = AccessLog("ywtaccesstest.access")
    assert access._direct() is not None
    return access


def lines(out: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def fields(path: str, request_id: str) -> dict[str, object]:
    return {"method": "GET", "path": path, "status": 200, "latency_ms": 0.4, "request_id": request_id}


def test_the_direct_line_is_the_line_logging_writes(stream, monkeypatch):
    access = direct(monkeypatch)
    given = fields("/api/v1/items/360500-CL-001", "client-given-id-1")
    access.write(given)  # outside an event loop: written at once
    logging.getLogger("ywtaccesstest.access").info("", extra={"fields": given})
    written, logged = lines(stream)
    moments = [datetime.fromisoformat(line.pop("time")) for line in (written, logged)]
    # the same form (UTC, milliseconds) and the same moment, give or take the time between the two calls
    assert all(m.tzinfo is not None and m.microsecond % 1000 == 0 for m in moments)
    assert abs((moments[0] - moments[1]).total_seconds()) < 1
    assert written == logged == {"level": "info", "logger": "ywtaccesstest.access", **given}


def test_personal_data_in_the_path_or_a_given_request_id_is_masked(stream, monkeypatch):
    direct(monkeypatch).write(fields(f"/x/{ID_NUMBER}/{PHONE}", f"id-{PHONE}"))
    text = stream.getvalue()
    assert ID_NUMBER not in text and PHONE not in text
    (line,) = lines(stream)
    assert line["path"] == "/x/3605**********2015/138****0001"
    assert line["request_id"] == "id-138****0001"


def test_a_request_id_marked_checked_is_written_as_it_is(stream, monkeypatch):
    direct(monkeypatch).write(fields("/a", KnownClean("0f" * 16)))
    assert lines(stream)[0]["request_id"] == "0f" * 16


def test_in_a_loop_lines_are_held_then_written_together_before_any_later_record(stream, monkeypatch):
    access = direct(monkeypatch)

    async def scenario() -> None:
        access.write(fields("/first", "request-one"))
        access.write(fields("/second", "request-two"))
        assert stream.getvalue() == ""  # held
        await asyncio.sleep(LineStream.WRITE_EVERY + 0.1)
        assert [line["path"] for line in lines(stream)] == ["/first", "/second"]
        access.write(fields("/third", "request-three"))
        logging.getLogger("ywtaccesstest.other").warning("a record")
        # the record is never held, and the line held before it is written first
        assert [line.get("path", line.get("message")) for line in lines(stream)] == [
            "/first",
            "/second",
            "/third",
            "a record",
        ]

    asyncio.run(scenario())


def test_too_many_held_lines_are_written_without_waiting(stream, monkeypatch):
    access = direct(monkeypatch)

    async def scenario() -> None:
        for n in range(LineStream.HOLD_LINES):
            access.write(fields(f"/{n}", "request-many"))
        assert len(lines(stream)) == LineStream.HOLD_LINES

    asyncio.run(scenario())


def test_a_handler_of_the_callers_own_gets_every_line_as_a_record(stream, caplog):
    caplog.set_level(logging.INFO, logger="ywtaccesstest.access")
    assert AccessLog("ywtaccesstest.access")._direct() is None
    AccessLog("ywtaccesstest.access").write(fields(f"/x/{PHONE}", "request-caught"))
    (record,) = [r for r in caplog.records if r.name == "ywtaccesstest.access"]
    assert record.fields["path"] == "/x/138****0001"  # through the ScrubFilter of the handler
    assert lines(stream)[0]["request_id"] == "request-caught"


def test_below_info_nothing_is_written(stream, monkeypatch):
    access = direct(monkeypatch)
    logging.getLogger("ywtaccesstest").setLevel(logging.WARNING)
    access.write(fields("/quiet", "request-quiet"))
    assert stream.getvalue() == ""


def test_lines_held_when_a_loop_closed_are_written_in_the_next_one(stream, monkeypatch):
    """A loop that ends before its timer fires (two asyncio.run calls in one process) does not leave the
    next loop's lines held with nobody to write them."""
    access = direct(monkeypatch)

    async def one_line(path: str) -> None:
        access.write(fields(path, "request-loop"))

    asyncio.run(one_line("/first-loop"))  # its timer never fires: the loop is gone
    assert stream.getvalue() == ""

    async def second() -> None:
        await one_line("/second-loop")
        await asyncio.sleep(LineStream.WRITE_EVERY + 0.1)

    asyncio.run(second())
    assert [line["path"] for line in lines(stream)] == ["/first-loop", "/second-loop"]


_TIME = re.compile(r'^\{"time":"[^"]*",')


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.none() | st.sampled_from(["GET", "POST", "DELETE"]) | st.text(max_size=8),
    path=st.text(max_size=40) | st.sampled_from([f"/x/{PHONE}", f"/x/{ID_NUMBER}", '/a"b\\c', "/a\u2028b"]),
    status=st.integers(100, 599),
    latency=st.floats(allow_nan=True, allow_infinity=True) | st.floats(0, 10**9).map(lambda v: round(v, 2)),
    request_id=st.none()
    | st.text(max_size=40)
    | st.just(f"id-{PHONE}")
    | st.builds(KnownClean, st.just("0f" * 16)),
)
def test_a_request_s_line_is_byte_for_byte_the_line_write_gives(
    stream, monkeypatch, method, path, status, latency, request_id
):
    access = direct(monkeypatch)
    stream.seek(0)
    stream.truncate()
    access.request(method, path, status, latency, request_id)  # outside a loop: written at once
    access.request(method, path, status, latency, request_id)  # the second time from what was kept
    access.write(
        {"method": method, "path": path, "status": status, "latency_ms": latency, "request_id": request_id}
    )
    first, again, written = (_TIME.sub("", line) for line in stream.getvalue().splitlines())
    assert first == again == written


def test_what_a_request_s_line_keeps_for_the_next_is_never_personal_data(stream, monkeypatch):
    access = direct(monkeypatch)
    access.request("GET", f"/x/{PHONE}", 200, 0.5, "request-kept")
    access.request("GET", "/api/v1/items/360500-CL-001", 200, 0.5, "request-kept")
    assert PHONE not in stream.getvalue()
    assert list(access._quoted) == ["GET", "/api/v1/items/360500-CL-001"]


@given(st.integers(0, 4_102_444_800_000), st.integers(10, 990))
def test_every_line_s_time_is_the_datetime_of_its_millisecond_in_utc(millisecond, micro):
    moment = millisecond / 1000 + micro / 1_000_000  # somewhere inside that millisecond
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millisecond)
    assert utc_milliseconds(moment) == expected.isoformat(timespec="milliseconds")
