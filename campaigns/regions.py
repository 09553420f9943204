"""The 17 Korean provinces and metropolitan cities, plus abroad."""

from __future__ import annotations

# code, Korean short name, English name. The order is the order shown to people.
REGIONS: tuple[tuple[str, str, str], ...] = (
    ("seoul", "서울", "Seoul"),
    ("busan", "부산", "Busan"),
    ("daegu", "대구", "Daegu"),
    ("incheon", "인천", "Incheon"),
    ("gwangju", "광주", "Gwangju"),
    ("daejeon", "대전", "Daejeon"),
    ("ulsan", "울산", "Ulsan"),
    ("sejong", "세종", "Sejong"),
    ("gyeonggi", "경기", "Gyeonggi"),
    ("gangwon", "강원", "Gangwon"),
    ("chungbuk", "충북", "North Chungcheong"),
    ("chungnam", "충남", "South Chungcheong"),
    ("jeonbuk", "전북", "North Jeolla"),
    ("jeonnam", "전남", "South Jeolla"),
    ("gyeongbuk", "경북", "North Gyeongsang"),
    ("gyeongnam", "경남", "South Gyeongsang"),
    ("jeju", "제주", "Jeju"),
    ("abroad", "해외", "Abroad"),
)

REGION_CODES: frozenset[str] = frozenset(code for code, _, _ in REGIONS)

_ALIASES: dict[str, str] = {}
for _code, _ko, _en in REGIONS:
    for _alias in (_code, _ko, _en.lower()):
        _ALIASES[_alias] = _code
# Common long forms people type or that appear in existing lists.
_ALIASES.update({
    "서울특별시": "seoul", "부산광역시": "busan", "대구광역시": "daegu", "인천광역시": "incheon",
    "광주광역시": "gwangju", "대전광역시": "daejeon", "울산광역시": "ulsan",
    "세종특별자치시": "sejong", "경기도": "gyeonggi", "강원도": "gangwon",
    "강원특별자치도": "gangwon", "충청북도": "chungbuk", "충청남도": "chungnam",
    "전라북도": "jeonbuk", "전북특별자치도": "jeonbuk", "전라남도": "jeonnam",
    "경상북도": "gyeongbuk", "경상남도": "gyeongnam", "제주도": "jeju",
    "제주특별자치도": "jeju",
})


def parse_region(value: str) -> str | None:
    """A region code from a code, a Korean or English name; None if unknown."""
    return _ALIASES.get(value.strip().lower())


def region_name(code: str | None, lang: str) -> str:
    for c, ko, en in REGIONS:
        if c == code:
            return ko if lang == "ko" else en
    return "-"
