"""Channels per role (issue 8): residents sign in on app and wechat, grid workers on handheld and app, staff
and admins on app (the back office). Any other channel is 403 channel_not_allowed — at every grant, after
the credentials are proven, before anything is made — and a refresh checks the account's roles again."""

from __future__ import annotations

import pytest

from api.identity.channels import ROLE_CHANNELS, allowed_channels
from models import identity as db
from tests.support.people import (
    PASSWORD,
    POINT,
    TOKEN,
    ZHANG,
    bearer,
    make_account,
    other_code,
    refresh,
    request_code,
    sms_sign_in,
    wechat_code,
)
from tests.support.security import ME, assert_problem

pytestmark = pytest.mark.usefixtures("catalog")

NEW_PHONE = "13800000301"
WORKER = "13700000301"


async def password_grant(client, phone: str, channel: str):
    return await client.post(
        TOKEN, json={"grant_type": "password", "phone": phone, "password": PASSWORD, "channel": channel}
    )


def test_the_table_of_channels():
    assert ROLE_CHANNELS == {
        "resident": {"app", "wechat"},
        "grid_worker": {"handheld", "app"},
        "staff": {"app"},
        "admin": {"app"},
    }
    assert allowed_channels(["resident", "grid_worker"]) == {"app", "wechat", "handheld"}
    assert allowed_channels([]) == set()


async def test_a_new_phone_on_the_handheld_is_403_and_creates_no_account(client):
    code = await request_code(client, NEW_PHONE)
    r = await client.post(
        TOKEN, json={"grant_type": "sms_code", "phone": NEW_PHONE, "code": code, "channel": "handheld"}
    )
    assert_problem(r, 403, "channel_not_allowed")
    assert await db.Account.all().count() == 0
    assert await db.RefreshToken.all().count() == 0


async def test_a_resident_on_the_handheld_is_403_by_sms_and_by_password(client, app):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    r = await client.put(ME + "/password", json={"new_password": PASSWORD}, headers=bearer(tokens))
    assert r.status_code == 204
    sessions_before = await db.RefreshToken.all().count()
    assert_problem(await password_grant(client, ZHANG["phone"], "handheld"), 403, "channel_not_allowed")
    assert (await password_grant(client, ZHANG["phone"], "wechat")).status_code == 200
    assert await db.RefreshToken.all().count() == sessions_before + 1


async def test_wrong_credentials_on_a_refused_channel_are_401_as_anywhere(client):
    """The channel is judged only once the credentials hold: a 403 would otherwise tell a stranger which
    phones belong to residents."""
    code = await request_code(client, NEW_PHONE)
    r = await client.post(
        TOKEN,
        json={"grant_type": "sms_code", "phone": NEW_PHONE, "code": other_code(code), "channel": "handheld"},
    )
    assert_problem(r, 401, "invalid_grant")
    assert_problem(await password_grant(client, NEW_PHONE, "handheld"), 401, "invalid_grant")


@pytest.mark.parametrize(
    ("roles", "scope", "allowed"),
    [
        (["grid_worker"], {"points": [POINT]}, {"handheld", "app"}),
        (["staff"], {"department": "civil"}, {"app"}),
        (["admin"], {}, {"app"}),
    ],
)
async def test_back_office_people_sign_in_on_their_channels_only(app, client, roles, scope, allowed):
    await make_account(app, WORKER, roles, **scope)
    for channel in ("app", "wechat", "handheld"):
        r = await password_grant(client, WORKER, channel)
        if channel in allowed:
            assert r.status_code == 200, (channel, r.text)
            assert (await client.get(ME, headers=bearer(r.json()))).status_code == 200
        else:
            assert_problem(r, 403, "channel_not_allowed")


async def test_a_staff_account_bound_to_wechat_cannot_sign_in_through_wechat(app, client):
    account_id = await make_account(app, WORKER, ["staff"], department="civil")
    code, openid = await wechat_code(client)
    await db.add_binding(account_id, "wechat", openid, None)
    code, _ = await wechat_code(client, openid)
    r = await client.post(TOKEN, json={"grant_type": "wechat_code", "code": code, "channel": "wechat"})
    assert_problem(r, 403, "channel_not_allowed")


async def test_a_refresh_on_a_channel_the_roles_no_longer_allow_is_403_and_ends_the_session(app, client):
    account_id = await make_account(app, WORKER, ["grid_worker"], points=[POINT])
    tokens = (await password_grant(client, WORKER, "handheld")).json()
    r = await refresh(client, tokens["refresh_token"])
    assert r.status_code == 200, r.text
    tokens = r.json()
    # the admin takes the grid-worker role away: the handheld session cannot go on
    await db.set_roles(account_id, ["staff"])
    assert_problem(await refresh(client, tokens["refresh_token"]), 403, "channel_not_allowed")
    assert await db.live_families_of(account_id) == []
    assert_problem(await client.get(ME, headers=bearer(tokens)), 401, "invalid_token")
