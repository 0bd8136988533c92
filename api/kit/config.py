"""Typed settings: defaults from config.toml, overridden by YWT_<SECTION>__<KEY> environment variables.

Settings are validated once at start; a bad value raises ConfigError whose message is one line naming the
variable (or key) and the problem, so the start stops with a clear line and no traceback.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from datetime import date, time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "config.toml"
ENV_PREFIX = "YWT_"


class ConfigError(Exception):
    """A setting is missing or wrong; str(err) is one line naming it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _split_list(cls, value: Any, info: Any) -> Any:
        # environment variables arrive as text; a list setting takes "a,b,c"
        field = cls.model_fields.get(info.field_name)
        if (
            isinstance(value, str)
            and field is not None
            and getattr(field.annotation, "__origin__", None) is list
        ):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class AppSection(_Section):
    mode: Literal["embedded", "production"] = "embedded"
    name: str = "ywt"
    data_dir: Path = Path("data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    seed_demo: bool = True


class ServerSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=256)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    trusted_proxies: list[str] = []
    cors_origins: list[str] = []
    debug: bool = False


class DatabaseSection(_Section):
    url: str = "sqlite://data/ywt.sqlite3"
    pool_max: int = Field(10, ge=1, le=500)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in {"sqlite", "postgres", "postgresql", "asyncpg"}:
            raise ValueError("must be a sqlite://… or postgres://… URL")
        if scheme != "sqlite" and not urlsplit(value).hostname:
            raise ValueError("a postgres URL needs a host")
        return value


class RedisSection(_Section):
    url: str = "memory://"
    timeout: float = Field(2.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value != "memory://" and urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError('must be "memory://" or a redis://… URL')
        return value


class CatalogSection(_Section):
    cache_ttl: int = Field(300, ge=1)
    seed_file: Path = Path("seeds/catalog.json")


class _Provider(_Section):
    provider: Literal["sandbox", "http"] = "sandbox"
    base_url: str = ""
    timeout: float = Field(5.0, gt=0, le=60)

    @model_validator(mode="after")
    def _http_needs_url(self) -> _Provider:
        if self.provider == "http" and urlsplit(self.base_url).scheme not in {"http", "https"}:
            raise ValueError("provider http needs base_url (http:// or https://)")
        return self


class SmsSection(_Provider):
    api_key: str = ""
    sign_name: str = "新余一网通"


class PopulationSection(_Provider):
    api_key: str = ""


class LicencesSection(_Provider):
    """The e-licence library (电子证照库) and presentations (亮证)."""

    api_key: str = ""
    # http: the trust list of issuers, a JSON file {"CODE": {"name": …, "alg": "Ed25519", "public_key": base64}}
    # (relative to app.data_dir); the sandbox trusts its own issuers
    issuers_file: Path = Path("licence-issuers.json")
    # seconds a licence read from the library stands for its status (revocations reach verifiers within it)
    status_ttl: int = Field(30, ge=1, le=60)
    # seconds the last good read is kept, to answer `stale: true` while the library is down
    stale_ttl: int = Field(7 * 86400, ge=60)
    # seconds a presentation (QR code) is good for: at most 3 minutes
    presentation_ttl: int = Field(180, ge=30, le=180)
    # presentations a holder may make per hour
    presentations_per_hour: int = Field(60, ge=1)
    # verifications per minute of one signed-in verifier (an API key has its own rate_limit), and per address
    verify_per_minute: int = Field(120, ge=1)
    verify_per_ip_per_minute: int = Field(600, ge=1)
    # days before its end a licence's holder is told it expires; seconds between two passes of that watch
    expiry_notice_days: int = Field(30, ge=1, le=365)
    expiry_watch_interval: float = Field(3600.0, gt=0)
    sweep_batch: int = Field(500, ge=1, le=100_000)  # accounts whose licences each expiry pass learns


_MENU_TYPES = Literal[
    "click",
    "view",
    "scancode_push",
    "scancode_waitmsg",
    "pic_sysphoto",
    "pic_photo_or_album",
    "location_select",
]


class MenuButton(_Section):
    """One button of the official account's menu, as WeChat's `menu/create` takes it."""

    name: str = Field(min_length=1)
    type: _MENU_TYPES | None = None
    key: str | None = None
    url: str | None = None
    sub_button: list[MenuButton] = []

    @model_validator(mode="after")
    def _complete(self) -> MenuButton:
        if len(self.sub_button) > 5:
            raise ValueError(f"menu button {self.name!r}: at most 5 sub-buttons")
        if self.sub_button:
            if self.type is not None:
                raise ValueError(f"menu button {self.name!r}: a button with sub-buttons has no type")
            return self
        if self.type is None:
            raise ValueError(f"menu button {self.name!r}: needs a type (or sub-buttons)")
        if self.type == "view" and not self.url:
            raise ValueError(f"menu button {self.name!r}: a view button needs url")
        if self.type != "view" and not self.key:
            raise ValueError(f"menu button {self.name!r}: a {self.type} button needs key")
        if self.key is not None and len(self.key.encode()) > 128:
            raise ValueError(f"menu button {self.name!r}: key over 128 bytes")
        if self.url is not None and (
            len(self.url.encode()) > 1024 or urlsplit(self.url).scheme not in {"http", "https"}
        ):
            raise ValueError(f"menu button {self.name!r}: url must be http(s) and at most 1024 bytes")
        return self


class WechatMenu(_Section):
    """三个一级菜单, up to 5 sub-buttons each; names at most 16 bytes at the top, 60 below (WeChat's limits)."""

    button: list[MenuButton] = Field(default_factory=list, max_length=3)

    @model_validator(mode="after")
    def _names(self) -> WechatMenu:
        for top in self.button:
            if len(top.name.encode()) > 16:
                raise ValueError(f"menu button {top.name!r}: a top-level name is at most 16 bytes")
            for sub in top.sub_button:
                if sub.sub_button:
                    raise ValueError(f"menu button {sub.name!r}: sub-buttons have no sub-buttons")
                if len(sub.name.encode()) > 60:
                    raise ValueError(f"menu button {sub.name!r}: a sub-button name is at most 60 bytes")
        return self

    def as_wechat(self) -> dict[str, Any]:
        """The body of `POST /cgi-bin/menu/create`."""

        def button(b: MenuButton) -> dict[str, Any]:
            out: dict[str, Any] = {
                k: v
                for k, v in (("type", b.type), ("name", b.name), ("key", b.key), ("url", b.url))
                if v is not None
            }
            if b.sub_button:
                out["sub_button"] = [button(sub) for sub in b.sub_button]
            return out

        return {"button": [button(b) for b in self.button]}


class WechatSection(_Provider):
    base_url: str = "https://api.weixin.qq.com"
    app_id: str = "wx0000000000sandbox"
    app_secret: str = ""
    # the callback's signature token and the 43-character EncodingAESKey of safe mode
    token: str = ""
    encoding_aes_key: str = ""
    # plain: messages in clear only; compatible: both; safe: encrypted only (WeChat's 明文/兼容/安全模式)
    callback_mode: Literal["plain", "compatible", "safe"] = "compatible"
    callback_max_bytes: int = Field(65536, ge=1024, le=1048576)
    # seconds the callback waits for its reply before answering "success" and sending it later
    reply_budget: float = Field(3.0, gt=0, le=4.5)
    # seconds a message id (or sender + CreateTime) is remembered against WeChat's retries; timestamps older
    # than this are refused
    seen_ttl: int = Field(300, ge=30, le=3600)
    # WeChat lets a customer-service message follow a user's message for 48 hours
    custom_window: int = Field(172800, ge=60, le=172800)
    h5_base: str = "https://ywt.xinyu.gov.cn/h5"
    # domains whose pages may get a JS-SDK signature and may be an OAuth `next`
    h5_domains: list[str] = ["ywt.xinyu.gov.cn"]
    oauth_authorize_url: str = "https://open.weixin.qq.com/connect/oauth2/authorize"
    oauth_redirect_uri: str = "https://ywt.xinyu.gov.cn/api/v1/wechat/oauth/callback"
    # seconds a web-authorisation start is good for, and a sign-in ticket from its callback
    oauth_state_ttl: int = Field(600, ge=60, le=3600)
    signin_ticket_ttl: int = Field(60, ge=10, le=300)
    # days a scanned service point is remembered for his next application
    scene_days: int = Field(30, ge=1, le=365)
    attempts: int = Field(2, ge=1, le=5)
    menu: WechatMenu = WechatMenu()

    @model_validator(mode="after")
    def _callback_keys(self) -> WechatSection:
        if self.encoding_aes_key and len(self.encoding_aes_key) != 43:
            raise ValueError("encoding_aes_key must be the 43 characters WeChat's console shows")
        if self.callback_mode != "plain" and not self.encoding_aes_key and self.token:
            raise ValueError(f"callback_mode {self.callback_mode} needs encoding_aes_key")
        return self


class SecuritySection(_Section):
    issuer: str = "https://ywt.xinyu.gov.cn"
    audience: str = "ywt-api"
    access_ttl: int = Field(900, ge=60, le=900)
    refresh_ttl_days: int = Field(30, ge=1, le=90)
    keys_dir: Path = Path("keys")
    sms_code_ttl: int = Field(300, ge=60, le=300)
    sms_resend_after: int = Field(60, ge=1, le=600)
    sms_max_per_phone_per_day: int = Field(10, ge=1)
    sms_max_per_ip_per_hour: int = Field(30, ge=1)
    sms_max_wrong_tries: int = Field(5, ge=1, le=10)
    token_max_per_ip_per_minute: int = Field(30, ge=1)
    token_max_per_phone_per_hour: int = Field(20, ge=1)
    real_name_max_per_day: int = Field(5, ge=1)
    binding_ticket_ttl: int = Field(600, ge=60, le=3600)
    # seconds a replay of the refresh token just rotated is answered 409 instead of revoking (0: never)
    refresh_reuse_window: int = Field(10, ge=0, le=60)


class CalendarSection(_Section):
    extra_holidays: list[date] = []
    extra_workdays: list[date] = []
    end_of_day: time = time(23, 59, 59)

    @model_validator(mode="after")
    def _disjoint(self) -> CalendarSection:
        both = set(self.extra_holidays) & set(self.extra_workdays)
        if both:
            raise ValueError(f"a date cannot be both holiday and workday: {min(both)}")
        return self


class UploadsSection(_Section):
    dir: Path = Path("uploads")
    max_file_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    quota_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    max_files_per_application: int = Field(30, ge=1)
    max_per_hour: int = Field(60, ge=1)


class ApplicationsSection(_Section):
    number_prefix: str = Field("XY", pattern=r"^[A-Z]{1,4}$")
    complaint_answer_days: int = Field(5, ge=1, le=60)
    deadline_watch_interval: float = Field(60, gt=0)
    idempotency_ttl: int = Field(86400, ge=60)


class MetricsSection(_Section):
    # who may read /metrics without an admin token: addresses or networks ("10.0.0.0/8"); None (unset):
    # the loopback addresses in embedded mode, nobody in production
    allow: list[str] | None = None

    @field_validator("allow", mode="before")
    @classmethod
    def _text_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # YWT_METRICS__ALLOW="127.0.0.1,10.0.0.0/8"; "" allows nobody
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: list[str] | None) -> list[str] | None:
        for entry in value or []:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"not an address or network: {entry[:50]!r}") from None
        return value


class PaginationSection(_Section):
    default_limit: int = Field(20, ge=1)
    max_limit: int = Field(100, ge=1)


class PushSection(_Provider):
    """App push over JPush (integrations/push/http.py)."""

    base_url: str = "https://api.jpush.cn"
    # JPush's report API (what became of each message)
    report_url: str = "https://report.jpush.cn"
    app_key: str = ""
    master_secret: str = ""
    apns_production: bool = True
    # HarmonyOS message category of a service notice
    hmos_category: str = "WORK"
    # JPush `options.third_party_channel` per phone maker: service notices go as personal/system messages,
    # announcements as operational ones (which the makers cap)
    service_channels: dict[str, dict[str, str | int]] = {
        "huawei": {"importance": "NORMAL", "category": "WORK"},
        "honor": {"importance": "NORMAL"},
        "vivo": {"classification": 1},
    }
    operational_channels: dict[str, dict[str, str | int]] = {
        "huawei": {"importance": "LOW", "category": "MARKETING"},
        "honor": {"importance": "LOW"},
        "vivo": {"classification": 0},
    }


class NotificationsSection(_Section):
    """The delivery workers (api/notifications/delivery.py)."""

    # seconds between passes of the delivery loop when there was nothing to do
    interval: float = Field(1.0, gt=0, le=86400)
    # rows claimed per pass, and how long a worker holds them before another may take them over
    batch: int = Field(100, ge=1, le=1000)
    hold_seconds: float = Field(60.0, ge=5, le=3600)
    # retries: exponential from `retry_first` seconds, doubled each time, at most `retry_max`, with jitter,
    # until `retry_horizon` seconds after the delivery was created (then technical-failure)
    retry_first: float = Field(30.0, gt=0)
    retry_max: float = Field(1800.0, gt=0)
    retry_horizon: float = Field(4 * 3600.0, gt=0)
    # quiet hours (city time) for accounts that chose none: push and WeChat wait until they end, the inbox
    # does not, nor do urgent categories
    quiet_start: str = Field("22:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    quiet_end: str = Field("08:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    # WeChat template per category: {"template_id": ..., "fields": {"<template key>": "<our field>"}}
    wechat_templates: dict[str, dict[str, Any]] = {}
    # WeChat subscribe notification (订阅通知) per category with no template: the same shape; sent only to
    # followers who accepted that template (subscribe_msg_popup_event at the official account's callback)
    wechat_subscribe: dict[str, dict[str, Any]] = {}
    # the H5 page a WeChat message opens ({id}: the notification id)
    wechat_url: str = ""
    # seconds a pass in flight may take to finish once the server or worker is told to stop (SIGTERM);
    # then it is cut short and what it holds is given back to the other workers at once
    stop_grace: float = Field(10.0, gt=0, le=300)
    # accounts an announcement reaches per batch (one transaction each: their inbox copies and deliveries)
    fanout_batch: int = Field(2000, ge=1, le=5000)
    # a delivery `sent` with no receipt this long after is given up as temporary-failure (Notify: 72 h)
    receipt_timeout: float = Field(72 * 3600.0, gt=0)
    # how often (seconds) the providers are asked what became of what they took (JPush's report API),
    # and for how long after a send (JPush keeps its counts for about a month)
    receipt_poll: float = Field(300.0, gt=0)
    receipt_window: float = Field(72 * 3600.0, gt=0)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    app: AppSection = AppSection()
    server: ServerSection = ServerSection()
    database: DatabaseSection = DatabaseSection()
    redis: RedisSection = RedisSection()
    catalog: CatalogSection = CatalogSection()
    pagination: PaginationSection = PaginationSection()
    security: SecuritySection = SecuritySection()
    calendar: CalendarSection = CalendarSection()
    uploads: UploadsSection = UploadsSection()
    applications: ApplicationsSection = ApplicationsSection()
    metrics: MetricsSection = MetricsSection()
    sms: SmsSection = SmsSection()
    population: PopulationSection = PopulationSection()
    licences: LicencesSection = LicencesSection()
    wechat: WechatSection = WechatSection()
    push: PushSection = PushSection()
    notifications: NotificationsSection = NotificationsSection()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.pagination.default_limit > self.pagination.max_limit:
            raise ValueError("pagination.default_limit is larger than pagination.max_limit")
        return self

    @property
    def embedded(self) -> bool:
        return self.app.mode == "embedded"

    @property
    def memory_redis(self) -> bool:
        return self.redis.url == "memory://"

    def path(self, relative: Path) -> Path:
        """A configured path, relative ones taken from the project root."""
        return relative if relative.is_absolute() else PROJECT_ROOT / relative

    @property
    def data_dir(self) -> Path:
        return self.path(self.app.data_dir)

    @property
    def uploads_dir(self) -> Path:
        folder = self.uploads.dir
        return folder if folder.is_absolute() else self.data_dir / folder

    @property
    def keys_dir(self) -> Path:
        keys = self.security.keys_dir
        return keys if keys.is_absolute() else self.data_dir / keys

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite file anchored at the project root."""
        url = self.database.url
        if url.startswith("sqlite://") and url != "sqlite://:memory:":
            file = Path(url.removeprefix("sqlite://"))
            if not file.is_absolute():
                return "sqlite://" + str(PROJECT_ROOT / file)
        return url


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    overrides: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        overrides.setdefault(section.lower(), {})[key.lower()] = value
    return overrides


def _one_line(err: ValidationError, from_env: dict[str, dict[str, str]]) -> str:
    first = err.errors()[0]
    loc = [str(part) for part in first["loc"]]
    section, key = (loc + ["", ""])[:2]
    if section in from_env and key in from_env[section]:
        where = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
    elif first["type"] == "extra_forbidden" and section in from_env:
        where = f"{ENV_PREFIX}{section.upper()}__{key.upper()}" if key else section
    else:
        where = ".".join(loc) or "settings"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown setting"
    return f"configuration error: {where}: {message}"


def load_settings(config_file: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read config.toml, apply YWT_* overrides, validate. Raises ConfigError with one line."""
    file = config_file or Path(os.environ.get("YWT_CONFIG_FILE", DEFAULT_CONFIG_FILE))
    try:
        data: dict[str, Any] = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration error: {file}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration error: {file}: {exc}") from None
    env = _env_overrides(os.environ if environ is None else environ)
    for section, values in env.items():
        if section not in Settings.model_fields:
            name = next(iter(values))
            raise ConfigError(
                f"configuration error: {ENV_PREFIX}{section.upper()}__{name.upper()}: unknown section"
            )
        data.setdefault(section, {}).update(values)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, env)) from None
