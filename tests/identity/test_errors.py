"""Every error code the identity area can answer with, and its status: a code is a promise to clients."""

from __future__ import annotations

from pathlib import Path

from api.identity import errors
from api.kit.errors import AppError

CODES = {
    "invalid_grant": 401,
    "wechat_not_bound": 401,
    "account_disabled": 403,
    "channel_not_allowed": 403,
    "binding_not_found": 404,
    "resident_not_found": 404,
    "phone_taken": 409,
    "id_number_taken": 409,
    "wechat_bound_elsewhere": 409,
    "wechat_already_bound": 409,
    "refresh_in_progress": 409,
    "real_name_required": 409,
    "invalid_binding_ticket": 422,
    "invalid_code": 422,
    "wrong_password": 422,
    "invalid_id_number": 422,
    "real_name_mismatch": 422,
    "id_card_mismatch": 422,
    "invalid_wechat_code": 422,
}

ROOT = Path(__file__).resolve().parents[2]


def test_every_identity_code_has_its_class_and_status():
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type)
        and issubclass(value, AppError)
        and value.__module__ == errors.__name__
        and "code" in vars(value)
    ]
    assert {cls.code: cls.status for cls in classes} == CODES
    assert len(classes) == len(CODES), "two classes for one code"


def test_identity_and_sandbox_raise_typed_errors_only():
    """No `SomeError("...", code="...")` left: a code is given by its class."""
    for folder in ("api/identity", "api/sandbox"):
        for path in sorted((ROOT / folder).glob("*.py")):
            if path.name == "errors.py":
                continue
            assert 'code="' not in path.read_text(encoding="utf-8"), path


def test_a_field_problem_names_its_field():
    err = errors.InvalidIdNumber("应为18位")
    assert (err.status, err.code, err.detail) == (422, "invalid_id_number", "身份证号码无效：应为18位")
    assert err.errors == [{"field": "id_number", "message": "应为18位"}]
    # full-width digits and stray spaces are the same number
    assert errors.InvalidIdNumber.check(" ３６０５０２１９８８０３１５２０１５ ") == "360502198803152015"
