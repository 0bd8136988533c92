"""What responses and logs show instead of the real value."""

from __future__ import annotations

from api.kit.pii.ids import normalize_id_number

# --------------------------------------------------------------------------------------------------------------
# Masking
# --------------------------------------------------------------------------------------------------------------


def mask_id_number(value: str | None) -> str | None:
    """``3605**********2015``: first 4 and last 4 kept, one star per hidden character (18 characters in all),
    enough for a person to recognise his own number and nothing more. Short values are fully starred."""
    if value is None:
        return None
    v = normalize_id_number(value)
    if len(v) <= 8:
        return "*" * len(v)
    return v[:4] + "*" * (len(v) - 8) + v[-4:]


def mask_phone(value: str | None) -> str | None:
    """``138****0001``: first 3 and last 4 kept, the usual Chinese convention. Short values are fully starred."""
    if value is None:
        return None
    v = value.strip()
    if len(v) <= 7:
        return "*" * len(v)
    return v[:3] + "*" * (len(v) - 7) + v[-4:]


def mask_name(value: str | None) -> str | None:
    """``张*``, ``欧***``: the first character, then one star per remaining character; a single character is
    ``*`` (otherwise it would be shown in full)."""
    if value is None:
        return None
    v = value.strip()
    if len(v) <= 1:
        return "*" * len(v)
    return v[0] + "*" * (len(v) - 1)


def mask_address(value: str | None) -> str | None:
    """The first 6 characters (province/city/district) then ``****``. A short address keeps at most half of its
    characters so something is always hidden; the fixed ``****`` does not reveal the length."""
    if value is None:
        return None
    v = value.strip()
    if not v:
        return ""
    keep = min(6, len(v) // 2)
    return v[:keep] + "****"
