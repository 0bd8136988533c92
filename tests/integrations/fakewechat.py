"""Just enough of WeChat's official-account API, served by tests/integrations/fakeserver.py's FakeServer.

    wx = FakeWeChat(FakeServer().start())    # or FakeWeChat(fake) with the `fake` fixture

What it plays as WeChat does (WeChat's documentation; the refusals with WeChat's errcodes):
- `POST /cgi-bin/stable_token`: a normal call answers the current token while it is valid, the same one to every
  caller; `force_refresh: true` issues a new token and invalidates the old, at most 20 times a day (45009 after)
  and only 30 s after the previous forced one (a closer call does not refresh: it answers the current token)
- every call with `?access_token=` refuses a token it did not issue, one a forced refresh replaced, or one
  `revoke()`d with 40001, an expired one with 42001
- OAuth codes (`codes`, one use each), the JS-SDK ticket, the menu (UTF-8 JSON bodies, 1 to 3 buttons of at
  most 5 sub-buttons), permanent QR codes, template, customer-service, mass and subscribe messages, each
  recorded for the test to read, each body checked for the fields WeChat requires.
State lives on the instance; a test changes it directly (`unsubscribed.add(openid)`, `forced = 20` ...).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import time
from typing import Any

from tests.integrations.fakeserver import FakeServer, Reply, Seen

APP_ID = "wx1234567890abcdef"
SECRET = "appsecret-5e1f0c9d-never-shown"
TOKEN_PATH = "/cgi-bin/stable_token"
OAUTH_PATH = "/sns/oauth2/access_token"
SEND_PATH = "/cgi-bin/message/template/send"
TICKET_PATH = "/cgi-bin/ticket/getticket"
MENU_PATH = "/cgi-bin/menu/create"
QR_PATH = "/cgi-bin/qrcode/create"
CUSTOM_PATH = "/cgi-bin/message/custom/send"
MASS_PATH = "/cgi-bin/message/mass/send"
SUBSCRIBE_PATH = "/cgi-bin/message/subscribe/bizsend"

TOKEN_LIFETIME = 7200
FORCE_SPACING = 30
FORCED_PER_DAY = 20
CUSTOM_PER_INTERACTION = 20  # customer-service messages to one user between two of his own actions
_OPENID = re.compile(r"^o[A-Za-z0-9_\-]{4,40}$")


def _err(errcode: int, errmsg: str, **more: Any) -> Reply:
    return Reply(200, {"errcode": errcode, "errmsg": errmsg, **more})


def _body(seen: Seen) -> Any:
    """The JSON of a body as WeChat reads it: UTF-8, or None when it is not JSON."""
    try:
        return json.loads(seen.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


class FakeWeChat:
    def __init__(self, server: FakeServer, app_id: str = APP_ID, secret: str = SECRET) -> None:
        self.lock = threading.Lock()
        self.app_id = app_id
        self.secret = secret
        self.offset = 0.0  # seconds added to the fake's clock (`advance`)
        # access tokens
        self.issued = 0
        self.current: str | None = None
        self.current_since = 0.0
        self.revoked = False
        self.forced = 0  # forced refreshes done (today)
        self.forced_requests = 0  # calls with force_refresh true, done or not
        self.last_forced_at: float | None = None
        self.token_delay = 0.0
        # OAuth
        self.codes: dict[str, dict[str, str]] = {}
        self.used: set[str] = set()
        # JS-SDK ticket
        self.tickets = 0
        self.ticket_delay = 0.0
        # menu, QR codes
        self.menu: dict[str, Any] | None = None
        self.qr: dict[str, str] = {}  # ticket -> scene
        # users and messages
        self.unsubscribed: set[str] = set()  # 43004
        self.silent: set[str] = set()  # last wrote more than 48 h ago: 45015
        self.no_consent: set[str] = set()  # refused subscribe messages: 43101
        self.next_msgid = 200228332
        self.templates: list[dict[str, Any]] = []
        self.custom: dict[str, list[dict[str, Any]]] = {}
        self.subscribe: dict[str, list[dict[str, Any]]] = {}
        self.mass: list[dict[str, Any]] = []
        self.clientmsgids: dict[str, int] = {}
        self._mass_ids = itertools.count(34182)
        server.route("POST", TOKEN_PATH, self.stable_token)
        server.route("GET", OAUTH_PATH, self.oauth)
        server.route("POST", SEND_PATH, self.send)
        server.route("GET", TICKET_PATH, self.getticket)
        server.route("POST", MENU_PATH, self.create_menu)
        server.route("POST", QR_PATH, self.create_qr)
        server.route("POST", CUSTOM_PATH, self.send_custom)
        server.route("POST", MASS_PATH, self.mass_send)
        server.route("POST", SUBSCRIBE_PATH, self.send_subscribe)

    # ---- clock, tokens ------------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.offset += seconds

    def revoke(self) -> None:
        """WeChat stops taking the current token but a normal stable_token call still answers it (a token
        blocked on WeChat's side): only a forced refresh gets a working one."""
        with self.lock:
            self.revoked = True

    def _issue(self) -> None:
        self.issued += 1
        self.current = f"ACCESS_TOKEN_{self.issued}_never_shown"
        self.current_since = self.now()
        self.revoked = False

    def stable_token(self, seen: Seen) -> Reply:
        body = _body(seen)
        if not isinstance(body, dict):
            return _err(47001, "data format error")
        if body.get("grant_type") != "client_credential":
            return _err(40002, "invalid grant_type")
        if body.get("appid") != self.app_id:
            return _err(40013, "invalid appid")
        if body.get("secret") != self.secret:
            return _err(40125, "invalid appsecret")
        force = body.get("force_refresh", False)
        if not isinstance(force, bool):
            return _err(40097, "invalid args")
        with self.lock:
            now = self.now()
            if force:
                self.forced_requests += 1
                if self.last_forced_at is not None and now - self.last_forced_at < FORCE_SPACING:
                    pass  # WeChat: forced calls closer than 30 s do not refresh
                elif self.forced >= FORCED_PER_DAY:
                    return _err(45009, "reach max api daily quota limit")
                else:
                    self.forced += 1
                    self.last_forced_at = now
                    self._issue()
            if self.current is None or now - self.current_since >= TOKEN_LIFETIME:
                self._issue()
            left = max(1, int(TOKEN_LIFETIME - (self.now() - self.current_since)))
            return Reply(200, {"access_token": self.current, "expires_in": left}, delay=self.token_delay)

    def _refused(self, seen: Seen) -> Reply | None:
        """WeChat's answer to a call whose access token it does not take, None when it does. Call it holding
        the lock."""
        token = seen.query.get("access_token")
        if not token:
            return _err(41001, "access_token missing")
        if token != self.current or self.revoked:
            return _err(40001, "invalid credential, access_token is invalid or not latest")
        if self.now() - self.current_since >= TOKEN_LIFETIME:
            return _err(42001, "access_token expired")
        return None

    # ---- OAuth, ticket ------------------------------------------------------------------------------

    def oauth(self, seen: Seen) -> Reply:
        q = seen.query
        if (
            q.get("appid") != self.app_id
            or q.get("secret") != self.secret
            or q.get("grant_type") != "authorization_code"
        ):
            return _err(40125, "invalid appsecret")
        code = q.get("code", "")
        with self.lock:
            if code in self.used:
                return _err(40163, "code been used")
            if code not in self.codes:
                return _err(40029, "invalid code")
            self.used.add(code)
            who = self.codes[code]
        return Reply(
            200,
            {
                "access_token": "USER_TOKEN",
                "expires_in": 7200,
                "refresh_token": "REFRESH",
                "scope": "snsapi_base",
                "is_snapshotuser": 0,
                **who,
            },
        )

    def getticket(self, seen: Seen) -> Reply:
        with self.lock:
            if refused := self._refused(seen):
                return refused
            if seen.query.get("type") != "jsapi":
                return _err(40097, "invalid args")
            self.tickets += 1
            ticket = f"JSAPI_TICKET_{self.tickets}_never_shown"
        answer = {"errcode": 0, "errmsg": "ok", "ticket": ticket, "expires_in": 7200}
        return Reply(200, answer, delay=self.ticket_delay)

    # ---- menu, QR codes -----------------------------------------------------------------------------

    def create_menu(self, seen: Seen) -> Reply:
        body = _body(seen)
        with self.lock:
            if refused := self._refused(seen):
                return refused
            if not isinstance(body, dict):
                return _err(47001, "data format error")
            buttons = body.get("button")
            if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
                return _err(40016, "invalid button size")
            for button in buttons:
                if (
                    not isinstance(button, dict)
                    or not isinstance(button.get("name"), str)
                    or not button["name"]
                ):
                    return _err(40018, "invalid button name size")
                subs = button.get("sub_button", [])
                if not isinstance(subs, list) or len(subs) > 5:
                    return _err(40023, "invalid sub button size")
            self.menu = body
        return _err(0, "ok")

    @staticmethod
    def qr_ticket(scene: str) -> str:
        """The fake's ticket for a scene: base64 like WeChat's, so it carries "+", "/" or "="."""
        return "gQH" + base64.b64encode(hashlib.sha256(scene.encode()).digest()).decode()

    def create_qr(self, seen: Seen) -> Reply:
        body = _body(seen)
        with self.lock:
            if refused := self._refused(seen):
                return refused
            if not isinstance(body, dict) or body.get("action_name") != "QR_LIMIT_STR_SCENE":
                return _err(40097, "invalid args")
            scene = body.get("action_info", {}).get("scene", {}).get("scene_str")
            if not isinstance(scene, str) or not 1 <= len(scene) <= 64:
                return _err(40097, "invalid args")
            ticket = self.qr_ticket(scene)
            self.qr[ticket] = scene
        url = "http://weixin.qq.com/q/" + hashlib.sha256(scene.encode()).hexdigest()[:22]
        return Reply(200, {"ticket": ticket, "url": url})

    # ---- messages -----------------------------------------------------------------------------------

    def _to(self, body: dict[str, Any]) -> Reply | None:
        """WeChat's refusal of a message's recipient, None when it goes out."""
        openid = body.get("touser")
        if not isinstance(openid, str) or not _OPENID.match(openid):
            return _err(40003, "invalid openid")
        if openid in self.unsubscribed:
            return _err(43004, "require subscribe")
        return None

    def send(self, seen: Seen) -> Reply:
        body = _body(seen)
        with self.lock:
            if refused := self._refused(seen):
                return refused
            if not isinstance(body, dict) or not body.get("template_id"):
                return _err(40037, "invalid template_id")
            if not isinstance(body.get("touser"), str) or not body["touser"]:
                return _err(40003, "invalid openid")
            self.next_msgid += 1
            self.templates.append(body)
            return Reply(200, {"errcode": 0, "errmsg": "ok", "msgid": self.next_msgid})

    def send_custom(self, seen: Seen) -> Reply:
        body = _body(seen)
        with self.lock:
            if refused := self._refused(seen):
                return refused
            if not isinstance(body, dict):
                return _err(47001, "data format error")
            if refused := self._to(body):
                return refused
            openid = body["touser"]
            if openid in self.silent:
                return _err(45015, "response out of time limit or subscription is canceled")
            if len(self.custom.get(openid, [])) >= CUSTOM_PER_INTERACTION:
                return _err(45047, "out of response count limit")
            msgtype = body.get("msgtype")
            if msgtype == "text":
                content = body.get("text", {}).get("content")
                if not isinstance(content, str) or not content:
                    return _err(44003, "empty content")
            elif msgtype == "news":
                articles = body.get("news", {}).get("articles")
                if not isinstance(articles, list) or len(articles) != 1:
                    return _err(45008, "article size out of limit")  # one article a custom news message
                if not all(
                    isinstance(a.get("title"), str) and isinstance(a.get("url"), str) for a in articles
                ):
                    return _err(47001, "data format error")
            else:
                return _err(40008, "invalid message type")
            self.custom.setdefault(openid, []).append(body)
        return _err(0, "ok")

    def mass_send(self, seen: Seen) -> Reply:
        body = _body(seen)
        with self.lock:
            if refused := self._refused(seen):
                return refused
            if not isinstance(body, dict):
                return _err(47001, "data format error")
            openids = body.get("touser")
            if not isinstance(openids, list) or not 2 <= len(openids) <= 10_000:
                return _err(40130, "invalid openid list size, at least two openid")
            if not all(isinstance(o, str) and _OPENID.match(o) for o in openids):
                return _err(40003, "invalid openid")
            if body.get("msgtype") != "text":
                return _err(40008, "invalid message type")
            content = body.get("text", {}).get("content")
            if not isinstance(content, str) or not content:
                return _err(44003, "empty content")
            clientmsgid = body.get("clientmsgid")
            if clientmsgid in self.clientmsgids:
                return _err(45065, "clientmsgid exist", msg_id=self.clientmsgids[clientmsgid])
            msg_id = next(self._mass_ids)
            if isinstance(clientmsgid, str) and clientmsgid:
                self.clientmsgids[clientmsgid] = msg_id
            self.mass.append(body)
        return _err(0, "send job submission success", msg_id=msg_id, msg_data_id=206227730 + msg_id)

    def send_subscribe(self, seen: Seen) -> Reply:
        body = _body(seen)
        with self.lock:
            if refused := self._refused(seen):
                return refused
            if not isinstance(body, dict):
                return _err(47001, "data format error")
            if refused := self._to(body):
                return refused
            if not isinstance(body.get("template_id"), str) or not body["template_id"]:
                return _err(40037, "invalid template_id")
            data = body.get("data")
            if not isinstance(data, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("value"), str) for v in data.values()
            ):
                return _err(47003, "argument invalid! data.value invalid")
            if "page" in body and not isinstance(body["page"], str):
                return _err(47003, "argument invalid! page invalid")
            if body["touser"] in self.no_consent:
                return _err(43101, "user refuse to accept the msg")
            self.subscribe.setdefault(body["touser"], []).append(body)
        return _err(0, "ok")
