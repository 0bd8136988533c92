"""JSON-lines logging. Every line is one JSON object, so CR/LF in input can never forge a line."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from datetime import UTC, datetime
from typing import TextIO

import orjson

from api.kit.later import OnceLater
from api.kit.pii import ScrubFilter, clean_text

_stamp: tuple[int, str] = (-1, "")
_second: tuple[int, str] = (-1, "")


def utc_milliseconds(moment: float) -> str:
    """`moment` (a `time.time()`) in UTC to the millisecond, as every line gives its time (as
    `datetime.isoformat(timespec="milliseconds")` writes it). Made once per millisecond from the date and
    time of its second, formatted once per second: under load many lines share one, and formatting a
    datetime cost more than the rest of a line."""
    global _stamp, _second
    millisecond = int(moment * 1000)
    if millisecond != _stamp[0]:
        second, part = divmod(millisecond, 1000)
        if second != _second[0]:
            _second = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        _stamp = (millisecond, f"{_second[1]}.{part:03d}+00:00")
    return _stamp[1]


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            # log lines stay in UTC on purpose (operations compare them across hosts); business time is kit.clock
            "time": utc_milliseconds(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        message = record.getMessage()
        if message:
            line["message"] = message
        if record.exc_info or record.exc_text:
            # ScrubFilter leaves a scrubbed exc_text; format the exception only when it did not run
            line["error"] = record.exc_text or (
                self.formatException(record.exc_info) if record.exc_info else ""
            )
        return orjson.dumps(line, default=str).decode()


class LineStream(logging.StreamHandler):
    """The JSON-lines stream handler. A record is written at once, as by any stream handler; the access
    lines (`AccessLog.write`) are held and written together, in one write, `WRITE_EVERY` seconds after the
    first of them or once `HOLD_LINES` are held, as nginx's `access_log … buffer= flush=` does: a write
    per request was a measurable part of a catalogue read (and with PYTHONUNBUFFERED, as containers set
    it, every write to the stream is a system call). Held lines go out before any record, so the file keeps
    its order; outside a running event loop nothing is held, and `logging.shutdown` at exit writes what
    is. A process killed outright loses at most its last `WRITE_EVERY` seconds of access lines; records
    (warnings, errors, security events) are never held."""

    WRITE_EVERY = 0.1
    HOLD_LINES = 256

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._held: list[str] = []
        self._write_later = OnceLater(self.flush)

    def hold(self, line: str) -> None:
        """One access line (with its line end), written with the others held; call with the lock held."""
        self._held.append(line)
        if len(self._held) >= self.HOLD_LINES or not self._write_later.ask(self.WRITE_EVERY):
            self.flush()

    def _write_held(self) -> None:
        if self._held:
            text = "".join(self._held)
            self._held.clear()
            self.stream.write(text)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write_held()
        except Exception:  # noqa: BLE001 — as StreamHandler.emit: a failed write must not fail the caller
            self.handleError(record)
        super().emit(record)

    def flush(self) -> None:
        with self.lock or contextlib.nullcontext():
            self._write_held()
            super().flush()


class AccessLog:
    """The access log: one line per answered request, as the `ywt.access` logger would write it.

    When that line would go only to the handler `setup_logging` installs (no handler or filter added on
    `ywt.access` or `ywt`, none on the root logger), it is made here and handed to that handler's stream:
    the same JSON object, its text fields through the same scrubbing, without a LogRecord and the logging
    machinery around it (measured: most of the cost of a catalogue read was its access line). Otherwise
    (a test capturing records, an operator's handler) it is logged as any other record."""

    # the JSON of method and path values seen clean, so the next line with one is a dict lookup (only text
    # clean_text leaves as it is, up to that many characters: no personal data is held); emptied when full
    QUOTED_LENGTH = 256
    QUOTED_MAX = 4096

    def __init__(self, name: str = "ywt.access") -> None:
        self.logger = logging.getLogger(name)
        self._parent = logging.getLogger(name.rpartition(".")[0])
        self._root = logging.getLogger()
        self._after_time = '","level":"info","logger":' + orjson.dumps(name).decode() + ',"method":'
        self._quoted: dict[str, str] = {}

    def request(
        self, method: str | None, path: str, status: int, latency_ms: float, request_id: str | None
    ) -> None:
        """The line of one answered request: what `write` gives for these five fields, made as one string
        (measured under callgrind: the dict, the scrubbing calls and the JSON encoding of `write` were 44k of
        the 282k instructions of a catalogue read answered from memory)."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        handler = self._direct()
        if handler is None or type(latency_ms) is not float or type(status) is not int:
            self.write(
                {
                    "method": method,
                    "path": path,
                    "status": status,
                    "latency_ms": latency_ms,
                    "request_id": request_id,
                }
            )
            return
        text = "".join(
            (
                '{"time":"',
                utc_milliseconds(time.time()),
                self._after_time,
                "null" if method is None else self._quote(method),
                ',"path":',
                self._quote(path),
                ',"status":',
                str(status),
                ',"latency_ms":',
                # orjson writes a float as repr does, but below 1e-4 (no exponent) and NaN or infinity (null)
                repr(latency_ms)
                if 1e-4 <= abs(latency_ms) < 1e16 or latency_ms == 0
                else orjson.dumps(latency_ms).decode(),
                ',"request_id":',
                "null" if request_id is None else orjson.dumps(clean_text(request_id)).decode(),
                "}",
                handler.terminator,
            )
        )
        self._hold(handler, text)

    def _quote(self, text: str) -> str:
        """The JSON string of `clean_text(text)`."""
        quoted = self._quoted.get(text)
        if quoted is None:
            clean = clean_text(text)
            quoted = orjson.dumps(clean).decode()
            if clean is text and len(text) <= self.QUOTED_LENGTH:
                if len(self._quoted) >= self.QUOTED_MAX:
                    self._quoted.clear()
                self._quoted[text] = quoted
        return quoted

    def _direct(self) -> LineStream | None:
        logger, parent = self.logger, self._parent
        if logger.handlers or logger.filters or self._root.handlers or logger.propagate is False:
            return None
        if logger.parent is not parent or parent.filters or len(parent.handlers) != 1:
            return None
        handler = parent.handlers[0]
        if type(handler) is not LineStream or type(handler.formatter) is not JsonLines:
            return None
        if handler.level > logging.INFO or [type(f) for f in handler.filters] != [ScrubFilter]:
            return None
        return handler

    def write(self, fields: dict[str, object]) -> None:
        """`fields`: names as the code gives them, values str, int, float or None (strings are scrubbed)."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        handler = self._direct()
        if handler is None:
            self.logger.info("", extra={"fields": fields})
            return
        line: dict[str, object] = {
            "time": utc_milliseconds(time.time()),
            "level": "info",
            "logger": self.logger.name,
        }
        for name, value in fields.items():
            line[name] = clean_text(value) if isinstance(value, str) else value
        self._hold(handler, orjson.dumps(line, default=str).decode() + handler.terminator)

    @staticmethod
    def _hold(handler: LineStream, text: str) -> None:
        handler.acquire()
        try:
            handler.hold(text)
        except Exception:  # noqa: BLE001 — as logging does: a failed write must not fail the request
            handler.handleError(logging.makeLogRecord({"msg": "access log write failed"}))
        finally:
            handler.release()


def setup_logging(level: str) -> None:
    # what the JSON lines never show, not computed for each record (the logging HOWTO's "Optimization"):
    # the caller's file and line (a walk up the stack), the thread and the process
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger("ywt")
    root.setLevel(level)
    if not any(isinstance(h.formatter, JsonLines) for h in root.handlers):
        handler = LineStream(sys.stdout)
        handler.setFormatter(JsonLines())
        # on the handler, so records from every child logger (ywt.auth, ywt.errors …) pass through it
        handler.addFilter(ScrubFilter())
        root.addHandler(handler)
    root.propagate = True
