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


# The second level (시/군/구) under a province: code, Korean name, English name, in the
# order shown. Only 경기 so far (the chapters asked for first); a province without a list
# here simply has no second question at sign-up. Codes are unique within a province.
DISTRICTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "gyeonggi": (
        ("suwon", "수원시", "Suwon"), ("seongnam", "성남시", "Seongnam"),
        ("goyang", "고양시", "Goyang"), ("yongin", "용인시", "Yongin"),
        ("bucheon", "부천시", "Bucheon"), ("ansan", "안산시", "Ansan"),
        ("anyang", "안양시", "Anyang"), ("namyangju", "남양주시", "Namyangju"),
        ("hwaseong", "화성시", "Hwaseong"), ("pyeongtaek", "평택시", "Pyeongtaek"),
        ("uijeongbu", "의정부시", "Uijeongbu"), ("siheung", "시흥시", "Siheung"),
        ("paju", "파주시", "Paju"), ("gimpo", "김포시", "Gimpo"),
        ("gwangmyeong", "광명시", "Gwangmyeong"), ("gwangju", "광주시", "Gwangju"),
        ("gunpo", "군포시", "Gunpo"), ("hanam", "하남시", "Hanam"),
        ("osan", "오산시", "Osan"), ("icheon", "이천시", "Icheon"),
        ("anseong", "안성시", "Anseong"), ("uiwang", "의왕시", "Uiwang"),
        ("yangju", "양주시", "Yangju"), ("guri", "구리시", "Guri"),
        ("pocheon", "포천시", "Pocheon"), ("yeoju", "여주시", "Yeoju"),
        ("dongducheon", "동두천시", "Dongducheon"), ("gwacheon", "과천시", "Gwacheon"),
        ("yangpyeong", "양평군", "Yangpyeong"), ("gapyeong", "가평군", "Gapyeong"),
        ("yeoncheon", "연천군", "Yeoncheon"),
    ),
}
_SUFFIXES = ("특례시", "시", "군", "구")


def districts(province: str | None) -> tuple[tuple[str, str, str], ...]:
    return DISTRICTS.get(province or "", ())


def parse_district(province: str | None, value: str) -> str | None:
    """A district code of `province` from a code, a Korean name with or without 시/군/구
    (고양, 고양시, 경기 고양시) or an English name (Goyang, goyang-si); None if unknown."""
    text = " ".join(value.strip().lower().split())
    words = text.split(" ")
    if len(words) > 1 and parse_region(words[0]) == province:
        text = " ".join(words[1:])  # "경기 고양시", "경기도 고양시"
    text = text.removesuffix("-si").removesuffix(" city").removesuffix("-gun").strip()
    for code, ko, en in districts(province):
        bare = next((ko.removesuffix(s) for s in _SUFFIXES if ko.endswith(s)), ko)
        if text in (code, ko, bare, en.lower()):
            return code
    stripped = next((text.removesuffix(s) for s in _SUFFIXES if text.endswith(s)), text)
    for code, ko, _en in districts(province):
        if stripped and ko.startswith(stripped) and len(stripped) >= 2:
            return code
    return None


def district_name(province: str | None, code: str | None, lang: str) -> str:
    for c, ko, en in districts(province):
        if c == code:
            return ko if lang == "ko" else en
    return "-"
