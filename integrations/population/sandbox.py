"""The population database sandbox: fictional residents of 新余 seeded in code.

Embedded mode, demos and tests need real-name verification to answer like the real database without any
network. The people are data, not canned answers: `verify` looks the ID number up and compares the name.
Every ID number carries a valid GB 11643 check digit (one ends in X); the first three are the demo people of
DESIGN.md. Region codes 360503/360504/360505 are invented for the city's functional districts.
"""

from __future__ import annotations

import unicodedata

from integrations.population.base import VerifyResult

SANDBOX_PEOPLE: list[dict[str, str]] = [
    {
        "name": "张三",
        "id_number": "360502198803152015",
        "gender": "male",
        "birth_date": "1988-03-15",
        "address": "江西省新余市渝水区胜利南路88号3栋2单元501室",
    },
    {
        "name": "李娟",
        "id_number": "360521199207084021",
        "gender": "female",
        "birth_date": "1992-07-08",
        "address": "江西省新余市分宜县钤山镇城东路12号",
    },
    {
        "name": "王五",
        "id_number": "360502197505206113",
        "gender": "male",
        "birth_date": "1975-05-20",
        "address": "江西省新余市渝水区抱石大道406号",
    },
    {
        "name": "赵敏",
        "id_number": "360502199001010028",
        "gender": "female",
        "birth_date": "1990-01-01",
        "address": "江西省新余市渝水区劳动北路25号1单元302室",
    },
    {
        "name": "钱磊",
        "id_number": "360521198506120032",
        "gender": "male",
        "birth_date": "1985-06-12",
        "address": "江西省新余市分宜县分宜镇昌山东路7号",
    },
    {
        "name": "孙志强",
        "id_number": "360503197809230012",
        "gender": "male",
        "birth_date": "1978-09-23",
        "address": "江西省新余市仙女湖区河下镇湖泽村3组",
    },
    {
        "name": "周婷婷",
        "id_number": "36050420000229004X",
        "gender": "female",
        "birth_date": "2000-02-29",
        "address": "江西省新余市高新区马洪街道阳光路16号",
    },
    {
        "name": "吴建国",
        "id_number": "360505196511080056",
        "gender": "male",
        "birth_date": "1965-11-08",
        "address": "江西省新余市孔目江生态经济区水北镇佳山村8号",
    },
    {
        "name": "郑雪",
        "id_number": "360502199512310065",
        "gender": "female",
        "birth_date": "1995-12-31",
        "address": "江西省新余市渝水区仙来西大道1号9栋1102室",
    },
    {
        "name": "冯海涛",
        "id_number": "360521197004050076",
        "gender": "male",
        "birth_date": "1970-04-05",
        "address": "江西省新余市分宜县杨桥镇杨桥街31号",
    },
    {
        "name": "陈秀英",
        "id_number": "360503198210170089",
        "gender": "female",
        "birth_date": "1982-10-17",
        "address": "江西省新余市仙女湖区九龙山乡九龙村5组",
    },
    {
        "name": "褚子轩",
        "id_number": "360504200307180095",
        "gender": "male",
        "birth_date": "2003-07-18",
        "address": "江西省新余市高新区赛维大道2号",
    },
    {
        "name": "卫桂兰",
        "id_number": "360505195803010100",
        "gender": "female",
        "birth_date": "1958-03-01",
        "address": "江西省新余市孔目江生态经济区欧里镇欧里街14号",
    },
]


def _name(value: str) -> str:
    # full-width letters, the various middle dots of ethnic names and stray blanks are not a different name
    text = unicodedata.normalize("NFKC", value).strip()
    return text.replace("•", "·").replace("・", "·").replace(".", "·")


class SandboxPopulation:
    """A PopulationDatabase over SANDBOX_PEOPLE (or the people given)."""

    def __init__(self, people: list[dict[str, str]] | None = None) -> None:
        self._by_id = {p["id_number"].upper(): p for p in (people if people is not None else SANDBOX_PEOPLE)}

    async def verify(self, name: str, id_number: str) -> VerifyResult:
        person = self._by_id.get(id_number.strip().upper())
        if person is None:
            return "not_found"
        return "match" if _name(person["name"]) == _name(name) else "mismatch"

    async def aclose(self) -> None:
        return None
