"""python -m scripts.demo [--base-url http://127.0.0.1:8000] — one whole case through the running service.

Needs the service in embedded mode (`make run`: sandbox endpoints on, demo staff seeded, see
api/sandbox/people.py). Over plain HTTP, as the apps would: 张三 signs in with an SMS code read from the sandbox
gateway, verifies his real name, submits 临时救助申请 at 长青社区's point with delivery by grid worker; the
grid worker returns it once with a notice listing every missing material; 张三 uploads them and resubmits;
the grid worker accepts; the civil-affairs clerk reviews, approves and marks the result ready; the grid
worker delivers it door to door with a photo; 张三 rates it 5. Then the timeline and 张三's inbox.

Each step is one line (Chinese / English, case number, status). Exit 0 when the case went all the way,
1 at the first unexpected answer (its status and body are printed). Re-runnable against the same server:
a fresh Idempotency-Key each run; when 张三's SMS cooldown refuses a new code (429) he signs in with the
password the first run set; a verified real name is not verified again.
"""

from __future__ import annotations

import argparse
import base64
import random
import struct
import sys
import uuid
import zlib
from typing import Any

import httpx

from api.sandbox.people import DEMO_DEPARTMENT, DEMO_ITEM, DEMO_PASSWORD, DEMO_POINT, person

ZHANG = {"name": "张三", "id_number": "360502198803152015", "phone": "13800000001"}
ADDRESS = "渝水区长青南路88号2栋1单元302室"
FORM = {
    "difficulty": "家庭成员突发重大疾病，医疗费用支出较大",
    "household_size": 3,
    "monthly_income_fen": 180000,
}

# the steps, in order: (key, Chinese, English) — each printed once as "[NN] 中文 / English …"
STEPS: tuple[tuple[str, str, str], ...] = (
    ("service", "连接服务", "service is ready"),
    ("sms_code", "张三获取短信验证码", "张三 asks for an SMS code"),
    ("sign_in", "张三登录", "张三 signs in"),
    ("password", "张三设置登录密码", "张三 sets his password"),
    ("real_name", "张三实名认证", "张三 verifies his real name"),
    ("guide", "查看办事指南", "reads the item's guide"),
    ("submit", "张三在社区网点提交申请", "张三 submits at a community point"),
    ("replay", "重复提交(同一幂等键)", "same Idempotency-Key replays the first answer"),
    ("grid_sign_in", "网格员登录手持终端", "grid worker signs in on his handheld"),
    ("return", "网格员退回补正(一次性告知)", "grid worker returns it once, listing every missing material"),
    ("upload", "张三上传补正材料", "张三 uploads the missing materials"),
    ("resubmit", "张三重新提交", "张三 resubmits"),
    ("accept", "网格员受理", "grid worker accepts"),
    ("staff_sign_in", "民政窗口人员登录", "civil-affairs clerk signs in"),
    ("start_review", "窗口开始审查", "clerk starts the review"),
    ("approve", "窗口审批通过", "clerk approves"),
    ("mark_ready", "办理结果制作完成", "clerk marks the result ready"),
    ("deliver", "网格员上门送达", "grid worker delivers door to door"),
    ("evaluate", "张三评价(非常满意)", "张三 rates it 5"),
    ("timeline", "办件时间线", "case timeline"),
    ("inbox", "张三的消息", "张三's inbox"),
)
_TITLES = {key: (zh, en) for key, zh, en in STEPS}


class Unexpected(Exception):
    """An answer the demo did not expect: the step, the request and the response."""

    def __init__(self, message: str, response: httpx.Response | None = None) -> None:
        super().__init__(message)
        self.response = response


def tiny_png(rgb: tuple[int, int, int], size: int = 8) -> bytes:
    """A valid size×size PNG of one colour (a stand-in for a scan or a delivery photo)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    raw = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _problem_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def _route_missing(response: httpx.Response) -> bool:
    """404 from the router (no such route yet), not a 404 about an object."""
    return response.status_code == 404 and _problem_code(response) in (None, "not_found")


class Demo:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.n = 0
        self.step = "service"
        self.case: dict[str, Any] | None = None

    # ---- output ------------------------------------------------------------------------------------

    def say(
        self, key: str, detail: str = "", *, case: dict | None = None, skipped: str | None = None
    ) -> None:
        self.n += 1
        zh, en = _TITLES[key]
        case = case if case is not None else self.case
        parts = [f"[{self.n:02d}] {zh} / {en}"]
        if skipped is not None:
            parts.append(f"— skipped: {skipped}")
        elif case is not None:
            parts.append(f"— {case['number']} {case['status']}")
        if detail:
            parts.append(f"({detail})")
        print(" ".join(parts), flush=True)

    # ---- HTTP ----------------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        token: dict | None = None,
        expect: tuple[int, ...] = (200,),
        allow: tuple[int, ...] = (),
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request; an answer outside `expect` and `allow` stops the demo."""
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token['access_token']}"
        try:
            response = self.client.request(method, path, headers=sent, **kwargs)
        except httpx.HTTPError as exc:
            raise Unexpected(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if response.status_code not in expect + allow:
            raise Unexpected(f"{method} {path} answered {response.status_code}", response)
        return response

    def action(self, token: dict, action: str, **fields: Any) -> dict:
        assert self.case is not None
        r = self.call(
            "POST",
            f"/api/v1/work/applications/{self.case['id']}/actions",
            token=token,
            json={"action": action, **fields},
        )
        self.case = r.json()
        return self.case

    def password_grant(self, phone: str, channel: str, *, allow: tuple[int, ...] = ()) -> httpx.Response:
        return self.call(
            "POST",
            "/api/v1/auth/token",
            json={"grant_type": "password", "phone": phone, "password": DEMO_PASSWORD, "channel": channel},
            allow=allow,
        )

    def staff_sign_in(self, phone: str, channel: str) -> dict:
        r = self.password_grant(phone, channel, allow=(401,))
        if r.status_code == 401:
            raise Unexpected(
                f"demo staff {phone} cannot sign in with the demo password: are the demo people seeded? "
                "(`python -m api.cli serve` seeds them in embedded mode, see api/sandbox/people.py)",
                r,
            )
        return r.json()

    # ---- the story -----------------------------------------------------------------------------------

    def run(self) -> None:
        self.step = "service"
        r = self.call("GET", "/readyz")
        self.say("service", f"{self.client.base_url} {r.json().get('status')}")
        resident = self.sign_in_zhang()
        resident = self.verify_real_name(resident)

        self.step = "guide"
        guide = self.call("GET", f"/api/v1/items/{DEMO_ITEM}").json()
        point = self.call("GET", f"/api/v1/points/{DEMO_POINT}").json()
        materials = guide.get("materials") or []
        missing = [m for m in materials if m.get("required")] or materials
        self.say(
            "guide",
            f"{guide['code']} {guide['name']}, {guide['department']['name']}, "
            f"{guide.get('promised_days')} working days, {len(materials)} materials; point {point['name']}",
        )

        self.step = "submit"
        body = {
            "item_code": DEMO_ITEM,
            "point_code": DEMO_POINT,
            "form": FORM,
            "delivery": {"mode": "grid_worker", "address": ADDRESS},
        }
        key = uuid.uuid4().hex
        r = self.call(
            "POST",
            "/api/v1/applications",
            token=resident,
            json=body,
            headers={"Idempotency-Key": key},
            expect=(201,),
        )
        self.case = r.json()
        case_id = self.case["id"]
        self.say(
            "submit",
            f"id {case_id}, delivery {self.case['delivery']['mode']} to {self.case['delivery']['address']}",
        )

        self.step = "replay"
        r = self.call(
            "POST",
            "/api/v1/applications",
            token=resident,
            json=body,
            headers={"Idempotency-Key": key},
            expect=(201,),
        )
        if r.json().get("id") != case_id:
            raise Unexpected("the replay created another case", r)
        self.say(
            "replay", f"same id {case_id}, Idempotent-Replayed: {r.headers.get('idempotent-replayed', '-')}"
        )

        grid_person = person("grid_worker", point=DEMO_POINT)
        self.step = "grid_sign_in"
        grid = self.staff_sign_in(grid_person.phone, "handheld")
        self.call("GET", f"/api/v1/work/applications/{case_id}", token=grid)
        self.say(
            "grid_sign_in",
            f"{grid['account']['phone']}, points {', '.join(grid['account'].get('points', []))}",
        )

        self.step = "return"
        notice = [{"material_code": m["code"], "reason": f"未提交{m['name']}"} for m in missing]
        self.action(grid, "return", missing_materials=notice, note="请一次性补齐以下材料")
        listed = ", ".join(f"{m['material_code']} {m['reason']}" for m in self.case["missing_materials"])
        self.say("return", f"{len(self.case['missing_materials'])} missing: {listed}")

        self.step = "upload"
        self.upload(resident, [m["code"] for m in missing])

        self.step = "resubmit"
        r = self.call("POST", f"/api/v1/applications/{case_id}/resubmit", token=resident)
        self.case = r.json()
        self.say("resubmit")

        self.step = "accept"
        self.action(grid, "accept")
        self.say("accept", f"due {self.case['due_at']}, deadline {self.case['deadline_status']}")

        clerk_person = person("staff", department=DEMO_DEPARTMENT)
        self.step = "staff_sign_in"
        clerk = self.staff_sign_in(clerk_person.phone, "app")
        self.say(
            "staff_sign_in", f"{clerk['account']['phone']}, department {clerk['account'].get('department')}"
        )
        for step in ("start_review", "approve", "mark_ready"):
            self.step = step
            self.action(clerk, step, **({"note": "经核查，符合临时救助条件"} if step == "approve" else {}))
            self.say(step, f"decided {self.case['decided_at']}" if step == "approve" else "")

        self.step = "deliver"
        photo = base64.b64encode(tiny_png((random.randrange(256), 160, 90), size=16)).decode()
        self.action(grid, "deliver", recipient=ZHANG["name"], photo=photo)
        self.say("deliver", f"recipient {ZHANG['name']}, photo {len(photo)} base64 chars")

        self.evaluate(resident)
        self.timeline(resident)
        self.inbox(resident)

    def sign_in_zhang(self) -> dict:
        phone = ZHANG["phone"]
        self.step = "sms_code"
        r = self.call(
            "POST",
            "/api/v1/auth/sms-codes",
            json={"phone": phone, "purpose": "login"},
            expect=(202,),
            allow=(429,),
        )
        if r.status_code == 429:
            wait = r.headers.get("retry-after", "?")
            self.say("sms_code", skipped=f"429, next code in {wait} s — signing in with his password instead")
            self.step = "sign_in"
            r = self.password_grant(phone, "app", allow=(401,))
            if r.status_code == 401:
                raise Unexpected(
                    f"张三 has no demo password yet and cannot get a new SMS code for {wait} s: run again then",
                    r,
                )
            tokens = r.json()
            self.say("sign_in", f"password, account {tokens['account']['id']}")
            self.say("password", skipped="already set by an earlier run")
            return tokens
        sms = self.call("GET", "/api/v1/sandbox/sms", params={"phone": phone}).json()["items"]
        if not sms or not sms[-1].get("code"):
            raise Unexpected("the sandbox SMS gateway shows no code for 张三")
        code = sms[-1]["code"]
        self.say("sms_code", f"sandbox SMS: {sms[-1]['text']}")

        self.step = "sign_in"
        r = self.call(
            "POST",
            "/api/v1/auth/token",
            json={"grant_type": "sms_code", "phone": phone, "code": code, "channel": "app"},
        )
        tokens = r.json()
        account = tokens["account"]
        self.say("sign_in", f"SMS code, channel app, account {account['id']} {account['phone']}")

        self.step = "password"
        # the old password is the demo one when an earlier run set it, and is ignored when there is none
        r = self.call(
            "PUT",
            "/api/v1/me/password",
            token=tokens,
            json={"new_password": DEMO_PASSWORD, "old_password": DEMO_PASSWORD},
            expect=(204,),
            allow=(422,),
        )
        if r.status_code == 422:
            self.say("password", skipped=f"not changed ({_problem_code(r)}): he has another password")
        else:
            self.say("password", f"{DEMO_PASSWORD}, for the next runs")
        return tokens

    def verify_real_name(self, tokens: dict) -> dict:
        self.step = "real_name"
        me = self.call("GET", "/api/v1/me", token=tokens).json()
        if me.get("real_name_level", 0) >= 2:
            self.say(
                "real_name",
                skipped=f"already verified: {me.get('name')} {me.get('id_number')}, level {me['real_name_level']}",
            )
            return tokens
        r = self.call(
            "POST",
            "/api/v1/me/real-name",
            token=tokens,
            json={"name": ZHANG["name"], "id_number": ZHANG["id_number"]},
        )
        me = r.json()
        # the access token carries the level it was issued with: refresh for one that says 2
        r = self.call(
            "POST",
            "/api/v1/auth/token",
            json={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
        self.say(
            "real_name",
            f"{me.get('name')} {me.get('id_number')}, level {me['real_name_level']}; token refreshed",
        )
        return r.json()

    def upload(self, tokens: dict, codes: list[str]) -> None:
        assert self.case is not None
        done = []
        for code in codes:
            scan = tiny_png((random.randrange(256), random.randrange(256), random.randrange(256)))
            r = self.call(
                "POST",
                f"/api/v1/applications/{self.case['id']}/materials",
                token=tokens,
                data={"material_code": code},
                files={"file": (f"{code}.png", scan, "image/png")},
                expect=(200, 201),
                allow=(404, 429),
            )
            if _route_missing(r):
                self.say("upload", skipped="POST /applications/{id}/materials answers 404: not built yet")
                return
            if r.status_code != 201 and r.status_code != 200:
                if r.status_code == 429:
                    self.say(
                        "upload",
                        skipped=f"upload limit reached (429, Retry-After {r.headers.get('retry-after')} s)",
                    )
                    return
                raise Unexpected(
                    f"POST /applications/{self.case['id']}/materials answered {r.status_code}", r
                )
            done.append(f"{code} {r.json()['sha256'][:8]}")
        self.say("upload", ", ".join(done))

    def evaluate(self, tokens: dict) -> None:
        assert self.case is not None
        self.step = "evaluate"
        r = self.call(
            "POST",
            f"/api/v1/applications/{self.case['id']}/evaluation",
            token=tokens,
            json={"level": 5, "comment": "网格员送证上门，办事不用跑腿，非常满意"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
            expect=(201,),
            allow=(404,),
        )
        if r.status_code == 404:
            if not _route_missing(r):
                raise Unexpected(f"POST /applications/{self.case['id']}/evaluation answered 404", r)
            self.say("evaluate", skipped="POST /applications/{id}/evaluation answers 404: not built yet")
            return
        rated = r.json()
        self.say("evaluate", f"level {rated.get('level', 5)}")

    def timeline(self, tokens: dict) -> None:
        assert self.case is not None
        self.step = "timeline"
        self.case = self.call("GET", f"/api/v1/applications/{self.case['id']}", token=tokens).json()
        events = self.case["events"]
        self.say("timeline", f"{len(events)} events, evaluated: {self.case.get('evaluated')}")
        for e in events:
            print(
                f"       {e['at'][:19].replace('T', ' ')}  {e['action']:<12} {e['from_status'] or '-':>9} → "
                f"{e['to_status']:<9} {e['actor_role']}/{e['channel'] or '-'}",
                flush=True,
            )

    def inbox(self, tokens: dict) -> None:
        assert self.case is not None
        self.step = "inbox"
        total = about_case = 0
        cursor = None
        for _ in range(100):  # 100 pages of 100 at most: enough for any demo account
            params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            r = self.call("GET", "/api/v1/notifications", token=tokens, params=params, allow=(404,))
            if r.status_code == 404:
                self.say("inbox", skipped="GET /notifications answers 404: not built yet")
                return
            page = r.json()
            total += len(page["items"])
            about_case += sum(1 for n in page["items"] if n.get("application_id") == self.case["id"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        self.say("inbox", f"{total} notifications, {about_case} about this case")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="the running service (make run)")
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
    base = args.base_url.rstrip("/")
    with httpx.Client(base_url=base, timeout=30.0) as client:
        demo = Demo(client)
        try:
            demo.run()
        except Unexpected as exc:
            zh, en = _TITLES[demo.step]
            print(f"\ndemo stopped at {zh} / {en}: {exc}", file=sys.stderr)
            if exc.response is not None:
                print(f"status {exc.response.status_code}, body: {exc.response.text[:2000]}", file=sys.stderr)
            elif demo.step == "service":
                print(f"is the service running at {base}? start it with `make run`", file=sys.stderr)
            return 1
    case = demo.case or {}
    print(f"\ndemo finished: case {case.get('number')} {case.get('status')} / 演示完成", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
