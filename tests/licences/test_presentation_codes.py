"""The presentation token and its QR code as an outside verifier meets them: the token fits a version-10 QR code
at level M, the served SVG decodes back to the token (zxing-cpp, from the SVG's own path), and the token's
signature checks offline against /.well-known/licence-keys.json with nothing of ours but the README's layout."""

from __future__ import annotations

import base64
import re
import struct

import base45
import pytest
import segno
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.licences.conftest import licences_of, present

pytestmark = pytest.mark.usefixtures("catalog")

ALPHANUMERIC = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
_STEP = re.compile(r"([MmHhVv])\s*(-?\d+(?:\.\d+)?)(?:[ ,](-?\d+(?:\.\d+)?))?")


def raster(svg: str, pixel: int = 4) -> tuple[memoryview, int, int]:
    """segno's SVG (one path of horizontal strokes, `scale(n)`) drawn into a grayscale image, written out here
    from the SVG text: what a phone's camera would see, without any imaging library."""
    width = int(re.search(r'width="(\d+)"', svg).group(1))
    scale = float(re.search(r"scale\((\d+)\)", svg).group(1))
    path = re.search(r' d="([^"]+)"', svg).group(1)
    modules = int(width / scale)
    size = modules * pixel
    image = bytearray(b"\xff" * size * size)
    x = y = 0.0
    for op, a, b in _STEP.findall(path):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        elif op == "h":
            row = int(y - 0.5)  # strokes run along the middle of a module row
            for column in range(int(x), int(x + float(a))):
                for dy in range(pixel):
                    start = (row * pixel + dy) * size + column * pixel
                    image[start : start + pixel] = b"\x00" * pixel
            x += float(a)
    return memoryview(image).cast("B", (size, size)), size, modules


@pytest.mark.parametrize("kind", ["id_card", "driving_licence", "real_estate_certificate"])
async def test_the_token_fits_version_10_and_the_served_qr_decodes_back_to_it(client, zhang, library, kind):
    mine = await licences_of(client, zhang.headers)
    fields = mine[kind]["disclosable"]  # every field: the largest mask
    shown = await present(client, zhang.headers, mine[kind]["id"], fields=fields, single_use=True)
    token = shown["token"]
    assert len(token) <= 311 and set(token) <= ALPHANUMERIC  # alphanumeric mode, version 10 at M
    code = segno.make_qr(token, error="m", boost_error=False)
    assert code.mode == "alphanumeric" and code.version <= 10
    image, _, modules = raster(shown["qr_svg"])
    assert modules == 4 * code.version + 17 + 8  # the symbol and its quiet zone
    (found,) = zxingcpp.read_barcodes(image)
    assert found.text == token and found.format == zxingcpp.BarcodeFormat.QRCode


async def test_an_outside_verifier_checks_the_signature_offline(client, zhang, library):
    mine = await licences_of(client, zhang.headers)
    shown = await present(client, zhang.headers, mine["id_card"]["id"], fields=["holder"])
    r = await client.get("/.well-known/licence-keys.json")
    assert r.status_code == 200 and r.headers["cache-control"].startswith("public")
    keys = {k["kid"]: k for k in r.json()["keys"]}
    jwks = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert not {k["x"] for k in jwks} & {k["x"] for k in keys.values()}  # a ring of its own
    raw = base45.b45decode(shown["token"].removeprefix("YL1:"))
    body, signature = raw[:27], raw[27:]
    version, alg, key, licence_id, mask, flags, expires, nonce = struct.unpack(">BB4sIIBI8s", body)
    assert (version, alg, licence_id, flags) == (1, 1, mine["id_card"]["id"], 0)
    assert mask == 1  # "holder" is bit 0
    jwk = keys[key.hex()]
    public = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(jwk["x"] + "=="))
    public.verify(signature, b"YWT-LP1" + body)  # raises if it does not verify
    with pytest.raises(Exception):  # noqa: B017 - InvalidSignature
        public.verify(signature, b"YWT-LP1" + body[:-1] + bytes([body[-1] ^ 1]))
