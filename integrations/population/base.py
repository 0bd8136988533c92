"""The population database (人口基础库) interface: real-name verification of a name and an ID number.

The answer is three-valued on purpose: "mismatch" (the number exists under another name) and "not_found" are
different stories for the resident and for the audit, and neither is an error of ours.
"""

from __future__ import annotations

from typing import Literal, Protocol

VerifyResult = Literal["match", "mismatch", "not_found"]

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def check_digit(first17: str) -> str:
    """The GB 11643 check character (0-9 or X) for the first 17 digits of an ID number."""
    if len(first17) != 17 or not first17.isdigit() or not first17.isascii():
        raise ValueError("need 17 digits")
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def valid_id_number(id_number: str) -> bool:
    """True for 18 characters whose last one is the GB 11643 check character of the first 17."""
    if len(id_number) != 18 or not id_number[:17].isdigit() or not id_number[:17].isascii():
        return False
    return check_digit(id_number[:17]) == id_number[17].upper()


class PopulationDatabase(Protocol):
    async def verify(self, name: str, id_number: str) -> VerifyResult: ...

    async def aclose(self) -> None: ...
