"""Demo staff of embedded mode: an admin, a window clerk per department, grid workers for 渝水区.

`seed_demo_people(settings, identity)` creates them (idempotent: a phone that already has an account is left alone)
through the identity service, so phones are encrypted and blind-indexed with the keyring
the server reads (data_dir/keys). Every demo staff account has the password `DEMO_PASSWORD`.

The residents 张三, 李娟 and 王五 (DESIGN.md "Demo people") are NOT created here: they sign up with an SMS
code like anyone else (`make demo` does it for 张三).

Embedded mode only: in production the function creates nothing (known passwords have no place there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from api.identity.service import Identity
    from api.kit.config import Settings

# the password of every demo staff account (admin, clerks, grid workers) — embedded mode only
DEMO_PASSWORD = "Xinyu2026"

ADMIN_PHONE = "13700000000"

# the case `make demo` drives: a civil-affairs item handled at community level, at 长青社区's point,
# delivered by its grid worker
DEMO_ITEM = "360500-MZ-003"  # 临时救助申请 (civil_affairs, committed, 10 working days)
DEMO_POINT = "P360502001001"  # 长青社区党群服务中心便民服务站 (渝水区)
DEMO_DEPARTMENT = "civil_affairs"


@dataclass(frozen=True)
class DemoPerson:
    role: str  # admin | staff | grid_worker
    phone: str
    serves: str  # what they serve, in words (for the README)
    department: str | None = None
    points: tuple[str, ...] = ()


# one window clerk per department owning community-level items in seeds/catalog.json (all 15 do);
# civil affairs first, as it owns the demo case
_DEPARTMENTS: tuple[tuple[str, str], ...] = (
    ("civil_affairs", "新余市民政局"),
    ("public_security", "新余市公安局"),
    ("human_resources", "新余市人力资源和社会保障局"),
    ("medical_security", "新余市医疗保障局"),
    ("disabled_federation", "新余市残疾人联合会"),
    ("health_commission", "新余市卫生健康委员会"),
    ("housing_provident_fund", "新余市住房公积金管理中心"),
    ("housing_construction", "新余市住房和城乡建设局"),
    ("market_supervision", "新余市市场监督管理局"),
    ("natural_resources", "新余市自然资源局"),
    ("tax", "国家税务总局新余市税务局"),
    ("veterans_affairs", "新余市退役军人事务局"),
    ("education", "新余市教育局"),
    ("administrative_approval", "新余市行政审批局"),
    ("justice", "新余市司法局"),
)

# grid workers covering every community point of 渝水区 (district 360502), a few points each;
# the first one serves the demo point
_GRID: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("城南街道 长青·天工·沿江社区", ("P360502001001", "P360502001002", "P360502001003")),
    ("城南街道 渝东·城南·白竹社区", ("P360502001004", "P360502001005", "P360502001006")),
    ("城北街道 胜利·仙来·团结社区", ("P360502002001", "P360502002002", "P360502002003")),
    ("城北街道 抱石·北湖·劳动社区", ("P360502002004", "P360502002005", "P360502002006")),
    (
        "袁河街道 袁河·公园·下保·毓秀社区",
        ("P360502003001", "P360502003002", "P360502003003", "P360502003004"),
    ),
    ("新钢街道 钢苑·冶金·新钢社区", ("P360502004001", "P360502004002", "P360502004003")),
    (
        "罗坊镇、姚圩镇",
        ("P360502101001", "P360502101200", "P360502101201", "P360502102200", "P360502102201"),
    ),
    (
        "水北镇、珠珊镇、良山镇、下村镇、人和乡",
        ("P360502103001", "P360502103200", "P360502104200", "P360502104201", "P360502105200")
        + ("P360502106200", "P360502201200"),
    ),
)

DEMO_PEOPLE: tuple[DemoPerson, ...] = (
    DemoPerson("admin", ADMIN_PHONE, "全市 / whole city"),
    *(
        DemoPerson("staff", f"137000001{n:02d}", f"{name} ({code})", department=code)
        for n, (code, name) in enumerate(_DEPARTMENTS, start=1)
    ),
    *(
        DemoPerson("grid_worker", f"137000002{n:02d}", f"{label}: {', '.join(points)}", points=points)
        for n, (label, points) in enumerate(_GRID, start=1)
    ),
)


def person(role: str, *, department: str | None = None, point: str | None = None) -> DemoPerson:
    """The demo person of `role` serving `department` or `point`."""
    for p in DEMO_PEOPLE:
        if p.role != role:
            continue
        if department is not None and p.department != department:
            continue
        if point is not None and point not in p.points:
            continue
        return p
    raise LookupError(f"no demo {role} for {department or point}")


async def seed_demo_people(settings: Settings, ident: Identity) -> list[str]:
    """Create the demo staff accounts that do not exist yet; the database must already be open.

    Returns the lines to print. A department or point missing from the loaded catalogue skips that person
    (with a line saying so) instead of failing the start.
    """
    if not settings.embedded:
        return ["demo people not seeded: production mode"]

    from api.identity import service as identity
    from api.kit.errors import Conflict, InvalidInput

    created: dict[str, int] = {}
    present = 0
    lines: list[str] = []
    # one argon2 hash for all of them: a hash takes ~0.5 s here and 24 would slow the first start by
    # ten seconds; one salted hash shared by accounts with one published password gives nothing away
    password_hash: str | None = None
    for p in DEMO_PEOPLE:
        if await identity.has_account(ident, p.phone):
            present += 1
            continue
        if password_hash is None:
            password_hash = await ident.hash_password(DEMO_PASSWORD)
        try:
            await identity.enrol_staff(
                ident,
                p.phone,
                [p.role],
                department=p.department,
                points=p.points,
                password_hash=password_hash,
                via="seed-demo-people",
            )
        except Conflict:  # created meanwhile by someone else: left alone
            present += 1
            continue
        except InvalidInput as exc:
            reason = "; ".join(e["message"] for e in exc.errors or ()) or exc.detail
            lines.append(f"demo {p.role} {p.phone} skipped: {reason}")
            continue
        created[p.role] = created.get(p.role, 0) + 1
    if created:
        counts = ", ".join(f"{n} {role}" for role, n in created.items())
        lines.insert(
            0,
            f"demo people: {counts} created, {present} already present "
            f"(password {DEMO_PASSWORD}; admin {ADMIN_PHONE}, clerks 137000001NN, grid workers 137000002NN)",
        )
    else:
        lines.insert(0, f"demo people present ({present}), not seeded again")
    return lines
