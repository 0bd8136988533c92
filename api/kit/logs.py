"""JSON-lines logging. Every line is one JSON object, so CR/LF in input can never forge a line."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from api.kit.pii import ScrubFilter


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            # log lines stay in UTC on purpose (operations compare them across hosts); business time is kit.clock
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
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


def setup_logging(level: str) -> None:
    root = logging.getLogger("ywt")
    root.setLevel(level)
    if not any(isinstance(h.formatter, JsonLines) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonLines())
        # on the handler, so records from every child logger (ywt.auth, ywt.errors …) pass through it
        handler.addFilter(ScrubFilter())
        root.addHandler(handler)
    root.propagate = True
