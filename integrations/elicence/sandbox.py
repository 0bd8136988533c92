"""The e-licence library sandbox: the licences of the population sandbox's people, signed by issuer keys of
its own, with a status list that tests and the sandbox endpoints change.

The issuers' keys are derived from their codes (SHA-256 of a fixed phrase and the code, as an Ed25519 seed):
the same on every machine and every start, so a presentation made in one process verifies in another, and
`SANDBOX_ISSUERS` is the trust list of embedded mode. Dates are fixed (one driving licence already expired)
except one per demo person that ends `EXPIRING_IN_DAYS` after the sandbox was made, so the 30-day expiry
notice has something to tell of on any day the demo runs. 钱磊's driving licence is seeded suspended (暂扣),
赵敏's business licence revoked (吊销); `set_status` changes any of them.

A record of an issuer the trust list does not hold (`UNTRUSTED_ISSUER`) is in 褚子轩's list, to show what a
licence whose signature cannot be checked looks like.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from datetime import date, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from api.kit import clock
from api.kit.errors import UpstreamError
from integrations.elicence.base import IssuerKey, LibraryLicence, LibraryStatus, signed_bytes
from integrations.population.sandbox import SANDBOX_PEOPLE

EXPIRING_IN_DAYS = 20
UNTRUSTED_ISSUER = "XY-UNLISTED"

_ISSUERS = {
    "XY-PSB": "新余市公安局",
    "XY-TRAFFIC": "新余市公安局交通警察支队",
    "XY-CIVIL": "新余市渝水区民政局",
    "XY-NRB": "新余市不动产登记中心",
    "XY-AMR": "新余市市场监督管理局",
    "XY-HRSS": "新余市人力资源和社会保障局",
    "XY-DPF": "新余市残疾人联合会",
    "XY-HEALTH": "新余市人民医院",
    "XY-AGING": "新余市民政局",
    UNTRUSTED_ISSUER: "某未列入信任名单的机构",
}


def _issuer_key(code: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"ywt-sandbox-issuer:{code}".encode()).digest()
    )


def _public(code: str) -> bytes:
    return _issuer_key(code).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


SANDBOX_ISSUERS: dict[str, IssuerKey] = {
    code: IssuerKey(code=code, name=name, alg="Ed25519", public_key=_public(code))
    for code, name in _ISSUERS.items()
    if code != UNTRUSTED_ISSUER
}


def sign(record: LibraryLicence, issuer_key: Ed25519PrivateKey | None = None) -> LibraryLicence:
    """The record signed by its issuer's sandbox key (or the key given)."""
    key = issuer_key or _issuer_key(record.issuer)
    signature = base64.b64encode(key.sign(signed_bytes(record))).decode()
    return dataclasses.replace(record, signature=signature)


def _id(type_code: str, id_number: str, n: int = 1) -> str:
    # the library's identifier: opaque, derived so it is stable and shows nothing of the holder
    return "LIC" + hashlib.sha256(f"{type_code}:{id_number}:{n}".encode()).hexdigest()[:20].upper()


def _licence(
    person: dict[str, str],
    type_code: str,
    issuer: str,
    number: str,
    start: date,
    end: date | None,
    data: dict[str, str],
) -> LibraryLicence:
    return LibraryLicence(
        id=_id(type_code, person["id_number"]),
        type=type_code,
        issuer=issuer,
        issuer_name=_ISSUERS[issuer],
        number=number,
        holder_name=person["name"],
        holder_id_number=person["id_number"],
        valid_from=start,
        valid_until=end,
        data=data,
    )


def _licences_of(person: dict[str, str]) -> list[LibraryLicence]:
    idn = person["id_number"]
    born = date.fromisoformat(person["birth_date"])
    district = idn[:6]

    def make(
        type_code: str, issuer: str, number: str, start: date, end: date | None, **data: str
    ) -> LibraryLicence:
        return _licence(person, type_code, issuer, number, start, end, data)

    card_from = date(max(born.year + 26, 2016), born.month, min(born.day, 28))
    card_until = None if born.year < 1980 else date(card_from.year + 20, card_from.month, card_from.day)
    out = [
        make(
            "id_card",
            "XY-PSB",
            idn,
            card_from,
            card_until,
            gender=person["gender"],
            birth_date=person["birth_date"],
            address=person["address"],
        ),
        make(
            "household_register",
            "XY-PSB",
            f"{district}{idn[-6:]}",
            date(2010, 5, 1),
            None,
            address=person["address"],
            relation="户主",
        ),
        make("social_security_card", "XY-HRSS", f"H{idn[-9:]}", date(2019, 3, 1), date(2029, 3, 1)),
    ]
    if born.year <= 1966:
        out.append(make("elderly_card", "XY-AGING", f"LN{idn[-8:]}", date(born.year + 60, 1, 1), None))
    return out


_EXTRA: dict[str, list[tuple[str, str, str, date, date | None, dict[str, str]]]] = {
    # id_number: (type, issuer, number, valid_from, valid_until, data)
    "360502198803152015": [  # 张三
        (
            "driving_licence",
            "XY-TRAFFIC",
            "360502198803152015",
            date(2018, 6, 1),
            None,
            {"vehicle_class": "C1"},
        ),
        (
            "vehicle_licence",
            "XY-TRAFFIC",
            "赣K·8A123",
            date(2021, 4, 12),
            date(2033, 4, 12),
            {"plate_number": "赣K·8A123", "vehicle_type": "小型普通客车"},
        ),
        (
            "real_estate_certificate",
            "XY-NRB",
            "赣(2021)新余市不动产权第0012345号",
            date(2021, 9, 3),
            None,
            {"property_address": "渝水区胜利南路88号3栋2单元501室", "area": "118.6"},
        ),
        (
            "marriage_certificate",
            "XY-CIVIL",
            "J360502-2015-001234",
            date(2015, 10, 1),
            None,
            {"spouse": "李娟"},
        ),
    ],
    "360521199207084021": [  # 李娟
        (
            "marriage_certificate",
            "XY-CIVIL",
            "J360502-2015-001235",
            date(2015, 10, 1),
            None,
            {"spouse": "张三"},
        ),
        (
            "business_licence",
            "XY-AMR",
            "92360502MA3XY0001K",
            date(2020, 3, 18),
            None,
            {"company_name": "新余市渝水区李娟便利店", "credit_code": "92360502MA3XY0001K"},
        ),
        (
            "birth_medical_certificate",
            "XY-HEALTH",
            "Q360520001",
            date(2018, 2, 9),
            None,
            {"child_name": "张小宝", "born_on": "2018-02-09"},
        ),
    ],
    "360502197505206113": [  # 王五
        (
            "driving_licence",
            "XY-TRAFFIC",
            "360502197505206113",
            date(2008, 1, 10),
            date(2024, 1, 10),
            {"vehicle_class": "B2"},
        ),
        (
            "disability_certificate",
            "XY-DPF",
            "36050219750520611343",
            date(2022, 5, 20),
            date(2032, 5, 20),
            {"disability_category": "肢体", "disability_grade": "四级"},
        ),
    ],
    "360502199001010028": [  # 赵敏
        (
            "business_licence",
            "XY-AMR",
            "92360502MA3XY0002L",
            date(2019, 7, 1),
            None,
            {"company_name": "新余市渝水区赵敏服装店", "credit_code": "92360502MA3XY0002L"},
        ),
    ],
    "360521198506120032": [  # 钱磊
        (
            "driving_licence",
            "XY-TRAFFIC",
            "360521198506120032",
            date(2012, 8, 1),
            date(2028, 8, 1),
            {"vehicle_class": "A2"},
        ),
    ],
    "360504200307180095": [  # 褚子轩
        (
            "driving_licence",
            UNTRUSTED_ISSUER,
            "360504200307180095",
            date(2023, 9, 1),
            date(2029, 9, 1),
            {"vehicle_class": "C2"},
        ),
    ],
}

# the one licence of each demo person that ends EXPIRING_IN_DAYS after the sandbox starts
_EXPIRING = {
    "360502198803152015": "social_security_card",
    "360521199207084021": "social_security_card",
    "360502197505206113": "social_security_card",
}
_SEEDED_STATUS: dict[tuple[str, str], LibraryStatus] = {
    ("360521198506120032", "driving_licence"): "suspended",
    ("360502199001010028", "business_licence"): "revoked",
}


def sandbox_licences(today: date | None = None) -> list[LibraryLicence]:
    """Every sandbox licence, signed, with its seeded status."""
    today = today or clock.now().date()
    records: list[LibraryLicence] = []
    for person in SANDBOX_PEOPLE:
        idn = person["id_number"]
        mine = _licences_of(person)
        mine += [_licence(person, *extra) for extra in _EXTRA.get(idn, [])]
        for record in mine:
            if _EXPIRING.get(idn) == record.type:
                record = dataclasses.replace(record, valid_until=today + timedelta(days=EXPIRING_IN_DAYS))
            status = _SEEDED_STATUS.get((idn, record.type), "valid")
            records.append(dataclasses.replace(sign(record), status=status))
    return records


class SandboxLibrary:
    """A LicenceLibrary over `sandbox_licences()` (or the records given), with a changeable status list.

    `down` makes every call fail as an unreachable library would (UpstreamError, 502), for tests of the
    cached, `stale` answers."""

    def __init__(self, records: list[LibraryLicence] | None = None) -> None:
        self._seeded = records
        self.reset()

    def reset(self) -> None:
        """Back to the seeded records and statuses, reachable."""
        records = self._seeded if self._seeded is not None else sandbox_licences()
        self._records = {r.id: r for r in records}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise UpstreamError("电子证照库暂时无法访问")

    async def licences_of(self, holder_name: str, holder_id_number: str) -> list[LibraryLicence]:
        self._check()
        idn = holder_id_number.strip().upper()
        return [
            r for r in self._records.values() if r.holder_id_number == idn and r.holder_name == holder_name
        ]

    async def licence(self, licence_id: str) -> LibraryLicence | None:
        self._check()
        return self._records.get(licence_id)

    def set_status(self, licence_id: str, status: LibraryStatus) -> LibraryLicence:
        """Revoke, suspend or restore a licence (KeyError for one the sandbox does not hold)."""
        record = dataclasses.replace(self._records[licence_id], status=status)
        self._records[licence_id] = record
        return record

    def put(self, record: LibraryLicence) -> None:
        """Hold this record as it is (tests put unsigned or tampered ones here)."""
        self._records[record.id] = record

    def find(self, holder_id_number: str, type_code: str) -> LibraryLicence:
        return next(
            r
            for r in self._records.values()
            if r.holder_id_number == holder_id_number and r.type == type_code
        )

    async def aclose(self) -> None:
        return None
