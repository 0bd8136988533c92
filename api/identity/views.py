"""What the identity area shows of an account: masked, decrypted only to be masked."""

from __future__ import annotations

from collections.abc import Iterable

from api.identity.schemas import AccountOut, BindingOut
from api.kit.auth import Account, Role
from api.kit.pii import PiiCipher, PiiDecryptError, mask_id_number, mask_name, mask_phone
from models import identity as db


def decrypt_phone(cipher: PiiCipher, account: db.Account) -> str | None:
    """The account's phone in clear (None once the account is deleted); raises `PiiDecryptError` when the
    ciphertext does not open with our keys."""
    if account.phone_enc is None or account.phone_index is None:
        return None
    return cipher.decrypt(account.phone_enc, f"phone:{account.phone_index}")


async def masked_phones(cipher: PiiCipher, account_ids: Iterable[int]) -> dict[int, str]:
    """The masked phone of each of these accounts that has one that opens (`138****0001`); accounts without
    one (deleted, unknown, unreadable) are left out."""
    masked: dict[int, str] = {}
    for account in await db.accounts_by_ids(account_ids):
        try:
            phone = mask_phone(decrypt_phone(cipher, account))
        except PiiDecryptError:
            continue
        if phone:
            masked[account.id] = phone
    return masked


def binding_view(binding: db.ChannelBinding) -> BindingOut:
    openid = binding.external_id
    return BindingOut(
        channel="wechat",
        external_id=openid[:4] + "****" + openid[-4:] if len(openid) > 8 else "****",
        has_unionid=binding.unionid is not None,
        created_at=binding.created_at,
    )


async def bindings(account: Account) -> list[BindingOut]:
    return [binding_view(b) for b in await db.bindings_of(account.id)]


async def account_view(cipher: PiiCipher, account: db.Account) -> AccountOut:
    record = await db.real_name_of(account.id)
    name = id_number = None
    if record is not None:
        name = mask_name(cipher.decrypt(record.name_enc, f"realname:{account.id}:name"))
        id_number = mask_id_number(cipher.decrypt(record.id_number_enc, f"realname:{account.id}:id_number"))
    points = await db.point_codes_of(account.id) if Role.GRID_WORKER in account.role_set else []
    return AccountOut(
        id=account.id,
        phone=mask_phone(decrypt_phone(cipher, account)),
        roles=sorted(Role(role) for role in account.role_set),
        real_name_level=account.real_name_level,
        name=name,
        id_number=id_number,
        bindings=await bindings(account),
        department=await db.department_code_of(account),
        points=points,
    )
