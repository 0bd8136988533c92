"""api.kit.pii: ID numbers, masking, encryption at rest, blind index, keyring, log scrubbing (SECURITY 7, 8, 18)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import stat
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.kit import pii
from api.kit.pii import (
    PHONE_RE,
    BlindIndex,
    PiiCipher,
    PiiDecryptError,
    ScrubFilter,
    add_key,
    birth_date,
    create_keyring,
    ensure_keyring,
    generate_key,
    id_number_problem,
    is_mainland_mobile,
    is_valid_id_number,
    load_keyring,
    mask_address,
    mask_id_number,
    mask_name,
    mask_phone,
    normalize_id_number,
    one_line,
    remove_key,
    scrub,
)

VALID_IDS = ["11010519491231002X", "360502198803152015", "360521199207084021", "360502197505206113"]
INVALID_CHECK = ["110105194912310021", "360502198803152016"]

# Written out independently of api.kit.pii, so a wrong table there is caught here.
WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def check_char(first17: str) -> str:
    return "10X98765432"[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


def make_id(region: str, born: date, seq: str) -> str:
    body = f"{region}{born:%Y%m%d}{seq}"
    return body + check_char(body)


# --------------------------------------------------------------------------------------------------------------
# ID numbers
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", VALID_IDS)
def test_known_valid_id_numbers(value):
    assert id_number_problem(value) is None
    assert is_valid_id_number(value)


@pytest.mark.parametrize("value", INVALID_CHECK)
def test_known_invalid_check_digit(value):
    assert id_number_problem(value) == "校验码不正确"
    assert not is_valid_id_number(value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "应为18位"),
        ("36050219880315201", "应为18位"),
        ("3605021988031520150", "应为18位"),
        ("36050219880315201A", "前17位应为数字，末位应为数字或X"),
        ("3605021988031520X5", "前17位应为数字，末位应为数字或X"),
        ("٣60502198803152015", "前17位应为数字，末位应为数字或X"),  # Arabic-Indic digit: not ASCII
        (make_id("360502", date(1988, 3, 15), "201")[:10] + "0230" + "2011", "出生日期不正确"),  # 30 Feb
        ("360502198813152015", "出生日期不正确"),  # month 13
        (make_id("360502", date(1899, 12, 31), "201"), "出生日期不正确"),  # before 1900
    ],
)
def test_id_number_problem_reasons(value, reason):
    assert id_number_problem(value) == reason
    assert not is_valid_id_number(value)


def test_birth_date_in_the_future_is_invalid():
    today = date(2025, 6, 1)
    assert id_number_problem(make_id("360502", today, "201"), today=today) is None
    assert (
        id_number_problem(make_id("360502", today + timedelta(days=1), "201"), today=today)
        == "出生日期不正确"
    )
    # without `today` it uses the real date: next year is always in the future
    next_year = date.today().replace(year=date.today().year + 1, day=1)
    assert id_number_problem(make_id("360502", next_year, "201")) == "出生日期不正确"


def test_non_string_is_a_problem_not_a_crash():
    assert id_number_problem(360502198803152015) is not None  # type: ignore[arg-type]


def test_normalize_id_number():
    assert normalize_id_number(" 11010519491231002x\n") == "11010519491231002X"
    assert normalize_id_number("３６０５０２１９８８０３１５２０１５") == "360502198803152015"  # full-width
    assert is_valid_id_number(" 11010519491231002x ")


def test_birth_date():
    assert birth_date("360502198803152015") == date(1988, 3, 15)
    assert birth_date("11010519491231002x") == date(1949, 12, 31)
    with pytest.raises(ValueError, match="校验码不正确"):
        birth_date("360502198803152016")


valid_ids = st.builds(
    make_id,
    region=st.from_regex(r"\A[1-9][0-9]{5}\Z"),
    born=st.dates(min_value=date(1900, 1, 1), max_value=date.today()),
    seq=st.from_regex(r"\A[0-9]{3}\Z"),
)


@given(id_number=valid_ids, data=st.data())
def test_any_single_character_change_makes_an_id_number_invalid(id_number, data):
    assert is_valid_id_number(id_number)  # the property below would be vacuous otherwise
    pos = data.draw(st.integers(0, 17), label="position")
    new = data.draw(st.sampled_from("0123456789X").filter(lambda c: c != id_number[pos]), label="char")
    changed = id_number[:pos] + new + id_number[pos + 1 :]
    assert not is_valid_id_number(changed), changed


# --------------------------------------------------------------------------------------------------------------
# Phones
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("phone", ["13800000001", "19912345678", "15000000000"])
def test_mainland_mobile_valid(phone):
    assert is_mainland_mobile(phone)
    assert PHONE_RE.match(phone)


@pytest.mark.parametrize(
    "phone",
    [
        "12800000001",
        "1380000000",
        "138000000012",
        "13800000001\n",
        " 13800000001",
        "1380000000a",
        "١3800000001",
        "",
    ],
)
def test_mainland_mobile_invalid(phone):
    assert not is_mainland_mobile(phone)
    assert not PHONE_RE.match(phone)  # anchored: even .match refuses a trailing newline


def test_mainland_mobile_non_string():
    assert not is_mainland_mobile(13800000001)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------------------
# Masking
# --------------------------------------------------------------------------------------------------------------


def test_mask_id_number():
    assert mask_id_number("360502198803152015") == "3605**********2015"
    assert mask_id_number("11010519491231002x") == "1101**********002X"
    assert len(mask_id_number("360502198803152015")) == 18
    assert mask_id_number("1234") == "****"
    assert mask_id_number(None) is None


def test_mask_phone():
    assert mask_phone("13800000001") == "138****0001"
    assert mask_phone("123") == "***"
    assert mask_phone(None) is None


def test_mask_name():
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("张") == "*"
    assert mask_name("") == ""
    assert mask_name(None) is None


def test_mask_address():
    assert mask_address("江西省新余市渝水区仙来大道1号") == "江西省新余市****"
    assert mask_address("江西省新余市渝水区") == "江西省新****"  # short: at most half kept
    assert mask_address("江西省") == "江****"
    assert mask_address("北") == "****"
    assert mask_address("") == ""
    assert mask_address(None) is None


# --------------------------------------------------------------------------------------------------------------
# Encryption at rest
# --------------------------------------------------------------------------------------------------------------

K1 = bytes(range(32))
K2 = bytes(range(32, 64))
TOKEN_RE = re.compile(r"v1\.(?P<kid>[A-Za-z0-9_-]+)\.(?P<data>[A-Za-z0-9_-]+)")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_encrypt_decrypt_roundtrip_and_token_format():
    c = PiiCipher({"k1": K1}, "k1")
    token = c.encrypt("360502198803152015", "account:12:id_number")
    m = TOKEN_RE.fullmatch(token)
    assert m, token
    assert token.isascii() and "=" not in token
    assert m["kid"] == "k1"
    raw = b64url_decode(m["data"])
    assert len(raw) == 12 + 18 + 16  # nonce + ciphertext + tag
    assert "360502198803152015" not in token
    assert c.decrypt(token, "account:12:id_number") == "360502198803152015"
    assert c.decrypt(c.encrypt("欧阳娜娜")) == "欧阳娜娜"
    assert c.decrypt(c.encrypt("")) == ""


def test_token_is_real_aes_gcm_with_context_as_associated_data():
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    token = PiiCipher({"k1": K1}, "k1").encrypt("张三", "account:1:name")
    raw = b64url_decode(token.split(".")[2])
    assert AESGCM(K1).decrypt(raw[:12], raw[12:], b"account:1:name").decode() == "张三"


def test_nonce_is_random():
    c = PiiCipher({"k1": K1}, "k1")
    tokens = {c.encrypt("same") for _ in range(50)}
    assert len(tokens) == 50
    assert len({b64url_decode(t.split(".")[2])[:12] for t in tokens}) == 50


def test_context_is_bound():
    c = PiiCipher({"k1": K1}, "k1")
    token = c.encrypt("360502198803152015", "account:12:id_number")
    for other in ["account:13:id_number", "account:12:name", ""]:
        with pytest.raises(PiiDecryptError):
            c.decrypt(token, other)


def test_tampering_is_detected():
    c = PiiCipher({"k1": K1, "k2": K2}, "k1")
    token = c.encrypt("360502198803152015", "ctx")
    prefix, data = token.rsplit(".", 1)
    raw = bytearray(b64url_decode(data))
    for i in range(len(raw)):  # every byte: nonce, ciphertext and tag
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        bad = f"{prefix}.{base64.urlsafe_b64encode(bytes(flipped)).rstrip(b'=').decode()}"
        with pytest.raises(PiiDecryptError):
            c.decrypt(bad, "ctx")
    bad_tokens = [
        token[:-4],  # truncated
        token.replace("v1.", "v2.", 1),  # unknown version
        token.replace(".k1.", ".k2.", 1),  # key id swapped to another real key
        token + ".x",
        f"{prefix}.{data}!",  # not base64url
        f"{prefix}.AAAA",  # too short
        "v1.k1",
        "",
    ]
    for bad in bad_tokens:
        with pytest.raises(PiiDecryptError):
            c.decrypt(bad, "ctx")
    assert c.decrypt(token, "ctx") == "360502198803152015"


def test_unknown_kid_fails():
    token = PiiCipher({"k1": K1}, "k1").encrypt("x")
    with pytest.raises(PiiDecryptError):
        PiiCipher({"k2": K2}, "k2").decrypt(token)
    with pytest.raises(PiiDecryptError):
        PiiCipher({"k2": K2}, "k2").rotate_needed(token)


@pytest.mark.parametrize("key", [b"", b"x" * 16, b"x" * 31, b"x" * 33, "x" * 32])
def test_keys_must_be_32_bytes(key):
    with pytest.raises(ValueError):
        PiiCipher({"k1": key}, "k1")


def test_current_must_be_in_keys_and_kids_token_safe():
    with pytest.raises(ValueError):
        PiiCipher({"k1": K1}, "k2")
    with pytest.raises(ValueError):
        PiiCipher({"k.1": K1}, "k.1")
    with pytest.raises(ValueError):
        PiiCipher({}, "k1")


def test_rotation_in_memory():
    old = PiiCipher({"k1": K1}, "k1")
    t1 = old.encrypt("360502198803152015", "ctx")
    new = PiiCipher({"k1": K1, "k2": K2}, "k2")
    assert new.current == "k2"
    assert new.decrypt(t1, "ctx") == "360502198803152015"
    assert new.rotate_needed(t1)
    t2 = new.encrypt("360502198803152015", "ctx")
    assert t2.startswith("v1.k2.")
    assert not new.rotate_needed(t2)
    t3 = new.reencrypt(t1, "ctx")
    assert t3.startswith("v1.k2.") and new.decrypt(t3, "ctx") == "360502198803152015"


def test_rotation_through_keyring_file(tmp_path):
    path = tmp_path / "keys" / "pii.json"
    create_keyring(path)
    keys, current, blind = load_keyring(path)
    assert current == "k1"
    t1 = PiiCipher(keys, current).encrypt("360502198803152015", "account:1:id_number")

    assert add_key(path) == "k2"
    keys, current, blind2 = load_keyring(path)
    assert current == "k2" and set(keys) == {"k1", "k2"}
    assert blind2 == blind  # blind indexes stay valid across rotation
    c = PiiCipher(keys, current)
    assert c.decrypt(t1, "account:1:id_number") == "360502198803152015"
    assert c.rotate_needed(t1)
    t2 = c.encrypt("360502198803152015", "account:1:id_number")
    assert t2.startswith("v1.k2.")
    assert not c.rotate_needed(t2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    with pytest.raises(ValueError):
        remove_key(path, "k2")  # the current key
    remove_key(path, "k1")
    keys, current, _ = load_keyring(path)
    assert set(keys) == {"k2"}
    c = PiiCipher(keys, current)
    with pytest.raises(PiiDecryptError):
        c.decrypt(t1, "account:1:id_number")
    assert c.decrypt(t2, "account:1:id_number") == "360502198803152015"
    assert add_key(path) == "k3"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(path.parent.glob("*.tmp"))


# --------------------------------------------------------------------------------------------------------------
# Blind index
# --------------------------------------------------------------------------------------------------------------


def test_blind_index_is_hmac_sha256_over_kind_and_normalized_value():
    key = bytes(range(32))
    bi = BlindIndex(key)
    expected = hmac.new(key, b"id_number:11010519491231002X", hashlib.sha256).hexdigest()
    assert bi.digest("11010519491231002x ", "id_number") == expected
    assert bi.digest("11010519491231002X", "id_number") == expected
    phone = hmac.new(key, b"phone:13800000001", hashlib.sha256).hexdigest()
    assert bi.digest(" 13800000001 ", "phone") == phone


def test_blind_index_kinds_and_keys_do_not_collide():
    bi = BlindIndex(K1)
    assert bi.digest("13800000001", "phone") != bi.digest("13800000001", "id_number")
    assert bi.digest("13800000001", "phone") != BlindIndex(K2).digest("13800000001", "phone")
    assert bi.digest("13800000001", "phone") != bi.digest("13800000002", "phone")
    with pytest.raises(ValueError):
        bi.digest("b:c", "a:")  # ':' in kind would make "a::b:c" ambiguous
    with pytest.raises(ValueError):
        bi.digest("x", "")


def test_blind_index_key_length():
    with pytest.raises(ValueError):
        BlindIndex(b"short")


# --------------------------------------------------------------------------------------------------------------
# Key material
# --------------------------------------------------------------------------------------------------------------


def test_generate_key():
    keys = {generate_key() for _ in range(10)}
    assert len(keys) == 10
    assert all(isinstance(k, bytes) and len(k) == 32 for k in keys)


def test_create_keyring_file_format_and_mode(tmp_path):
    path = tmp_path / "a" / "b" / "keyring.json"
    create_keyring(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["current"] == "k1"
    assert set(doc["keys"]) == {"k1"}
    assert len(base64.b64decode(doc["keys"]["k1"])) == 32
    assert len(base64.b64decode(doc["blind_index_key"])) == 32
    keys, current, blind = load_keyring(path)
    assert keys == {"k1": base64.b64decode(doc["keys"]["k1"])}
    assert current == "k1"
    assert blind == base64.b64decode(doc["blind_index_key"])
    assert blind != keys["k1"]


def test_create_keyring_refuses_to_overwrite(tmp_path):
    path = tmp_path / "keyring.json"
    create_keyring(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        create_keyring(path)
    assert path.read_bytes() == before


def test_ensure_keyring_creates_once(tmp_path):
    path = tmp_path / "new" / "keyring.json"
    first = ensure_keyring(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_keyring(path) == first


@pytest.mark.parametrize(
    "doc",
    [
        "not json",
        json.dumps([]),
        json.dumps({"current": "k1", "keys": {}, "blind_index_key": base64.b64encode(K2).decode()}),
        json.dumps(
            {
                "current": "k9",
                "keys": {"k1": base64.b64encode(K1).decode()},
                "blind_index_key": base64.b64encode(K2).decode(),
            }
        ),
        json.dumps(
            {
                "current": "k1",
                "keys": {"k1": base64.b64encode(b"x" * 16).decode()},
                "blind_index_key": base64.b64encode(K2).decode(),
            }
        ),
        json.dumps(
            {"current": "k1", "keys": {"k1": "%%%"}, "blind_index_key": base64.b64encode(K2).decode()}
        ),
        json.dumps({"current": "k1", "keys": {"k1": base64.b64encode(K1).decode()}}),
    ],
)
def test_load_keyring_rejects_malformed_files(tmp_path, doc):
    path = tmp_path / "keyring.json"
    path.write_text(doc)
    with pytest.raises(ValueError):
        load_keyring(path)


# --------------------------------------------------------------------------------------------------------------
# Log scrubbing
# --------------------------------------------------------------------------------------------------------------

JWT = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMiJ9.c2lnbmF0dXJlX2J5dGVz-_"


def test_scrub_id_numbers():
    assert scrub("id=360502198803152015;") == "id=3605**********2015;"
    assert (
        scrub("身份证360502198803152016号") == "身份证3605**********2016号"
    )  # wrong check digit: still masked
    assert scrub("x 11010519491231002x y") == "x 1101**********002X y"
    assert scrub("order 9360502198803152015") == "order 9360502198803152015"  # longer digit run
    assert scrub("order 3605021988031520159") == "order 3605021988031520159"


def test_scrub_phones():
    assert scrub("tel:13800000001.") == "tel:138****0001."
    assert scrub("call 13800000001 or 19912345678") == "call 138****0001 or 199****5678"
    assert scrub("+8613800000001") == "+86138****0001"
    assert scrub("138-0000-0001") == "138****0001"
    assert scrub("n=1380000000123") == "n=1380000000123"  # inside a longer run
    assert scrub("n=913800000001") == "n=913800000001"
    assert scrub("n=12800000001") == "n=12800000001"  # not a mobile prefix


def test_scrub_tokens():
    assert scrub(f"token={JWT}&x=1") == "token=[token]&x=1"
    assert scrub("Authorization: Bearer abc.DEF-123_xyz~+/==") == "Authorization: Bearer [token]"
    assert scrub(f"authorization: bearer {JWT}") == "authorization: bearer [token]"
    assert scrub("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.") == "[token]"  # alg=none, empty signature


def test_scrub_leaves_ordinary_text_alone():
    text = "申请 A-2024-0001 已受理，共 3 件材料，request_id=7f3a9c2e"
    assert scrub(text) == text


def test_one_line():
    assert one_line("a\r\nb\nc\u2028d") == "a\\r\\nb\\nc\\u2028d"
    assert len(one_line("x\ny\rz\x85\u2029").splitlines()) == 1


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def scrubbed_log():
    handler = Collect()
    handler.addFilter(ScrubFilter())
    log = logging.getLogger("ywt.test_pii")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    old_propagate, log.propagate = log.propagate, False
    try:
        yield log, handler
    finally:
        log.removeHandler(handler)
        log.propagate = old_propagate


SECRETS = ["360502198803152015", "13800000001", JWT, "abc.DEF-123"]


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, text


def test_filter_scrubs_message_args(scrubbed_log):
    log, h = scrubbed_log
    log.info("resident %s phone %s token %s", "360502198803152015", "13800000001", JWT)
    log.warning("auth: %(h)s", {"h": "Bearer abc.DEF-123"})
    assert h.lines[0] == "INFO resident 3605**********2015 phone 138****0001 token [token]"
    assert h.lines[1] == "WARNING auth: Bearer [token]"
    assert h.records[0].args == ()


def test_filter_scrubs_fields_and_extras_without_touching_the_callers_dict(scrubbed_log):
    log, h = scrubbed_log
    fields = {
        "id_number": "360502198803152015",
        "nested": {"phone": "13800000001", "list": ["x", JWT]},
        "status": 401,
        "path": "/a\r\nINFO forged",
    }
    log.info("event", extra={"fields": fields, "request_line": "GET /?phone=13800000001\nX"})
    rec = h.records[0]
    assert rec.fields == {
        "id_number": "3605**********2015",
        "nested": {"phone": "138****0001", "list": ["x", "[token]"]},
        "status": 401,
        "path": "/a\\r\\nINFO forged",
    }
    assert rec.request_line == "GET /?phone=138****0001\\nX"
    assert fields["id_number"] == "360502198803152015"  # the caller's dict is not mutated


def test_filter_removes_crlf_from_message(scrubbed_log):
    log, h = scrubbed_log
    log.warning("login failed for %s", "bob\r\nINFO login ok for admin")
    assert h.lines == ["WARNING login failed for bob\\r\\nINFO login ok for admin"]
    assert len(h.lines[0].splitlines()) == 1


def test_filter_scrubs_exception_text(scrubbed_log):
    log, h = scrubbed_log
    try:
        raise ValueError("bad id 360502198803152015 for 13800000001")
    except ValueError:
        log.exception("failed")
    assert "ValueError: bad id 3605**********2015 for 138****0001" in h.lines[0]
    assert_clean(h.lines[0])


def test_filter_with_json_lines_formatter(scrubbed_log):
    from api.kit.logs import JsonLines

    log, h = scrubbed_log
    h.setFormatter(JsonLines())
    log.info("refresh %s", f"Bearer {JWT}", extra={"fields": {"phone": "13800000001", "note": "a\nb"}})
    line = json.loads(h.lines[0])
    assert line["message"] == "refresh Bearer [token]"
    assert line["phone"] == "138****0001"
    assert line["note"] == "a\\nb"
    assert_clean(h.lines[0])


def test_filter_survives_a_bad_format_string(scrubbed_log):
    log, h = scrubbed_log
    log.info("%d items for %s", "not-a-number", "13800000001")
    assert len(h.lines) == 1
    assert_clean(h.lines[0])


def test_module_exports():
    for name in pii.__all__:
        assert hasattr(pii, name), name


# pieces that make scrub() or one_line() change a string, and pieces that look like them but should not
_LOG_PIECES = st.sampled_from(
    [
        "360502198803152015",
        "36050219880315201X",
        "11010120050101123X",  # born in 2005: no mobile-like run inside it
        "13800000001",
        "+86 138-0000-0001",
        "0086 13900001111",
        "Bearer abc.def",
        "basic dXNlcjpwYXNz",
        "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2ln",
        "\r\n",
        "\u2028",
        "\x85",
        "/api/v1/me",
        "12",
        "v1",
        "8c75fd38",
        " ",
        "张三",
        "bear",
        "ey",
    ]
)


@given(st.lists(st.one_of(_LOG_PIECES, st.text(max_size=8)), max_size=8).map("".join))
def test_the_quick_look_of_clean_text_lets_through_only_what_scrubbing_would_not_change(text):
    from api.kit.pii.scrub import clean_text, one_line, scrub

    assert clean_text(text) == one_line(scrub(text))
