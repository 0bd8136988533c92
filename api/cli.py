"""python -m api.cli COMMAND — migrate, seed, load-catalog, create-admin, init-keys, serve, wechat-menu,
wechat-qr."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from api.kit.config import PROJECT_ROOT, ConfigError, Settings, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


async def _with_db(settings: Settings, work):  # noqa: ANN001, ANN202
    from api.kit.db import close_database, open_database

    await open_database(settings)
    try:
        return await work()
    finally:
        await close_database()


def cmd_migrate(settings: Settings) -> int:
    from api.kit.db import migrate

    asyncio.run(migrate(settings))
    print("migrations applied")
    return 0


def _print_report(report) -> None:  # noqa: ANN001
    if not report.ok:
        print(f"catalogue NOT loaded: {len(report.errors)} error(s)", file=sys.stderr)
        for err in report.errors:
            print(f"  {err}", file=sys.stderr)
        return
    sections = sorted({*report.created, *report.updated, *report.unchanged})
    parts = [
        f"{s}: {report.created.get(s, 0)} created, {report.updated.get(s, 0)} updated, {report.unchanged.get(s, 0)} unchanged"
        for s in sections
    ]
    print("catalogue loaded — " + "; ".join(parts))


async def _load_catalog(settings: Settings, path: Path) -> int:
    from api.catalog.importer import load_file

    report = await _with_db(settings, lambda: load_file(path))
    _print_report(report)
    if report.ok and report.changed:
        await _invalidate_catalog_cache(settings)
    return 0 if report.ok else 1


async def _invalidate_catalog_cache(settings: Settings) -> None:
    if settings.memory_redis:
        return  # an in-process cache lives and dies with the server; its answers expire after catalog.cache_ttl
    from api.catalog.service import VERSION_KEY
    from api.kit.kv import make_redis

    redis = make_redis(settings)
    try:
        await redis.incr(VERSION_KEY)
    finally:
        await redis.aclose()


async def seed_people(settings: Settings) -> list[str]:
    """The demo staff of embedded mode, made through the identity service as the server builds it."""
    from api.app import build_services
    from api.sandbox.people import seed_demo_people

    services = build_services(settings)
    try:
        return await seed_demo_people(settings, services.identity)
    finally:
        await services.close()


async def _seed(settings: Settings) -> None:
    from models.catalog import ServiceItem

    async def work() -> None:
        if await ServiceItem.all().count() == 0:
            from api.catalog.importer import load_file

            _print_report(await load_file(settings.path(settings.catalog.seed_file)))
        else:
            print("catalogue present, not seeded again")
        if settings.embedded:
            for line in await seed_people(settings):
                print(line)

    await _with_db(settings, work)


def _admin_input_problem(phone: str, password: str | None) -> str | None:
    from api.kit.pii import is_mainland_mobile

    if not is_mainland_mobile(phone):
        return f"create-admin: --phone: not an 11-digit mainland mobile number: {phone[:20]!r}"
    if password is not None and not (
        8 <= len(password) <= 64 and any(c.isdigit() for c in password) and any(c.isalpha() for c in password)
    ):
        return "create-admin: --password: 8 to 64 characters with both letters and digits"
    return None


async def _create_admin(settings: Settings, phone: str, password: str | None) -> int:
    """The identity service built the way the server builds it, so the phone is encrypted and indexed with
    the same keyring (data_dir/keys) the app reads."""
    from api.app import build_services
    from api.identity.staff import bootstrap_admin
    from api.kit.pii import mask_phone

    services = build_services(settings)
    try:
        ident = services.identity
        account, outcome = await _with_db(settings, lambda: bootstrap_admin(ident, phone, password))
    finally:
        await services.close()
    said = {"created": "created", "granted": "admin role added", "unchanged": "already an admin"}[outcome]
    extra = ", password set" if password and outcome != "created" else ""
    print(f"admin account {account.id} ({mask_phone(phone)}): {said}{extra}")
    if account.status != "active":
        print(f"warning: account {account.id} is {account.status} and cannot sign in", file=sys.stderr)
    return 0


def cmd_create_admin(settings: Settings, phone: str, password: str | None) -> int:
    if password == "-":
        password = sys.stdin.readline().rstrip("\n")
    problem = _admin_input_problem(phone, password)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    return asyncio.run(_create_admin(settings, phone, password))


def cmd_init_keys(settings: Settings) -> int:
    """Production keys: made once on a secure host, then shipped to every API and worker host as files."""
    from api.kit.keys import LICENCE_FILE, PII_FILE, load_signing_keys
    from api.kit.pii import ensure_keyring

    keys = load_signing_keys(settings.keys_dir, create=True)
    licence = load_signing_keys(settings.keys_dir, create=True, file=LICENCE_FILE)
    ensure_keyring(settings.keys_dir / PII_FILE)
    print(
        f"keys in {settings.keys_dir}: signing key {keys.current}, licence presentation key {licence.current}, "
        f"personal-data keyring {PII_FILE}"
    )
    return 0


# SIGTERM before Sanic takes the signals over (migrating, seeding, building the app): noted, and the start
# ends there, exit 0, instead of the process dying of the signal mid-way
_stop_asked = threading.Event()


def _ask_stop(signum: int, frame: object) -> None:
    _stop_asked.set()


def _take_the_signal(app: Any) -> None:
    """Once the server runs, SIGTERM stops it (Sanic in one process left it to the handler above, which only
    takes note: seen here as a server that went on serving after SIGTERM). The handler first, then the note:
    a SIGTERM in between is either noted or handled, never lost."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, _stop_until_stopping, app, loop)
    if _stop_asked.is_set():
        _stop_until_stopping(app, loop)


def _stop_until_stopping(app: Any, loop: asyncio.AbstractEventLoop) -> None:
    """`app.stop()` stops the event loop. Called while Sanic's start-up still runs the loop for itself (its
    `run_until_complete` of the start-up listeners), the stop ends that run instead of the serving one, and
    the server then serves for ever after SIGTERM. So while it is still starting (Sanic marks it running
    just before its serving loop) the stop is asked again 0.1 s later; once the shutdown has begun
    (`_note_stopping`, the first of the stop listeners) never again."""
    if getattr(app.ctx, "stopping", False):
        return
    app.stop()
    if not app.state.is_running:
        loop.call_later(0.1, _stop_until_stopping, app, loop)


def _note_stopping(app: Any) -> None:
    app.ctx.stopping = True


def cmd_serve(settings: Settings) -> int:
    from api.kit.db import migrate

    signal.signal(signal.SIGTERM, _ask_stop)
    asyncio.run(migrate(settings))
    if settings.embedded and settings.app.seed_demo and not _stop_asked.is_set():
        asyncio.run(_seed(settings))
    if _stop_asked.is_set():
        print("stopped before serving (SIGTERM)", flush=True)
        return 0
    workers = 1 if settings.memory_redis else settings.server.workers
    if workers > 1:
        sanic = str(Path(sys.executable).with_name("sanic"))
        os.execv(
            sanic,
            [
                sanic,
                "api.app:create_app",
                "--factory",
                "--host",
                settings.server.host,
                "--port",
                str(settings.server.port),
                "--workers",
                str(workers),
                "--no-access-logs",
            ],
        )
    from api.app import create_app

    app = create_app(settings)
    app.register_listener(_take_the_signal, "after_server_start")
    # registered last, so the first to run: Sanic runs the stop listeners in reverse order
    app.register_listener(_note_stopping, "before_server_stop")
    print(f"serving on http://{settings.server.host}:{settings.server.port} (docs at /docs)", flush=True)
    app.run(
        host=settings.server.host,
        port=settings.server.port,
        single_process=True,
        access_log=False,
        motd=False,
    )
    return 0


async def _with_wechat(settings: Settings, work):  # noqa: ANN001, ANN202
    """`work(wechat)` with the configured WeChat client (its access token shared through the configured Redis)."""
    from api.kit.kv import make_redis
    from integrations import build_integrations

    redis = make_redis(settings)
    integrations = build_integrations(settings, redis)
    try:
        return await work(integrations.wechat)
    finally:
        await integrations.close()
        await redis.aclose()


def cmd_wechat_menu(settings: Settings, action: str) -> int:
    """The menu of config.toml ([wechat.menu], checked against WeChat's limits when the settings load):
    `show` prints the body `menu/create` gets, `push` sends it."""
    import orjson

    from api.kit.errors import UpstreamError

    menu = settings.wechat.menu.as_wechat()
    if not menu["button"]:
        print("wechat.menu has no buttons", file=sys.stderr)
        return 1
    if action == "show":
        print(orjson.dumps(menu, option=orjson.OPT_INDENT_2).decode())
        return 0
    try:
        asyncio.run(_with_wechat(settings, lambda wechat: wechat.create_menu(menu)))
    except UpstreamError as exc:
        print(f"menu NOT pushed: {exc.detail}", file=sys.stderr)
        return 1
    subs = sum(len(b.get("sub_button", [])) for b in menu["button"])
    print(f"menu pushed: {len(menu['button'])} buttons, {subs} sub-buttons")
    return 0


async def _wechat_qr(settings: Settings, point_code: str) -> int:
    from models import catalog as catalog_db

    point = await _with_db(settings, lambda: catalog_db.point_by_code(point_code))
    if point is None:
        print(f"no service point {point_code!r}", file=sys.stderr)
        return 1
    qr = await _with_wechat(settings, lambda wechat: wechat.create_qr(point.code))
    print(f"{point.code} {point.name}")
    print(f"image:  {qr.image_url}")
    print(f"ticket: {qr.ticket}")
    print(f"scans to: {qr.url}")
    return 0


def cmd_wechat_qr(settings: Settings, point_code: str) -> int:
    """A permanent parameterised QR code (QR_LIMIT_STR_SCENE, scene = the point's code) to print and put up at
    a service point: a scan follows the account (subscribe with qrscene_CODE) or, for a follower, sends SCAN;
    either way the point is remembered for his next application and the reply links to its page."""
    from api.kit.errors import UpstreamError

    try:
        return asyncio.run(_wechat_qr(settings, point_code))
    except UpstreamError as exc:
        print(f"QR code NOT made: {exc.detail}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.cli", description="Yiwangtong command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("seed", help="load the demo catalogue if the database has none")
    load = sub.add_parser("load-catalog", help="validate a catalogue file and upsert it (all or nothing)")
    load.add_argument("file", type=Path)
    admin = sub.add_parser(
        "create-admin", help="create the admin account of a phone, or add the admin role to its account"
    )
    admin.add_argument("--phone", required=True, help="11-digit mainland mobile number")
    admin.add_argument("--password", help="8-64 characters, letters and digits; '-' reads it from stdin")
    sub.add_parser("serve", help="migrate, seed (embedded mode) and serve")
    sub.add_parser(
        "init-keys", help="create the signing and personal-data key files in security.keys_dir if absent"
    )
    menu = sub.add_parser("wechat-menu", help="show or push the official account's menu ([wechat.menu])")
    menu.add_argument("action", choices=["show", "push"])
    qr = sub.add_parser("wechat-qr", help="make a service point's permanent QR code (QR_LIMIT_STR_SCENE)")
    qr.add_argument("point_code")
    args = parser.parse_args(argv)
    if args.command == "serve":
        signal.signal(signal.SIGTERM, _ask_stop)  # as early as our code runs: see cmd_serve
    if getattr(args, "file", None) is not None:
        args.file = args.file.resolve()  # relative to where the operator stands, before we move
    os.chdir(PROJECT_ROOT)
    settings = _settings()
    if args.command == "migrate":
        return cmd_migrate(settings)
    if args.command == "seed":
        asyncio.run(_seed(settings))
        return 0
    if args.command == "load-catalog":
        return asyncio.run(_load_catalog(settings, args.file))
    if args.command == "create-admin":
        return cmd_create_admin(settings, args.phone.strip(), args.password)
    if args.command == "init-keys":
        return cmd_init_keys(settings)
    if args.command == "serve":
        return cmd_serve(settings)
    if args.command == "wechat-menu":
        return cmd_wechat_menu(settings, args.action)
    if args.command == "wechat-qr":
        return cmd_wechat_qr(settings, args.point_code.strip())
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
