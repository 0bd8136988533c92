"""The QR code of a presentation, as SVG, made by segno."""

from __future__ import annotations

import io

import segno

# version 10 at level M holds 311 alphanumeric characters; a token is 141 (tokens.TOKEN_BYTES in base45)
MAX_VERSION = 10


# segno evaluates all eight mask patterns and keeps the one with the lowest penalty (ISO/IEC 18004 §7.8.3):
# 8 of the 10 ms a code took. Every pattern is a valid QR code that every reader reads; this one is fixed, and
# the tests decode the codes made with it (zxing-cpp). Measured: 1.6 ms with the SVG's 0.8 ms beside it.
MASK = 1


def svg(token: str) -> str:
    """The token in a QR code at error level M (segno picks the alphanumeric mode for base45 text), 4 pixels a
    module with the standard quiet zone; ValueError for a token that would need more than version 10."""
    code = segno.make_qr(token, error="m", boost_error=False, mask=MASK)
    if code.version > MAX_VERSION:  # type: ignore[operator]
        raise ValueError(f"token needs QR version {code.version}")
    out = io.BytesIO()
    code.save(out, kind="svg", scale=4, border=4, xmldecl=False, svgns=True, title="亮证码")
    return out.getvalue().decode("utf-8")
