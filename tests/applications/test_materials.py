"""Materials of a case (SECURITY row 11, and row 12 for uploads): type by content, size cap, per-applicant
quota, names we make under the uploads folder, attachments with nosniff, and nobody else's files."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from api.kit.config import PROJECT_ROOT
from models import applications as db
from tests.support.cases import APPS, WORK, World, make_world, new_case
from tests.support.files import JPEG, pdf, png

HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"


@dataclass
class UploadWorld(World):
    case_id: int  # 张三's case at POINT, waiting for intake: where the uploads go


async def upload_world(app, client) -> UploadWorld:
    w = await make_world(app, client)
    return UploadWorld(**vars(w), case_id=(await new_case(w))["id"])


async def upload(
    client,
    headers: dict[str, str],
    case_id: int,
    data: bytes,
    *,
    code: str = "M01",
    filename: str = "scan.png",
    declared: str = "image/png",
):
    return await client.post(
        f"{APPS}/{case_id}/materials",
        data={"material_code": code},
        files={"file": (filename, data, declared)},
        headers=headers,
    )


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and not p.name.endswith(("-journal", "-wal", "-shm"))}


async def test_png_is_stored_content_addressed_whatever_the_filename(app, client, settings):
    w = await upload_world(app, client)
    data = png(7, 5)  # a picture no other test stores (the delivery photo is png()): this file is new
    tmp_root = settings.data_dir.parent
    before = files_under(tmp_root)
    places = [
        base / rel
        for base in (settings.uploads_dir, settings.uploads_dir / "x", settings.data_dir, PROJECT_ROOT)
        for rel in ("x", "../x")
    ]
    existed = [p for p in places if p.exists()]
    r = await upload(client, w.resident, w.case_id, data, filename="../../x", declared="text/html")
    assert r.status_code == 201, r.text
    body = r.json()
    digest = hashlib.sha256(data).hexdigest()
    assert {"id", "material_code", "sha256", "size", "content_type"} <= set(body)
    assert body["material_code"] == "M01" and body["sha256"] == digest
    assert body["size"] == len(data) and body["content_type"] == "image/png"
    new = files_under(tmp_root) - before
    assert new == {settings.uploads_dir / digest[:2] / digest[2:4] / digest}
    assert all(p.read_bytes() == data for p in new)
    # the client's name went nowhere: nothing called "x" appeared beside the uploads folder, in the data
    # folder or in the project (a pre-existing one outside our folders is none of our doing)
    assert [p for p in places if p.exists()] == existed
    row = await db.ApplicationMaterial.get(id=body["id"])
    assert row.application_id == w.case_id and row.uploaded_by_id == w.resident_id and row.sha256 == digest
    # the case shows it
    r = await client.get(f"{APPS}/{w.case_id}", headers=w.resident)
    assert [m["sha256"] for m in r.json()["materials"]] == [digest]


@pytest.mark.parametrize(
    ("data", "content_type", "ext"), [(JPEG, "image/jpeg", "jpg"), (pdf(), "application/pdf", "pdf")]
)
async def test_jpeg_and_pdf_are_accepted_and_come_back_as_attachments(app, client, data, content_type, ext):
    w = await upload_world(app, client)
    r = await upload(client, w.resident, w.case_id, data, code="M02", filename="户口簿.bin", declared="x/y")
    assert r.status_code == 201, r.text
    assert r.json()["content_type"] == content_type
    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()
    r = await client.get(f"{APPS}/{w.case_id}/materials/{r.json()['id']}", headers=w.resident)
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-type"] == content_type
    assert r.headers["content-disposition"] == f'attachment; filename="M02.{ext}"'
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "private, no-store"


async def test_html_posing_as_jpeg_is_refused_and_nothing_is_stored(app, client, settings):
    w = await upload_world(app, client)
    before = files_under(settings.data_dir.parent)
    r = await upload(client, w.resident, w.case_id, HTML, filename="photo.jpg", declared="image/jpeg")
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "unsupported_file_type"
    assert files_under(settings.data_dir.parent) == before
    assert await db.ApplicationMaterial.all().count() == 0


async def test_html_with_a_jpeg_prefix_only_in_its_name_or_type_is_refused(app, client):
    w = await upload_world(app, client)
    # an empty file and a text file declared as PDF
    for data in (b"", b"%PD not quite", b"GIF89a" + b"\x00" * 20):
        r = await upload(client, w.resident, w.case_id, data, filename="a.pdf", declared="application/pdf")
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "unsupported_file_type"


async def test_oversized_file_is_413_and_nothing_is_stored(app, client, settings):
    w = await upload_world(app, client)
    limit = settings.uploads.max_file_bytes
    data = b"%PDF-1.4\n" + b"0" * (limit + 1 - 9)
    assert len(data) == limit + 1
    before = files_under(settings.data_dir.parent)
    r = await upload(client, w.resident, w.case_id, data, filename="big.pdf", declared="application/pdf")
    assert r.status_code == 413
    assert r.json()["code"] == "file_too_large"
    assert await db.ApplicationMaterial.all().count() == 0
    assert files_under(settings.data_dir.parent) == before  # no file, partial or temporary, was left


async def test_exactly_the_size_limit_is_accepted(app, client, settings):
    w = await upload_world(app, client)
    limit = settings.uploads.max_file_bytes
    data = b"%PDF-1.4\n" + b"0" * (limit - 9)
    r = await upload(client, w.resident, w.case_id, data, filename="big.pdf", declared="application/pdf")
    assert r.status_code == 201, r.text
    assert r.json()["size"] == limit


async def test_quota_counts_every_case_of_the_applicant(app, client, settings):
    w = await upload_world(app, client)
    second_case = (await new_case(w))["id"]
    quota = settings.uploads.quota_bytes
    data = png(8, 8)
    # what he uploaded before, on his other case, leaves less room than this file needs
    await db.ApplicationMaterial.create(
        application_id=second_case,
        material_code="M01",
        sha256="0" * 64,
        size=quota - len(data) + 1,
        content_type="application/pdf",
        uploaded_by_id=w.resident_id,
    )
    r = await upload(client, w.resident, w.case_id, data)
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "quota_exceeded"
    assert await db.ApplicationMaterial.filter(application_id=w.case_id).count() == 0
    # another resident's quota is his own
    other_case = (await new_case(w, headers=w.other_resident))["id"]
    r = await upload(client, w.other_resident, other_case, data)
    assert r.status_code == 201, r.text
    # one byte less of history and the file fits exactly
    await db.ApplicationMaterial.filter(application_id=second_case).update(size=quota - len(data))
    r = await upload(client, w.resident, w.case_id, data)
    assert r.status_code == 201, r.text


async def test_concurrent_uploads_cannot_slip_under_the_quota_together(app, client, settings, monkeypatch):
    w = await upload_world(app, client)
    counted = db.uploaded_bytes

    async def slow_count(account_id: int) -> int:
        used = await counted(account_id)
        await asyncio.sleep(0.05)  # widen the window between reading the total and writing the row
        return used

    monkeypatch.setattr(db, "uploaded_bytes", slow_count)
    files = [png(4 + i, 4) for i in range(6)]
    room = max(len(f) for f in files) + 10  # room for any one of them, not two
    await db.ApplicationMaterial.create(
        application_id=w.case_id,
        material_code="M02",
        sha256="0" * 64,
        size=settings.uploads.quota_bytes - room,
        content_type="application/pdf",
        uploaded_by_id=w.resident_id,
    )
    answers = await asyncio.gather(*(upload(client, w.resident, w.case_id, f) for f in files))
    assert sorted(r.status_code for r in answers) == [201] + [413] * 5, [r.text for r in answers]
    assert await db.ApplicationMaterial.filter(application_id=w.case_id, material_code="M01").count() == 1


async def test_the_same_file_again_answers_the_first_upload(app, client):
    w = await upload_world(app, client)
    data = png()
    first = await upload(client, w.resident, w.case_id, data)
    again = await upload(client, w.resident, w.case_id, data)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert await db.ApplicationMaterial.all().count() == 1


async def test_files_per_case_are_capped(app, client, settings):
    w = await upload_world(app, client)
    cap = settings.uploads.max_files_per_application
    await db.ApplicationMaterial.bulk_create(
        [
            db.ApplicationMaterial(
                application_id=w.case_id,
                material_code="M02",
                sha256=f"{i:064x}",
                size=10,
                content_type="image/png",
                uploaded_by_id=w.resident_id,
            )
            for i in range(cap)
        ]
    )
    r = await upload(client, w.resident, w.case_id, png())
    assert r.status_code == 422
    assert r.json()["code"] == "too_many_files"


async def test_unknown_material_code_is_422(app, client):
    w = await upload_world(app, client)
    for code in ("M99", "m01", "../M01", "X" * 200):
        r = await upload(client, w.resident, w.case_id, png(), code=code)
        assert r.status_code == 422, (code, r.text)
        assert r.json()["code"] == "unknown_material"
        assert r.json()["errors"][0]["field"] == "material_code"
    assert await db.ApplicationMaterial.all().count() == 0


async def test_missing_fields_are_422_naming_them(app, client):
    w = await upload_world(app, client)
    url = f"{APPS}/{w.case_id}/materials"
    r = await client.post(url, data={"material_code": "M01"}, files={"other": ("a.png", png(), "image/png")},
                          headers=w.resident)  # fmt: skip
    assert r.status_code == 422 and {e["field"] for e in r.json()["errors"]} == {"file"}
    r = await client.post(url, files={"file": ("a.png", png(), "image/png")}, headers=w.resident)
    assert r.status_code == 422 and {e["field"] for e in r.json()["errors"]} == {"material_code"}
    r = await client.post(url, files={"file": ("a.png", png(), "image/png"), "material_code": (None, "M01")},
                          headers=w.resident)  # fmt: skip
    assert r.status_code == 201, r.text
    # two files in one request, two codes
    r = await client.post(
        url,
        data={"material_code": "M02"},
        files=[("file", ("a.png", png(), "image/png")), ("file", ("b.png", png(3, 3), "image/png"))],
        headers=w.resident,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "file"
    # not multipart at all
    r = await client.post(url, json={"material_code": "M01", "file": "aGVsbG8="}, headers=w.resident)
    assert r.status_code == 415
    assert await db.ApplicationMaterial.all().count() == 1


async def test_multipart_without_boundary_is_415_and_logs_no_traceback(app, client, caplog):
    w = await upload_world(app, client)
    caplog.set_level(logging.DEBUG)
    r = await client.post(
        f"{APPS}/{w.case_id}/materials",
        content=b'--x\r\nContent-Disposition: form-data; name="material_code"\r\n\r\nM01\r\n--x--\r\n',
        headers={**w.resident, "Content-Type": "multipart/form-data"},
    )
    assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type"
    assert not [
        rec for rec in caplog.records if rec.exc_info or "Failed when parsing form" in rec.getMessage()
    ]
    assert await db.ApplicationMaterial.all().count() == 0


async def test_uploads_only_while_waiting_for_intake_or_correction(app, client):
    w = await upload_world(app, client)
    r = await client.post(
        f"{WORK}/{w.case_id}/actions",
        json={"action": "return", "missing_materials": [{"material_code": "M02", "reason": "户口簿缺页"}]},
        headers=w.grid,
    )
    assert r.status_code == 200, r.text
    r = await upload(client, w.resident, w.case_id, png(), code="M02")
    assert r.status_code == 201, r.text  # a returned case takes the missing material
    r = await client.post(f"{APPS}/{w.case_id}/resubmit", headers=w.resident)
    assert r.status_code == 200, r.text
    r = await client.post(f"{WORK}/{w.case_id}/actions", json={"action": "accept"}, headers=w.grid)
    assert r.status_code == 200, r.text
    r = await upload(client, w.resident, w.case_id, png(3, 3))
    assert r.status_code == 409
    assert r.json()["code"] == "invalid_transition"
    assert await db.ApplicationMaterial.filter(application_id=w.case_id).count() == 1


async def test_another_residents_case_and_files_are_404(app, client):
    w = await upload_world(app, client)
    r = await upload(client, w.resident, w.case_id, png())
    assert r.status_code == 201
    material_id = r.json()["id"]
    # 李娟 cannot upload to 张三's case, nor read its file, under any id
    r = await upload(client, w.other_resident, w.case_id, png(3, 3))
    assert r.status_code == 404 and r.json()["code"] == "application_not_found"
    r = await client.get(f"{APPS}/{w.case_id}/materials/{material_id}", headers=w.other_resident)
    assert r.status_code == 404
    own_case = (await new_case(w, headers=w.other_resident))["id"]
    r = await client.get(f"{APPS}/{own_case}/materials/{material_id}", headers=w.other_resident)
    assert r.status_code == 404 and r.json()["code"] == "material_not_found"
    # an id that does not exist answers the same
    r = await client.get(f"{APPS}/{w.case_id}/materials/{material_id + 1000}", headers=w.resident)
    assert r.status_code == 404
    r = await upload(client, w.resident, 999_999, png())
    assert r.status_code == 404
    assert await db.ApplicationMaterial.all().count() == 1


async def test_clerks_download_in_scope_only(app, client):
    w = await upload_world(app, client)
    data = png()
    r = await upload(client, w.resident, w.case_id, data)
    url = f"{WORK}/{w.case_id}/materials/{r.json()['id']}"
    for headers in (w.grid, w.staff):  # the grid worker of the point, the clerk of the department
        r = await client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        assert r.content == data
        assert r.headers["content-disposition"] == 'attachment; filename="M01.png"'
        assert r.headers["x-content-type-options"] == "nosniff"
    for headers in (w.other_grid, w.other_staff):  # another point's grid worker, another department
        r = await client.get(url, headers=headers)
        assert r.status_code == 404, r.text
    r = await client.get(url, headers=w.resident)  # a resident has his own route
    assert r.status_code == 403
    r = await client.get(url)
    assert r.status_code == 401


async def test_every_staff_read_of_an_applicants_file_is_audited(app, client):
    """Issue 8: a clerk's or grid worker's download of an applicant's file is an audit row (who, whose file,
    which case and material, the request id); a refused one and the applicant's own are not reads of
    someone else's data."""
    w = await upload_world(app, client)
    material = (await upload(client, w.resident, w.case_id, png())).json()
    url = f"{WORK}/{w.case_id}/materials/{material['id']}"
    request_ids = []
    for headers in (w.grid, w.staff, w.admin):
        r = await client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        request_ids.append(r.headers["x-request-id"])
    for headers in (w.other_grid, w.other_staff):
        assert (await client.get(url, headers=headers)).status_code == 404
    assert (await client.get(f"{WORK}/{w.case_id}/materials/999999", headers=w.staff)).status_code == 404
    r = await client.get(f"{APPS}/{w.case_id}/materials/{material['id']}", headers=w.resident)
    assert r.status_code == 200

    r = await client.get("/api/v1/admin/audit", params={"account": w.resident_id}, headers=w.admin)
    reads = [e for e in r.json()["items"] if e["action"] == "application.material_read"]
    assert [e["actor_role"] for e in reads] == ["admin", "staff", "grid_worker"]  # newest first
    assert [e["request_id"] for e in reads] == list(reversed(request_ids))
    case = await db.Application.get(id=w.case_id)
    for entry in reads:
        assert entry["subject"] == w.resident_id and entry["actor"] is not None
        assert entry["detail"] == {
            "application": case.number,
            "material": material["id"],
            "filename": "M01.png",
        }


async def test_upload_needs_a_resident(app, client):
    w = await upload_world(app, client)
    r = await upload(client, w.staff, w.case_id, png())
    assert r.status_code == 403
    r = await upload(client, {}, w.case_id, png())
    assert r.status_code == 401


async def test_uploads_are_rate_limited_per_applicant(app, client, settings):
    w = await upload_world(app, client)
    limit = settings.uploads.max_per_hour
    for _ in range(limit):  # the hour's uploads already made (counted the same way the route counts)
        await app.ctx.services.cases.limiter.hit("upload", str(w.resident_id), limit, 3600)
    r = await upload(client, w.resident, w.case_id, png())
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    # another applicant is not held back
    other_case = (await new_case(w, headers=w.other_resident))["id"]
    r = await upload(client, w.other_resident, other_case, png())
    assert r.status_code == 201, r.text


async def test_rate_limit_counts_real_uploads(app, client, settings):
    w = await upload_world(app, client)
    limit = settings.uploads.max_per_hour
    for _ in range(limit - 1):
        await app.ctx.services.cases.limiter.hit("upload", str(w.resident_id), limit, 3600)
    assert (await upload(client, w.resident, w.case_id, png())).status_code == 201
    assert (await upload(client, w.resident, w.case_id, png(3, 3))).status_code == 429
