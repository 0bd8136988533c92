"""Personal-data protection helpers used by every area (DESIGN "Privacy and security baseline", SECURITY 7, 8, 18).

Pure functions and small classes: no Sanic, no ORM. The only I/O is the keyring file functions.

- ID numbers (GB 11643-1999, ISO 7064 MOD 11-2): validate before storing, so typos are caught at the door.
- Masking: what responses and logs show instead of the real value.
- ``PiiCipher``: AES-256-GCM encryption at rest, with key ids so keys can rotate without a big-bang migration,
  and a per-row context bound as associated data so a ciphertext copied to another row does not decrypt.
- ``BlindIndex``: keyed HMAC so an encrypted column can still be looked up by equality.
- ``scrub`` / ``ScrubFilter``: last line of defence so no log line carries an ID number, phone or token,
  and no input can forge a log line with CR/LF.
"""

from __future__ import annotations

from api.kit.pii.cipher import BlindIndex, PiiCipher, PiiDecryptError
from api.kit.pii.ids import (
    PHONE_RE,
    birth_date,
    id_number_problem,
    is_mainland_mobile,
    is_valid_id_number,
    normalize_id_number,
)
from api.kit.pii.keyring import (
    add_key,
    create_keyring,
    ensure_keyring,
    generate_key,
    load_keyring,
    remove_key,
)
from api.kit.pii.masking import mask_address, mask_id_number, mask_name, mask_phone
from api.kit.pii.scrub import KnownClean, ScrubFilter, clean_text, one_line, scrub

__all__ = [
    "PHONE_RE",
    "BlindIndex",
    "PiiCipher",
    "PiiDecryptError",
    "KnownClean",
    "ScrubFilter",
    "clean_text",
    "add_key",
    "birth_date",
    "create_keyring",
    "ensure_keyring",
    "generate_key",
    "id_number_problem",
    "is_mainland_mobile",
    "is_valid_id_number",
    "load_keyring",
    "mask_address",
    "mask_id_number",
    "mask_name",
    "mask_phone",
    "normalize_id_number",
    "one_line",
    "remove_key",
    "scrub",
]
