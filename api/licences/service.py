"""A resident's e-licences, read from the library and checked; presentations (亮证) and their verification.

What is read from the library passes `check_signature` first: a record whose issuer's signature is missing or
wrong is dropped and logged (`licence.signature_refused`), never shown, presented or verified. A record of an
issuer we do not trust is shown (`issuer_trusted: false`) but cannot be presented, and a presentation made
before its issuer left the trust list verifies as `unknown_issuer`.

Redis keeps the last good read, sealed with the personal-data cipher (it holds names and numbers), for
`stale_ttl`: a read younger than `status_ttl` (≤ 60 s) stands for the licence's status, an older one is read
again. When the library cannot be reached, the resident's own views answer from the older read with
`stale: true` and its time; a verification never does (`status_unavailable`, fail closed): the verifier must
learn the status as it is now, a revocation within `status_ttl` of the library's.

Every verification that gets past the rate limits is one audit row (`licence_verification`), refused tokens
included; the holder reads the rows of his licences (`verifications`)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import orjson

from api.identity import service as identity
from api.kit import clock
from api.kit.auth import Principal, Role
from api.kit.db import in_transaction
from api.kit.errors import RealNameRequired, UpstreamError, UpstreamTimeout, invalid
from api.kit.http import decode_id_cursor, encode_cursor
from api.kit.later import stopped_within
from api.kit.pii import PiiDecryptError, mask_address, mask_id_number, mask_name
from api.kit.workdays import local_date
from api.licences import qr, tokens
from api.licences.deps import Licences
from api.licences.errors import IssuerUntrusted, LicenceNotFound, LicenceNotValid, PresentationRefused
from api.licences.schemas import (
    LicenceDetail,
    LicenceList,
    LicenceOut,
    LicenceStatus,
    PresentationIn,
    PresentationOut,
    VerificationList,
    VerificationOut,
    VerificationRecord,
    VerifiedLicence,
)
from api.licences.types import (
    DEFAULT_FIELDS,
    LICENCE_TYPES,
    MASKED_FOR_OTHERS,
    fields_in,
    fields_of,
    mask_of,
    type_name,
)
from integrations.elicence import LibraryLicence, check_signature
from models import licences as db
from models import notifications as notifications_db

log = logging.getLogger("ywt.licences")

__all__ = ["Licences", "type_name"]

PRESENT_RATE = "licence_present"
VERIFY_RATE = "licence_verify"
VERIFY_IP_RATE = "licence_verify_ip"
# who sees the chosen fields as they are: the clerks at a counter, doing business with the person in front of
# them; grid workers and other systems see personal values masked
FULL_VIEW = frozenset({Role.STAFF, Role.ADMIN})
ROLE_NAMES = {"staff": "窗口工作人员", "admin": "管理员", "grid_worker": "网格员", "api_key": "系统"}
_NOT_VALID_REASON = {"revoked": "revoked", "suspended": "suspended", "expired": "expired_licence"}
UPSTREAM = (UpstreamError, UpstreamTimeout)


# ---- the cache: the last good read, sealed --------------------------------------------------------------


def _record_dict(record: LibraryLicence) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    data["valid_from"] = record.valid_from.isoformat()
    data["valid_until"] = record.valid_until.isoformat() if record.valid_until else None
    return data


def _record_of(data: dict[str, Any]) -> LibraryLicence:
    return LibraryLicence(
        **{
            **data,
            "valid_from": date.fromisoformat(data["valid_from"]),
            "valid_until": date.fromisoformat(data["valid_until"]) if data["valid_until"] else None,
        }
    )


def _list_key(account_id: int) -> str:
    return f"lic:list:{account_id}"


def _one_key(licence_id: int) -> str:
    return f"lic:one:{licence_id}"


async def _load(lic: Licences, key: str) -> dict[str, Any] | None:
    return _unseal(lic, key, await lic.kernel.redis.get(key))


def _unseal(lic: Licences, key: str, sealed: bytes | None) -> dict[str, Any] | None:
    if sealed is None:
        return None
    try:
        value: dict[str, Any] = orjson.loads(lic.kernel.cipher.decrypt(sealed.decode(), key))
    except (PiiDecryptError, orjson.JSONDecodeError, UnicodeDecodeError):
        return None  # sealed with a key since removed: read again
    return value


def _seal(lic: Licences, key: str, value: dict[str, Any]) -> str:
    return lic.kernel.cipher.encrypt(orjson.dumps(value).decode(), key)


def _fresh(lic: Licences, entry: dict[str, Any], now: float) -> bool:
    return now - float(entry["read_at"]) < lic.kernel.settings.licences.status_ttl


async def _store(lic: Licences, entries: dict[str, dict[str, Any]]) -> None:
    ttl = lic.kernel.settings.licences.stale_ttl
    async with lic.kernel.redis.pipeline(transaction=False) as pipe:
        for key, value in entries.items():
            pipe.set(key, _seal(lic, key, value), ex=ttl)
        await pipe.execute()


# ---- reading the library -----------------------------------------------------------------------------------


def _trusted(lic: Licences, record: LibraryLicence, holder_id_number: str | None) -> bool:
    """Whether a record read from the library may be used: signed by its issuer (or of an issuer we do not
    trust, which is shown as such) and, when we know whose it should be, his."""
    if holder_id_number is not None and record.holder_id_number != holder_id_number:
        log.warning("licence.holder_mismatch", extra={"fields": {"event": "licence.holder_mismatch"}})
        return False
    if check_signature(record, lic.issuers) == "bad":
        log.warning(
            "licence.signature_refused",
            extra={
                "fields": {"event": "licence.signature_refused", "issuer": record.issuer, "type": record.type}
            },
        )
        return False
    return True


def status_of(record: LibraryLicence, today: date) -> LicenceStatus:
    if record.status in ("revoked", "suspended"):
        return record.status
    if record.valid_until is not None and record.valid_until < today:
        return "expired"
    return "valid"


async def _person(lic: Licences, account_id: int) -> tuple[str, str]:
    person = await identity.verified_person(lic.identity, account_id)
    if person is None:
        raise RealNameRequired()
    return person


async def _rows_for(account_id: int, records: list[LibraryLicence]) -> dict[str, db.Licence]:
    """Our row of each record (made for the new ones; a renewed validity noted)."""
    rows = await db.licences_of(account_id)
    new = [(r.id, r.type, r.valid_until) for r in records if r.id not in rows]
    if new:
        await db.add_licences(account_id, new)
        rows = await db.licences_of(account_id)
    for record in records:
        row = rows[record.id]
        if row.valid_until != record.valid_until:
            await db.set_validity(row.id, record.valid_until)
    return rows


async def _read_list(lic: Licences, account_id: int) -> tuple[list[tuple[int, LibraryLicence]], float, bool]:
    """The holder's (licence id, record) pairs, when they were read, and whether that read is stale."""
    now = time.time()
    cached = await _load(lic, _list_key(account_id))
    if cached is not None and _fresh(lic, cached, now):
        return [(i, _record_of(r)) for i, r in cached["items"]], float(cached["read_at"]), False
    name, id_number = await _person(lic, account_id)
    try:
        found = await lic.library.licences_of(name, id_number)
    except UPSTREAM:
        if cached is None:
            raise
        return [(i, _record_of(r)) for i, r in cached["items"]], float(cached["read_at"]), True
    records = [r for r in found if _trusted(lic, r, id_number)]
    rows = await _rows_for(account_id, records)
    pairs = [(rows[r.id].id, r) for r in records]
    entries = {_list_key(account_id): {"read_at": now, "items": [(i, _record_dict(r)) for i, r in pairs]}}
    for licence_id, record in pairs:
        entries[_one_key(licence_id)] = {
            "read_at": now,
            "account_id": account_id,
            "record": _record_dict(record),
        }
    await _store(lic, entries)
    return pairs, now, False


@dataclass(frozen=True)
class Read:
    record: LibraryLicence | None  # None: the library no longer holds it (or holds it unsigned)
    account_id: int
    read_at: float
    stale: bool


async def _read_one(
    lic: Licences,
    licence_id: int,
    *,
    allow_stale: bool,
    owner: int | None = None,
    sealed: bytes | None | Literal[False] = False,
) -> Read | None:
    """One licence by our id (None when we have no such licence, or `owner`'s account has none of that id),
    fresh unless `allow_stale` and the library is down; a verification takes it fresh or not at all
    (UpstreamError / UpstreamTimeout). `sealed` is the cache's entry when the caller has fetched it already
    (None: there is none). A fresh cached read answers without the database: the caller compares its
    `account_id` with whom it serves."""
    now = time.time()
    key = _one_key(licence_id)
    cached = await _load(lic, key) if sealed is False else _unseal(lic, key, sealed)
    if cached is not None and _fresh(lic, cached, now):
        return Read(_record_of(cached["record"]), int(cached["account_id"]), float(cached["read_at"]), False)
    row = await (db.licence_by_id(licence_id) if owner is None else db.own_licence(owner, licence_id))
    if row is None:
        return None
    try:
        record = await lic.library.licence(row.library_id)
    except UPSTREAM:
        if allow_stale and cached is not None:
            return Read(_record_of(cached["record"]), row.account_id, float(cached["read_at"]), True)
        raise
    if record is not None and not _trusted(
        lic, record, cached["record"]["holder_id_number"] if cached else None
    ):
        record = None
    if record is not None:
        await _store(
            lic, {key: {"read_at": now, "account_id": row.account_id, "record": _record_dict(record)}}
        )
    return Read(record, row.account_id, now, False)


# ---- the holder's views ------------------------------------------------------------------------------------


def _masked_fields(record: LibraryLicence) -> dict[str, str]:
    out = {}
    for name, value in record.data.items():
        if name in ("address", "property_address"):
            out[name] = mask_address(value) or ""
        elif name in ("spouse", "child_name"):
            out[name] = mask_name(value) or ""
        else:
            out[name] = value
    return out


def _mask_number(number: str) -> str:
    return mask_id_number(number) or ""


def _licence_out(lic: Licences, licence_id: int, record: LibraryLicence, today: date) -> dict[str, Any]:
    return {
        "id": licence_id,
        "type": record.type,
        "type_name": type_name(record.type),
        "issuer": record.issuer_name,
        "number": _mask_number(record.number),
        "holder": mask_name(record.holder_name) or "",
        "valid_from": record.valid_from,
        "valid_until": record.valid_until,
        "status": status_of(record, today),
        "issuer_trusted": record.issuer in lic.issuers,
        "fields": _masked_fields(record),
        "disclosable": list(fields_of(record.type)),
    }


def _city_time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, clock.CITY_TZ)


async def my_licences(lic: Licences, principal: Principal) -> LicenceList:
    pairs, read_at, stale = await _read_list(lic, principal.account_id)
    today = local_date(clock.now())
    return LicenceList(
        items=[LicenceOut(**_licence_out(lic, i, r, today)) for i, r in pairs],
        stale=stale,
        read_at=_city_time(read_at),
    )


async def _own(
    lic: Licences, principal: Principal, licence_id: int, *, allow_stale: bool
) -> tuple[Read, LibraryLicence]:
    read = await _read_one(lic, licence_id, allow_stale=allow_stale, owner=principal.account_id)
    if read is None or read.account_id != principal.account_id:
        raise LicenceNotFound()
    if read.record is None:
        raise LicenceNotFound("电子证照库中已没有这本证照")
    return read, read.record


async def my_licence(lic: Licences, principal: Principal, licence_id: int) -> LicenceDetail:
    read, record = await _own(lic, principal, licence_id, allow_stale=True)
    out = _licence_out(lic, licence_id, record, local_date(clock.now()))
    return LicenceDetail(**out, stale=read.stale, read_at=_city_time(read.read_at))


# ---- presentations -----------------------------------------------------------------------------------------


async def present(
    lic: Licences, principal: Principal, licence_id: int, body: PresentationIn
) -> PresentationOut:
    settings = lic.kernel.settings.licences
    chosen = tuple(dict.fromkeys(body.fields)) if body.fields else DEFAULT_FIELDS
    _, record = await _own(lic, principal, licence_id, allow_stale=True)
    allowed = fields_of(record.type)
    for name in chosen:
        if name not in allowed:
            raise invalid("fields", f"{type_name(record.type)}没有可出示的字段 {name}")
    if record.issuer not in lic.issuers:
        raise IssuerUntrusted()
    if status_of(record, local_date(clock.now())) != "valid":
        raise LicenceNotValid()
    await lic.kernel.limiter.hit(
        PRESENT_RATE, str(principal.account_id), settings.presentations_per_hour, 3600
    )
    expires_at = int(time.time()) + settings.presentation_ttl
    token, _ = tokens.make(lic.signer, licence_id, mask_of(chosen), body.single_use, expires_at)
    return PresentationOut(
        token=token,
        qr_svg=qr.svg(token),
        expires_at=_city_time(expires_at),
        fields=list(chosen),
        single_use=body.single_use,
    )


# ---- verification ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verifier:
    role: str  # grid_worker | staff | admin | api_key
    account_id: int | None
    key_id: int | None
    limit: int  # per minute

    @property
    def subject(self) -> str:
        return f"key:{self.key_id}" if self.key_id is not None else f"account:{self.account_id}"


def _used_key(nonce: bytes) -> str:
    return f"lic:used:{nonce.hex()}"


def _shown(
    record: LibraryLicence, chosen: tuple[str, ...], full: bool, status: LicenceStatus
) -> VerifiedLicence:
    def value(name: str, raw: str) -> str:
        if full or name not in MASKED_FOR_OTHERS:
            return raw
        if name == "number":
            return _mask_number(raw)
        if name in ("address", "property_address"):
            return mask_address(raw) or ""
        if name == "birth_date":
            return raw[:4] + "-**-**"
        return mask_name(raw) or ""

    return VerifiedLicence(
        type=record.type,
        type_name=type_name(record.type),
        issuer=record.issuer_name,
        number=value("number", record.number) if "number" in chosen else None,
        holder=value("holder", record.holder_name) if "holder" in chosen else None,
        valid_from=record.valid_from if "validity" in chosen else None,
        valid_until=record.valid_until if "validity" in chosen else None,
        status=status,
        fields={name: value(name, record.data[name]) for name in chosen if name in record.data},
    )


async def verify(lic: Licences, verifier: Verifier, token: str, ip: str) -> VerificationOut:
    hits = (
        (VERIFY_RATE, verifier.subject, verifier.limit, 60),
        (VERIFY_IP_RATE, ip, lic.kernel.settings.licences.verify_per_ip_per_minute, 60),
    )
    try:
        shown: tokens.Presentation | None = tokens.read(lic.signers, token)
    except tokens.BadToken:
        shown = None
    # counted whether the token is genuine or not; with the cached licence, in one round trip
    fetch = [("GET", _one_key(shown.licence_id))] if shown is not None else []
    replies = await lic.kernel.limiter.hit_together(lic.kernel.versions.together, hits, *fetch)
    sealed = replies[0] if replies else None

    async def record(licence_id: int | None, valid: bool, reason: str | None, mask: int = 0) -> None:
        await db.record_verification(
            licence_id=licence_id,
            verifier_account_id=verifier.account_id,
            verifier_key_id=verifier.key_id,
            verifier_role=verifier.role,
            valid=valid,
            reason=reason,
            fields_mask=mask,
            ip=ip,
            at=clock.now(),
        )

    if shown is None:
        await record(None, False, "forged")
        raise PresentationRefused("forged") from None
    now = time.time()
    if now >= shown.expires_at:
        await record(await _known(shown.licence_id), False, "expired_token")
        raise PresentationRefused("expired_token")
    redis = lic.kernel.redis
    if shown.single_use and not await redis.set(
        _used_key(shown.nonce), b"1", nx=True, exat=shown.expires_at + 1
    ):
        await record(await _known(shown.licence_id), False, "replayed")
        raise PresentationRefused("replayed")
    checked_at = clock.now()
    try:
        read = await _read_one(lic, shown.licence_id, allow_stale=False, sealed=sealed)
    except UPSTREAM:
        if shown.single_use:  # not used: nothing was verified; the holder may show the same code again
            await redis.delete(_used_key(shown.nonce))
        await record(await _known(shown.licence_id), False, "status_unavailable")
        return VerificationOut(valid=False, reason="status_unavailable", checked_at=checked_at)
    if read is None:  # the holder's account is gone, and his licences with it
        await record(None, False, "revoked")
        return VerificationOut(valid=False, reason="revoked", checked_at=checked_at)
    if read.record is None:  # the library no longer holds it
        await record(shown.licence_id, False, "revoked")
        return VerificationOut(valid=False, reason="revoked", checked_at=checked_at)
    licence = read.record
    if licence.issuer not in lic.issuers:
        await record(shown.licence_id, False, "unknown_issuer")
        return VerificationOut(valid=False, reason="unknown_issuer", checked_at=checked_at)
    status = status_of(licence, local_date(checked_at))
    reason = _NOT_VALID_REASON.get(status)
    chosen = fields_in(shown.fields)
    answer = _shown(licence, chosen, verifier.role in FULL_VIEW, status)
    await record(shown.licence_id, reason is None, reason, shown.fields)
    return VerificationOut(valid=reason is None, reason=reason, checked_at=checked_at, licence=answer)


async def _known(licence_id: int) -> int | None:
    """The licence id of a genuine token, for the audit row, when the licence still exists."""
    row = await db.licence_by_id(licence_id)
    return row.id if row is not None else None


async def verifications(
    lic: Licences, principal: Principal, licence_id: int, cursor: str | None, limit: int
) -> VerificationList:
    if await db.own_licence(principal.account_id, licence_id) is None:
        raise LicenceNotFound()
    before = decode_id_cursor(cursor, "before", maximum=2**63 - 1)
    rows = await db.verifications_of(licence_id, before, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    items = []
    for row in rows:
        role = row["verifier_role"]
        label = ROLE_NAMES.get(role, role)
        # a system by its key's name; a person by his role, after his department when he has one
        who = row["key_name"] if role == "api_key" else f"{row['department'] or ''} {label}".strip()
        items.append(
            VerificationRecord(
                id=row["id"],
                at=row["created_at"],
                verifier=who or label,
                verifier_role=role,
                valid=row["valid"],
                reason=row["reason"],
                fields=list(fields_in(row["fields_mask"])),
            )
        )
    next_cursor = encode_cursor({"before": rows[-1]["id"]}) if more and rows else None
    return VerificationList(items=items, next_cursor=next_cursor)


async def library_id_of(licence_id: int) -> str | None:
    """The library's identifier of one of our licences (for the sandbox's endpoints)."""
    row = await db.licence_by_id(licence_id)
    return row.library_id if row is not None else None


async def forget_reads(lic: Licences, licence_id: int) -> None:
    """Drop our copies of a licence's last read (the sandbox changed it: the next read asks the library)."""
    row = await db.licence_by_id(licence_id)
    keys = [_one_key(licence_id)] + ([_list_key(row.account_id)] if row is not None else [])
    await lic.kernel.redis.delete(*keys)


# ---- for other areas --------------------------------------------------------------------------------------


def is_licence_type(code: str) -> bool:
    return code in LICENCE_TYPES


@dataclass(frozen=True)
class Attached:
    licence_id: int
    licence_type: str
    verified_at: datetime


async def check_attached(
    lic: Licences, account_id: int, licence_id: int, licence_type: str, field: str
) -> Attached:
    """An e-licence the applicant attaches for a material (免提交): his own, of the type the material takes,
    its issuer's signature good and trusted, valid now as the library says (read fresh: 502/504 when it
    cannot be asked). 422 on `field` for a licence not his or of another type; 409 licence_not_valid."""
    read = await _read_one(lic, licence_id, allow_stale=False, owner=account_id)
    if read is None or read.account_id != account_id:
        raise invalid(field, "没有这本电子证照")
    if read.record is None:
        raise invalid(field, "电子证照库中已没有这本证照")
    record = read.record
    if record.type != licence_type:
        raise invalid(field, f"该材料须为{type_name(licence_type)}，不是{type_name(record.type)}")
    if record.issuer not in lic.issuers:
        raise IssuerUntrusted()
    if status_of(record, local_date(clock.now())) != "valid":
        raise LicenceNotValid(f"{type_name(record.type)}当前无效(已过期、吊销或暂扣)，请上传材料或更新证照")
    return Attached(licence_id=licence_id, licence_type=record.type, verified_at=clock.now())


# ---- the 30-day notice -------------------------------------------------------------------------------------


async def tell_expiring(lic: Licences, *, batch: int = 200) -> int:
    """One pass: each licence ending within `expiry_notice_days` whose end was not told of yet, read again
    from the library (a renewal or revocation since we last saw it is not told as an expiry), is told to its
    holder in his inbox (and his other channels, as he chose). Returns how many were told."""
    today = local_date(clock.now())
    until = today + timedelta(days=lic.kernel.settings.licences.expiry_notice_days)
    told = 0
    for row in await db.expiring(until, today, batch):
        try:
            record = await lic.library.licence(row.library_id)
        except UPSTREAM:
            log.warning("licence expiry pass: the library is down; trying again next pass")
            break
        if record is None or not _trusted(lic, record, None) or record.status != "valid":
            continue
        if record.valid_until != row.valid_until:
            await db.set_validity(row.id, record.valid_until)
            if record.valid_until is None or record.valid_until > until:
                continue
        assert record.valid_until is not None
        async with in_transaction():
            if not await db.told_expiry(row.id, record.valid_until):
                continue
            days = (record.valid_until - today).days
            await notifications_db.notify(
                row.account_id,
                "licence_expiry",
                f"您的{type_name(record.type)}即将到期",
                f"您的{type_name(record.type)}将于 {record.valid_until.isoformat()} 到期(还有 {days} 天)，请及时办理换证。",
            )
        told += 1
    return told


SWEEP_CURSOR_KEY = "lic:sweep:after"


async def learn_licences(lic: Licences, *, batch: int) -> int:
    """One step of the sweep that learns the licences of residents who never listed them (so the expiry
    notice reaches them too): the next `batch` real-name-verified accounts after the last one swept are read
    from the library and their new licences noted. The place is kept in Redis; after the last account the
    sweep starts again from the first. The library down ends the step where it stood. Returns how many
    accounts were read."""
    redis = lic.kernel.redis
    after = int(await redis.get(SWEEP_CURSOR_KEY) or 0)
    accounts = await identity.real_named_after(after, batch)
    read = 0
    for account_id in accounts:
        try:
            person = await identity.verified_person(lic.identity, account_id)
            if person is not None:
                found = await lic.library.licences_of(*person)
                await _rows_for(account_id, [r for r in found if _trusted(lic, r, person[1])])
                read += 1
        except UPSTREAM:
            log.warning("licence sweep: the library is down; going on from here next pass")
            break
        except Exception:  # one account's trouble must not hold the sweep at it for ever
            log.exception("licence sweep: account %d skipped", account_id)
        after = account_id
    else:
        if len(accounts) < batch:
            after = 0  # the end: the next step starts from the first account again
    await redis.set(SWEEP_CURSOR_KEY, after)
    return read


async def expiry_forever(
    lic: Licences, interval: float, stop: asyncio.Event, *, first_after: float = 0.0
) -> None:
    """A step of `learn_licences`, then `tell_expiring`, every `interval` seconds (the first after
    `first_after`) until `stop` is set; a failing step or pass is logged and the next one tries again (what it
    told is marked, so nothing is told twice)."""
    log.info("licence expiry watch started", extra={"fields": {"interval": interval}})
    if await stopped_within(stop, first_after):
        return
    while not stop.is_set():
        try:
            await learn_licences(lic, batch=lic.kernel.settings.licences.sweep_batch)
        except Exception:
            log.exception("licence sweep step failed")
        try:
            told = await tell_expiring(lic)
            if told:
                log.info("licence expiry pass", extra={"fields": {"told": told}})
        except Exception:
            log.exception("licence expiry pass failed")
        if await stopped_within(stop, interval):
            break
    log.info("licence expiry watch stopped")
