"""Last line of defence: no log line carries an ID number, phone or token, and none is forged with CR/LF."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from api.kit.pii.masking import mask_id_number, mask_phone

# --------------------------------------------------------------------------------------------------------------
# Log scrubbing
# --------------------------------------------------------------------------------------------------------------

# Anything shaped like an ID number (date-shaped positions 7-14), right check digit or not: a mistyped
# number is still somebody's personal data. Not part of a longer digit run (order numbers and the like).
_SCRUB_ID_RE = re.compile(r"(?<![0-9])[0-9]{6}(?:19|20)[0-9]{2}[01][0-9][0-3][0-9][0-9]{3}[0-9Xx](?![0-9])")
# Mainland mobile, optionally with a +86/0086/86 prefix and 3-4-4 spaces or hyphens, not inside a longer run.
_SCRUB_PHONE_RE = re.compile(
    r"(?<![0-9])(?P<prefix>(?:\+|00)?86[- ]?)?(?P<phone>1[3-9][0-9][- ]?[0-9]{4}[- ]?[0-9]{4})(?![0-9])"
)
_SCRUB_BEARER_RE = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+[A-Za-z0-9._~+/-]+=*", re.IGNORECASE)
_SCRUB_JWT_RE = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

_LINE_BREAKS = {
    ord("\r"): "\\r",
    ord("\n"): "\\n",
    ord("\v"): "\\v",
    ord("\f"): "\\f",
    0x1C: "\\x1c",
    0x1D: "\\x1d",
    0x1E: "\\x1e",
    0x85: "\\x85",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


# What every string that scrub() or one_line() would change contains: 17 digits in a row (an ID number), the
# first eight characters of a mobile (1, 3-9, a digit, perhaps a separator, four digits), "eyJ" (a JWT), the
# word Bearer or Basic, or a line break. Most log values (paths with item codes and ids, methods, request
# ids) have none of these: one search of this pattern lets them through unchanged, where the four patterns
# above and the translation would each scan them (tests/test_pii.py compares both ways on generated strings).
_SUSPECT_RE = re.compile(
    r"[0-9]{17}|1[3-9][0-9][- ]?[0-9]{4}|eyJ|bearer|basic|[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]",
    re.IGNORECASE,
)


def _mask_phone_match(m: re.Match[str]) -> str:
    digits = re.sub(r"[- ]", "", m.group("phone"))
    return (m.group("prefix") or "") + (mask_phone(digits) or "")


def scrub(text: str) -> str:
    """Mask ID-number-shaped strings (``3605**********2015``), mainland mobiles (``138****0001``),
    ``Bearer``/``Basic`` credentials and JWT-like tokens (``[token]``) anywhere in ``text``."""
    if not isinstance(text, str) or not text:
        return text
    text = _SCRUB_BEARER_RE.sub(lambda m: f"{m.group('scheme')} [token]", text)
    text = _SCRUB_JWT_RE.sub("[token]", text)
    text = _SCRUB_ID_RE.sub(lambda m: mask_id_number(m.group(0)) or "", text)
    return _SCRUB_PHONE_RE.sub(_mask_phone_match, text)


def one_line(text: str) -> str:
    """Replace CR, LF and every other character Python treats as a line break with a visible escape, so
    user input written to a log cannot start a forged line."""
    return text.translate(_LINE_BREAKS)


class KnownClean(str):
    """A string its maker knows carries nothing scrubbing would change (a request id it generated from hex
    digits): log fields holding one are written as they are. Never wrap text that came from outside."""

    __slots__ = ()


# Strings (up to _KNOWN_LENGTH characters) that the quick look let through, so the next look at the same
# text is one dict lookup: log lines repeat their keys, methods and paths. Only text found clean is kept (no
# personal data is held here), and the dict is emptied when full.
_KNOWN_CLEAN: dict[str, None] = {}
_KNOWN_LENGTH = 256
_KNOWN_MAX = 4096


def clean_text(text: str) -> str:
    """``one_line(scrub(text))``, with one quick look first for anything either would change."""
    if text in _KNOWN_CLEAN or type(text) is KnownClean:
        return text
    if _SUSPECT_RE.search(text) is None:
        if len(text) <= _KNOWN_LENGTH:
            if len(_KNOWN_CLEAN) >= _KNOWN_MAX:
                _KNOWN_CLEAN.clear()
            _KNOWN_CLEAN[text] = None
        return text
    return one_line(scrub(text))


# values a log field may hold that can carry no text: left as they are without a closer look
_PLAIN = frozenset({int, float, bool, type(None)})


def _clean(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    return value


_STANDARD_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime", "taskName"}
)


class ScrubFilter(logging.Filter):
    """Rewrites each record so no handler can write personal data, tokens or line breaks from input:
    the message is formatted first (so ``log.info("id %s", id_number)`` is caught), then scrubbed and made one
    line; ``record.fields`` (the JSON-lines extra fields), other string ``extra=`` attributes and any
    exception text are scrubbed too. Attach it to handlers: a logger's own filters do not see records
    propagated from child loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not make the logging call raise
            message = f"{record.msg!s} {record.args!r}"
        record.msg = clean_text(message) if message else message
        record.args = ()
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            record.fields = _clean(fields)  # a new dict: the caller's dict is left alone
        attributes = vars(record)
        # the attributes a caller's extra= added (one set difference, not a look at each of ~25 standard ones)
        for name in attributes.keys() - _STANDARD_RECORD_ATTRS:
            value = attributes[name]
            if name != "fields" and isinstance(value, str):
                attributes[name] = clean_text(value)
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when set; tracebacks keep their line breaks (a formatter frames them).
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True
