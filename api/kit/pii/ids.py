"""ID numbers (GB 11643-1999, ISO 7064 MOD 11-2) and mainland mobile numbers: validated before storing."""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from api.kit import clock

# --------------------------------------------------------------------------------------------------------------
# ID numbers
# --------------------------------------------------------------------------------------------------------------

# ISO 7064 MOD 11-2 weights for positions 1..17: 2^(17-i) mod 11.
_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK_CHARS = "10X98765432"  # index = weighted sum mod 11
# ASCII only: Python's \d also matches e.g. Arabic-Indic digits, which int() would happily accept.
_ID_SHAPE_RE = re.compile(r"[0-9]{17}[0-9X]")


def normalize_id_number(value: str) -> str:
    """Canonical form (NFKC, stripped, upper-case X) so the same person always gives the same stored value and
    blind index, whether typed with full-width digits, a lower-case x or stray spaces."""
    return unicodedata.normalize("NFKC", value).strip().upper()


def _id_check_char(first17: str) -> str:
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def id_number_problem(value: str, *, today: date | None = None) -> str | None:
    """Why ``value`` is not a valid resident ID number (a short Chinese reason for the user), or None if valid.

    Valid: 17 digits + [0-9X], a real date of birth at positions 7-14 from 1900 up to today (China time),
    and the GB 11643 check digit. ``today`` is only for tests.
    """
    if not isinstance(value, str):
        return "格式不正确"
    v = normalize_id_number(value)
    if len(v) != 18:
        return "应为18位"
    if not _ID_SHAPE_RE.fullmatch(v):
        return "前17位应为数字，末位应为数字或X"
    try:
        born = date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return "出生日期不正确"
    if today is None:
        today = clock.now().date()
    if born.year < 1900 or born > today:
        return "出生日期不正确"
    if _id_check_char(v[:17]) != v[17]:
        return "校验码不正确"
    return None


def is_valid_id_number(value: str) -> bool:
    """True when ``value`` passes every check of ``id_number_problem``."""
    return id_number_problem(value) is None


def birth_date(id_number: str) -> date:
    """Date of birth encoded in a valid ID number; ValueError (with the reason) for an invalid one, so a bad
    number can never yield a made-up date."""
    problem = id_number_problem(id_number)
    if problem is not None:
        raise ValueError(f"身份证号码无效：{problem}")
    v = normalize_id_number(id_number)
    return date(int(v[6:10]), int(v[10:12]), int(v[12:14]))


# --------------------------------------------------------------------------------------------------------------
# Phones
# --------------------------------------------------------------------------------------------------------------

# Anchored with \A...\Z (not ^...$, where $ also matches before a trailing newline), so .match and .search are
# as safe as .fullmatch. Pass the compiled pattern to pydantic: it then uses Python's re engine.
PHONE_RE = re.compile(r"\A1[3-9][0-9]{9}\Z")


def is_mainland_mobile(phone: str) -> bool:
    """True for an 11-digit mainland China mobile number (1[3-9] + 9 digits), exactly, with nothing around it."""
    return isinstance(phone, str) and PHONE_RE.fullmatch(phone) is not None
