"""Materials of a case: a resident uploads the files his item's guide lists; he and the clerks in charge
download them. SECURITY row 11: size cap, per-applicant quota, type by content against an allow-list, names
we make (sha256) under the uploads folder, served as attachments with nosniff; row 12: uploads rate-limited
per applicant.

Checks run cheapest first and before anything is written; the file is stored (content-addressed, so a retry
or a second case with the same bytes shares it) before the row, and the row is written under a lock on the
applicant's account, so two concurrent uploads cannot both slip under the quota or the per-case file cap.
A file whose row then fails to commit stays on disk unreferenced: harmless, and a later sweep's business."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from api.applications.deps import Cases
from api.applications.errors import (
    FileTooLarge,
    InvalidTransition,
    MaterialNotFound,
    QuotaExceeded,
    TooManyFiles,
    UnknownMaterial,
    UnsupportedFileType,
)
from api.applications.files import EXTENSIONS, sniff
from api.applications.schemas import MaterialOut
from api.applications.service import in_scope, own
from api.kit.auth import Principal
from api.kit.db import in_transaction
from api.kit.errors import InvalidInput
from api.kit.scopes import WorkScope
from models import applications as db
from models import catalog as catalog_db
from models.audit import audit

log = logging.getLogger("ywt.materials")

# a resident adds materials while the case waits for intake or for his correction
UPLOADABLE = frozenset({"submitted", "returned"})
RATE_NAME = "upload"
RATE_WINDOW = 3600
_SAFE_CODE = re.compile(r"^[A-Za-z0-9_\-]{1,32}$")


@dataclass(frozen=True)
class Download:
    body: bytes
    content_type: str
    filename: str


def _out(row: db.ApplicationMaterial) -> MaterialOut:
    return MaterialOut(
        id=row.id,
        material_code=row.material_code,
        sha256=row.sha256,
        size=row.size,
        content_type=row.content_type,
        created_at=row.created_at,
    )


async def upload(
    cases: Cases, principal: Principal, application_id: int, material_code: str | None, data: bytes | None
) -> tuple[MaterialOut, bool]:
    """Store one file for one material of the applicant's own case: (the material, whether it is new).

    The same bytes for the same material of the same case again (a retried upload) answer the first row."""
    settings = cases.settings.uploads
    # counted per attempt, refused ones included: the limit is on what a client may throw at us
    await cases.limiter.hit(RATE_NAME, str(principal.account_id), settings.max_per_hour, RATE_WINDOW)
    app = await own(principal, application_id)
    if app.status not in UPLOADABLE:
        raise InvalidTransition(f"当前状态({app.status})不能上传材料，仅在待受理或退回补正时可以")
    if not material_code or data is None:
        errors = [] if material_code else [{"field": "material_code", "message": "必填"}]
        if data is None:
            errors.append({"field": "file", "message": "必填，应为一个文件"})
        raise InvalidInput(errors=errors)
    if material_code not in await catalog_db.material_codes_of(app.item_id):
        raise UnknownMaterial()
    if len(data) > settings.max_file_bytes:
        raise FileTooLarge(f"文件不能超过 {settings.max_file_bytes // 1024} KB")
    content_type = sniff(data)
    if content_type is None:
        raise UnsupportedFileType()

    stored = await cases.files.put(data, content_type)
    async with in_transaction():
        # serialises this applicant's uploads, so two cannot both slip under the quota or the file cap
        await db.lock_uploads_of(principal.account_id)
        if await db.status_of(app.id) not in UPLOADABLE:
            raise InvalidTransition("该办件刚被受理或处理，不能再上传材料")
        same = await db.material_with_content(app.id, material_code, stored.sha256)
        if same is not None:
            return _out(same), False
        if await db.material_count(app.id) >= settings.max_files_per_application:
            raise TooManyFiles(f"每个办件最多上传 {settings.max_files_per_application} 个文件")
        used = await db.uploaded_bytes(principal.account_id)
        if used + stored.size > settings.quota_bytes:
            raise QuotaExceeded(
                f"上传空间不足：已用 {used // 1024} KB，上限 {settings.quota_bytes // 1024} KB"
            )
        row = await db.add_material(
            application_id=app.id,
            material_code=material_code,
            sha256=stored.sha256,
            size=stored.size,
            content_type=stored.content_type,
            uploaded_by_id=principal.account_id,
        )
    return _out(row), True


async def _download(cases: Cases, app: db.Application, material_id: int) -> Download:
    row = await db.material_of(app.id, material_id)
    if row is None:
        raise MaterialNotFound()
    try:
        body = await cases.files.read(row.sha256)
    except (FileNotFoundError, ValueError):
        # the row outlived its file (restored database, lost volume): an operator must know
        log.error("material file missing", extra={"fields": {"material_id": row.id, "sha256": row.sha256}})
        raise MaterialNotFound("材料文件不存在") from None
    code = row.material_code if _SAFE_CODE.match(row.material_code) else "material"
    ext = EXTENSIONS.get(row.content_type, "bin")
    return Download(body=body, content_type=row.content_type, filename=f"{code}.{ext}")


async def download_own(cases: Cases, principal: Principal, application_id: int, material_id: int) -> Download:
    return await _download(cases, await own(principal, application_id), material_id)


async def download_in_scope(
    cases: Cases,
    principal: Principal,
    scope: WorkScope,
    application_id: int,
    material_id: int,
    *,
    request_id: str,
    ip: str,
) -> Download:
    """A file of a case of the clerk's (or grid worker's) scope. Reading an applicant's file is reading his
    personal data: every read that hands a file over is an audit row."""
    app = await in_scope(scope, application_id)
    download = await _download(cases, app, material_id)
    await audit(
        principal,
        "application.material_read",
        subject=app.applicant_id,
        request_id=request_id,
        ip=ip,
        detail={"application": app.number, "material": material_id, "filename": download.filename},
    )
    return download
