"""The access log's own path (api/kit/logs.py AccessLog): the same line as the logging path, scrubbed, held
for at most LineStream.WRITE_EVERY inside an event loop, and out of the way whenever logging is configured
otherwise (a capturing handler sees every line as a record)."""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import datetime

import orjson
import pytest

from api.kit.logs import AccessLog, JsonLines, LineStream
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
