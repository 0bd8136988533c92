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


def utc_milliseconds(moment: float) -> str:
    """`moment` (a `time.time()`) in UTC to the millisecond, as every line gives its time; formatted once per
    millisecond: under load many lines share one, and the formatting cost more than the rest of a line."""
    global _stamp
    millisecond = int(moment * 1000)
    if millisecond != _stamp[0]:
        _stamp = (millisecond, datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds"))
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

    def __init__(self, name: str = "ywt.access") -> None:
        self.logger = logging.getLogger(name)
        self._parent = logging.getLogger(name.rpartition(".")[0])
        self._root = logging.getLogger()

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
        text = orjson.dumps(line, default=str).decode() + handler.terminator
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
