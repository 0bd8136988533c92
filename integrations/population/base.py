"""The population database (人口基础库) interface: real-name verification of a name and an ID number.

The answer is three-valued on purpose: "mismatch" (the number exists under another name) and "not_found" are
different stories for the resident and for the audit, and neither is an error of ours.
"""

from __future__ import annotations

from typing import Literal, Protocol

VerifyResult = Literal["match", "mismatch", "not_found"]


class PopulationDatabase(Protocol):
    async def verify(self, name: str, id_number: str) -> VerifyResult: ...

    async def aclose(self) -> None: ...
