"""Every error code that can reach a client, in one list: a new code is a decision, made here on purpose.

A code reaches a client either as a typed error (a subclass of `AppError`, one per code, in `api/kit/errors.py`
or an area's `errors.py`) or from the one error handler's answers for what is not ours (`problem(...)` in
kit). No raise site passes a code of its own (`code="..."`): that is what the typed errors replaced."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections import defaultdict

import api
import integrations
from api.kit.config import PROJECT_ROOT
from api.kit.errors import AppError

# code -> the HTTP statuses it is answered with
CODES: dict[str, set[int]] = {
    # the kernel: input, sign-in, roles, idempotency, limits, dependencies, what Sanic refuses
    "validation_failed": {422},
    "invalid_json": {422},
    "invalid_cursor": {422},
    "unsupported_media_type": {415},
    "invalid_idempotency_key": {422},
    "idempotency_key_reused": {422},
    "idempotency_retry": {409},
    "idempotency_in_progress": {409},
    "unauthorized": {401},
    "invalid_token": {401},
    "forbidden": {403},
    "real_name_required": {403, 409},  # 403: this route needs it; 409: the resident a clerk acts on lacks it
    "not_found": {404},
    "conflict": {409},
    "rate_limited": {429},
    "method_not_allowed": {405},
    "payload_too_large": {413},
    "request_timeout": {408},
    "bad_request": {400},
    "service_unavailable": {503},
    "redis_unavailable": {503},
    "database_unavailable": {503},
    "not_ready": {503},
    "upstream_error": {502},
    "upstream_timeout": {504},
    "internal_error": {500},
    # the official account's callback, web authorisation and JS-SDK
    "wechat_signature_invalid": {403},
    "wechat_timestamp_stale": {403},
    "wechat_mode_refused": {403},
    "wechat_message_invalid": {400},
    "wechat_state_invalid": {403},
    "wechat_page_not_allowed": {422},
    # identity
    "account_disabled": {403},
    "channel_not_allowed": {403},
    "binding_not_found": {404},
    "resident_not_found": {404},
    "phone_taken": {409},
    "id_number_taken": {409},
    "wechat_already_bound": {409},
    "wechat_bound_elsewhere": {409},
    "refresh_in_progress": {409},
    "invalid_grant": {401},
    "wechat_not_bound": {401},
    "invalid_code": {422},
    "invalid_id_number": {422},
    "invalid_binding_ticket": {422},
    "invalid_wechat_code": {422},
    "id_card_mismatch": {422},
    "real_name_mismatch": {422},
    "wrong_password": {422},
    # catalogue
    "item_not_found": {404},
    "point_not_found": {404},
    "unknown_filter_value": {422},
    # applications and materials
    "application_not_found": {404},
    "material_not_found": {404},
    "invalid_transition": {409},
    "already_returned": {409},
    "file_too_large": {413},
    "quota_exceeded": {413},
    "unknown_item": {422},
    "unknown_point": {422},
    "unknown_material": {422},
    "not_handled_online": {422},
    "not_handled_at_point": {422},
    "delivery_mode_not_offered": {422},
    "unsupported_file_type": {422},
    "too_many_files": {422},
    # feedback, notifications, statistics
    "not_decided": {409},
    "already_evaluated": {409},
    "already_answered": {409},
    "complaint_not_found": {404},
    "unknown_application": {422},
    "unknown_department": {422},
    "notification_not_found": {404},
    "device_not_found": {404},
    "announcement_not_found": {404},
    "announcement_started": {409},
    # e-licences, API keys
    "licence_not_found": {404},
    "issuer_untrusted": {409},
    "licence_not_valid": {409},
    "presentation_refused": {422},
    "api_key_not_found": {404},
}

# codes more than one class answers with, and why
SHARED = {
    "validation_failed": "InvalidInput and the areas' field-error bases built on it",
    "real_name_required": "kit's 403 (the caller) and identity's 409 (the resident acted on)",
    "unknown_point": "each area names its own field (point_code) in its own words",
    "unknown_filter_value": "catalogue and work-queue filters, each in its own words",
    "upstream_error": "WeChat's own upstream error",
}


def _error_classes() -> list[type[AppError]]:
    for package in (api, integrations):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)

    def below(cls: type[AppError]) -> list[type[AppError]]:
        return [c for sub in cls.__subclasses__() for c in (sub, *below(sub))]

    return [AppError, *below(AppError)]


def _sources() -> list[tuple[str, ast.AST]]:
    found = []
    for folder in ("api", "integrations"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            found.append((str(path.relative_to(PROJECT_ROOT)), ast.parse(path.read_text(encoding="utf-8"))))
    return found


def _handler_codes() -> dict[str, set[int]]:
    """Codes the error handler and health routes answer with directly: problem(request, status, "code", ...)
    and the (exception, "code", title) table of what Sanic refuses."""
    codes: dict[str, set[int]] = defaultdict(set)
    for _, tree in _sources():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "problem"
                and len(node.args) >= 3
            ):
                status, code = node.args[1], node.args[2]
                if isinstance(code, ast.Constant) and isinstance(code.value, str):
                    if isinstance(status, ast.Constant):
                        codes[code.value].add(int(status.value))
                    else:
                        codes[code.value]  # noqa: B018 — status from the table below
    from sanic.exceptions import SanicException

    from api.kit import errors

    for kind, code, _ in errors._SANIC_CODES:
        status = getattr(kind, "status_code", None) or SanicException.status_code
        codes[code].add(int(status))
    return codes


def test_every_code_a_client_can_read_is_listed_with_its_statuses():
    seen: dict[str, set[int]] = defaultdict(set)
    for cls in _error_classes():
        seen[cls.code].add(cls.status)
    for code, statuses in _handler_codes().items():
        seen[code] |= statuses
    assert dict(seen) == CODES


def test_one_class_per_code_unless_said_why():
    owners: dict[str, list[str]] = defaultdict(list)
    for cls in _error_classes():
        if cls.__name__.startswith("_") or "code" not in vars(cls):
            continue  # a private base, or a class that reuses its parent's code
        owners[cls.code].append(f"{cls.__module__}.{cls.__name__}")
    shared = {code: names for code, names in owners.items() if len(names) > 1}
    assert set(shared) <= set(SHARED), shared


def test_no_raise_site_makes_up_a_code():
    made_up = []
    for name, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                        made_up.append(f"{name}:{node.lineno}")
    assert made_up == []
