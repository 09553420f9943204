"""The 17 Korean provinces and metropolitan cities, plus abroad."""

from __future__ import annotations

import functools
import re

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
    "서울시": "seoul", "부산시": "busan", "대구시": "daegu", "인천시": "incheon",
    "대전시": "daejeon", "울산시": "ulsan", "세종시": "sejong",
})


def parse_region(value: str) -> str | None:
    """A region code from a code, a Korean or English name; None if unknown."""
    return _ALIASES.get(value.strip().lower())


def region_name(code: str | None, lang: str) -> str:
    for c, ko, en in REGIONS:
        if c == code:
            return ko if lang == "ko" else en
    return "-"


# The second level (시/군/구) under each province: code, Korean name, English name, in the
# order shown (가나다 order, so a supporter paging through the buttons knows where to look).
# Administrative units as of 2026. 세종 has none: a province without a list here simply
# has no second question at sign-up. Codes are unique within a province only (`jung` is
# 중구 of 서울, 부산, 대구, 인천, 대전 and 울산); never rename a code once stored.
DISTRICTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "seoul": (
        ("gangnam", "강남구", "Gangnam-gu"), ("gangdong", "강동구", "Gangdong-gu"),
        ("gangbuk", "강북구", "Gangbuk-gu"), ("gangseo", "강서구", "Gangseo-gu"),
        ("gwanak", "관악구", "Gwanak-gu"), ("gwangjin", "광진구", "Gwangjin-gu"),
        ("guro", "구로구", "Guro-gu"), ("geumcheon", "금천구", "Geumcheon-gu"),
        ("nowon", "노원구", "Nowon-gu"), ("dobong", "도봉구", "Dobong-gu"),
        ("dongdaemun", "동대문구", "Dongdaemun-gu"), ("dongjak", "동작구", "Dongjak-gu"),
        ("mapo", "마포구", "Mapo-gu"), ("seodaemun", "서대문구", "Seodaemun-gu"),
        ("seocho", "서초구", "Seocho-gu"), ("seongdong", "성동구", "Seongdong-gu"),
        ("seongbuk", "성북구", "Seongbuk-gu"), ("songpa", "송파구", "Songpa-gu"),
        ("yangcheon", "양천구", "Yangcheon-gu"), ("yeongdeungpo", "영등포구", "Yeongdeungpo-gu"),
        ("yongsan", "용산구", "Yongsan-gu"), ("eunpyeong", "은평구", "Eunpyeong-gu"),
        ("jongno", "종로구", "Jongno-gu"), ("jung", "중구", "Jung-gu"),
        ("jungnang", "중랑구", "Jungnang-gu"),
    ),
    "busan": (
        ("gangseo", "강서구", "Gangseo-gu"), ("geumjeong", "금정구", "Geumjeong-gu"),
        ("gijang", "기장군", "Gijang"), ("nam", "남구", "Nam-gu"),
        ("dong", "동구", "Dong-gu"), ("dongnae", "동래구", "Dongnae-gu"),
        ("busanjin", "부산진구", "Busanjin-gu"), ("buk", "북구", "Buk-gu"),
        ("sasang", "사상구", "Sasang-gu"), ("saha", "사하구", "Saha-gu"),
        ("seo", "서구", "Seo-gu"), ("suyeong", "수영구", "Suyeong-gu"),
        ("yeonje", "연제구", "Yeonje-gu"), ("yeongdo", "영도구", "Yeongdo-gu"),
        ("jung", "중구", "Jung-gu"), ("haeundae", "해운대구", "Haeundae-gu"),
    ),
    "daegu": (
        ("gunwi", "군위군", "Gunwi"), ("nam", "남구", "Nam-gu"),
        ("dalseo", "달서구", "Dalseo-gu"), ("dalseong", "달성군", "Dalseong"),
        ("dong", "동구", "Dong-gu"), ("buk", "북구", "Buk-gu"),
        ("seo", "서구", "Seo-gu"), ("suseong", "수성구", "Suseong-gu"),
        ("jung", "중구", "Jung-gu"),
    ),
    # Since 2026-07-01: 중구 (inland) and 동구 became 제물포구, 중구's islands 영종구, and
    # 검단구 was split off 서구.
    "incheon": (
        ("ganghwa", "강화군", "Ganghwa"), ("geomdan", "검단구", "Geomdan-gu"),
        ("gyeyang", "계양구", "Gyeyang-gu"), ("namdong", "남동구", "Namdong-gu"),
        ("michuhol", "미추홀구", "Michuhol-gu"), ("bupyeong", "부평구", "Bupyeong-gu"),
        ("seo", "서구", "Seo-gu"), ("yeonsu", "연수구", "Yeonsu-gu"),
        ("yeongjong", "영종구", "Yeongjong-gu"), ("ongjin", "옹진군", "Ongjin"),
        ("jemulpo", "제물포구", "Jemulpo-gu"),
    ),
    "gwangju": (
        ("gwangsan", "광산구", "Gwangsan-gu"), ("nam", "남구", "Nam-gu"),
        ("dong", "동구", "Dong-gu"), ("buk", "북구", "Buk-gu"), ("seo", "서구", "Seo-gu"),
    ),
    "daejeon": (
        ("daedeok", "대덕구", "Daedeok-gu"), ("dong", "동구", "Dong-gu"),
        ("seo", "서구", "Seo-gu"), ("yuseong", "유성구", "Yuseong-gu"),
        ("jung", "중구", "Jung-gu"),
    ),
    "ulsan": (
        ("nam", "남구", "Nam-gu"), ("dong", "동구", "Dong-gu"), ("buk", "북구", "Buk-gu"),
        ("ulju", "울주군", "Ulju"), ("jung", "중구", "Jung-gu"),
    ),
    "gyeonggi": (
        ("gapyeong", "가평군", "Gapyeong"), ("goyang", "고양시", "Goyang"),
        ("gwacheon", "과천시", "Gwacheon"), ("gwangmyeong", "광명시", "Gwangmyeong"),
        ("gwangju", "광주시", "Gwangju"), ("guri", "구리시", "Guri"),
        ("gunpo", "군포시", "Gunpo"), ("gimpo", "김포시", "Gimpo"),
        ("namyangju", "남양주시", "Namyangju"), ("dongducheon", "동두천시", "Dongducheon"),
        ("bucheon", "부천시", "Bucheon"), ("seongnam", "성남시", "Seongnam"),
        ("suwon", "수원시", "Suwon"), ("siheung", "시흥시", "Siheung"),
        ("ansan", "안산시", "Ansan"), ("anseong", "안성시", "Anseong"),
        ("anyang", "안양시", "Anyang"), ("yangju", "양주시", "Yangju"),
        ("yangpyeong", "양평군", "Yangpyeong"), ("yeoju", "여주시", "Yeoju"),
        ("yeoncheon", "연천군", "Yeoncheon"), ("osan", "오산시", "Osan"),
        ("yongin", "용인시", "Yongin"), ("uiwang", "의왕시", "Uiwang"),
        ("uijeongbu", "의정부시", "Uijeongbu"), ("icheon", "이천시", "Icheon"),
        ("paju", "파주시", "Paju"), ("pyeongtaek", "평택시", "Pyeongtaek"),
        ("pocheon", "포천시", "Pocheon"), ("hanam", "하남시", "Hanam"),
        ("hwaseong", "화성시", "Hwaseong"),
    ),
    "gangwon": (
        ("gangneung", "강릉시", "Gangneung"), ("goseong", "고성군", "Goseong"),
        ("donghae", "동해시", "Donghae"), ("samcheok", "삼척시", "Samcheok"),
        ("sokcho", "속초시", "Sokcho"), ("yanggu", "양구군", "Yanggu"),
        ("yangyang", "양양군", "Yangyang"), ("yeongwol", "영월군", "Yeongwol"),
        ("wonju", "원주시", "Wonju"), ("inje", "인제군", "Inje"),
        ("jeongseon", "정선군", "Jeongseon"), ("cheorwon", "철원군", "Cheorwon"),
        ("chuncheon", "춘천시", "Chuncheon"), ("taebaek", "태백시", "Taebaek"),
        ("pyeongchang", "평창군", "Pyeongchang"), ("hongcheon", "홍천군", "Hongcheon"),
        ("hwacheon", "화천군", "Hwacheon"), ("hoengseong", "횡성군", "Hoengseong"),
    ),
    "chungbuk": (
        ("goesan", "괴산군", "Goesan"), ("danyang", "단양군", "Danyang"),
        ("boeun", "보은군", "Boeun"), ("yeongdong", "영동군", "Yeongdong"),
        ("okcheon", "옥천군", "Okcheon"), ("eumseong", "음성군", "Eumseong"),
        ("jecheon", "제천시", "Jecheon"), ("jeungpyeong", "증평군", "Jeungpyeong"),
        ("jincheon", "진천군", "Jincheon"), ("cheongju", "청주시", "Cheongju"),
        ("chungju", "충주시", "Chungju"),
    ),
    "chungnam": (
        ("gyeryong", "계룡시", "Gyeryong"), ("gongju", "공주시", "Gongju"),
        ("geumsan", "금산군", "Geumsan"), ("nonsan", "논산시", "Nonsan"),
        ("dangjin", "당진시", "Dangjin"), ("boryeong", "보령시", "Boryeong"),
        ("buyeo", "부여군", "Buyeo"), ("seosan", "서산시", "Seosan"),
        ("seocheon", "서천군", "Seocheon"), ("asan", "아산시", "Asan"),
        ("yesan", "예산군", "Yesan"), ("cheonan", "천안시", "Cheonan"),
        ("cheongyang", "청양군", "Cheongyang"), ("taean", "태안군", "Taean"),
        ("hongseong", "홍성군", "Hongseong"),
    ),
    "jeonbuk": (
        ("gochang", "고창군", "Gochang"), ("gunsan", "군산시", "Gunsan"),
        ("gimje", "김제시", "Gimje"), ("namwon", "남원시", "Namwon"),
        ("muju", "무주군", "Muju"), ("buan", "부안군", "Buan"),
        ("sunchang", "순창군", "Sunchang"), ("wanju", "완주군", "Wanju"),
        ("iksan", "익산시", "Iksan"), ("imsil", "임실군", "Imsil"),
        ("jangsu", "장수군", "Jangsu"), ("jeonju", "전주시", "Jeonju"),
        ("jeongeup", "정읍시", "Jeongeup"), ("jinan", "진안군", "Jinan"),
    ),
    "jeonnam": (
        ("gangjin", "강진군", "Gangjin"), ("goheung", "고흥군", "Goheung"),
        ("gokseong", "곡성군", "Gokseong"), ("gwangyang", "광양시", "Gwangyang"),
        ("gurye", "구례군", "Gurye"), ("naju", "나주시", "Naju"),
        ("damyang", "담양군", "Damyang"), ("mokpo", "목포시", "Mokpo"),
        ("muan", "무안군", "Muan"), ("boseong", "보성군", "Boseong"),
        ("suncheon", "순천시", "Suncheon"), ("sinan", "신안군", "Sinan"),
        ("yeosu", "여수시", "Yeosu"), ("yeonggwang", "영광군", "Yeonggwang"),
        ("yeongam", "영암군", "Yeongam"), ("wando", "완도군", "Wando"),
        ("jangseong", "장성군", "Jangseong"), ("jangheung", "장흥군", "Jangheung"),
        ("jindo", "진도군", "Jindo"), ("hampyeong", "함평군", "Hampyeong"),
        ("haenam", "해남군", "Haenam"), ("hwasun", "화순군", "Hwasun"),
    ),
    "gyeongbuk": (
        ("gyeongsan", "경산시", "Gyeongsan"), ("gyeongju", "경주시", "Gyeongju"),
        ("goryeong", "고령군", "Goryeong"), ("gumi", "구미시", "Gumi"),
        ("gimcheon", "김천시", "Gimcheon"), ("mungyeong", "문경시", "Mungyeong"),
        ("bonghwa", "봉화군", "Bonghwa"), ("sangju", "상주시", "Sangju"),
        ("seongju", "성주군", "Seongju"), ("andong", "안동시", "Andong"),
        ("yeongdeok", "영덕군", "Yeongdeok"), ("yeongyang", "영양군", "Yeongyang"),
        ("yeongju", "영주시", "Yeongju"), ("yeongcheon", "영천시", "Yeongcheon"),
        ("yecheon", "예천군", "Yecheon"), ("ulleung", "울릉군", "Ulleung"),
        ("uljin", "울진군", "Uljin"), ("uiseong", "의성군", "Uiseong"),
        ("cheongdo", "청도군", "Cheongdo"), ("cheongsong", "청송군", "Cheongsong"),
        ("chilgok", "칠곡군", "Chilgok"), ("pohang", "포항시", "Pohang"),
    ),
    "gyeongnam": (
        ("geoje", "거제시", "Geoje"), ("geochang", "거창군", "Geochang"),
        ("goseong", "고성군", "Goseong"), ("gimhae", "김해시", "Gimhae"),
        ("namhae", "남해군", "Namhae"), ("miryang", "밀양시", "Miryang"),
        ("sacheon", "사천시", "Sacheon"), ("sancheong", "산청군", "Sancheong"),
        ("yangsan", "양산시", "Yangsan"), ("uiryeong", "의령군", "Uiryeong"),
        ("jinju", "진주시", "Jinju"), ("changnyeong", "창녕군", "Changnyeong"),
        ("changwon", "창원시", "Changwon"), ("tongyeong", "통영시", "Tongyeong"),
        ("hadong", "하동군", "Hadong"), ("haman", "함안군", "Haman"),
        ("hamyang", "함양군", "Hamyang"), ("hapcheon", "합천군", "Hapcheon"),
    ),
    "jeju": (
        ("seogwipo", "서귀포시", "Seogwipo"), ("jeju", "제주시", "Jeju City"),
    ),
}
# Former names still found in old lists, per province: typed or imported, they mean today's unit.
_FORMER: dict[str, dict[str, str]] = {
    # 남구 renamed 2018; 동구 merged into 제물포구 2026 (the old 중구 was split in two, so
    # it names no one district and is asked again).
    "incheon": {"남구": "michuhol", "동구": "jemulpo"},
    "gyeongnam": {"마산": "changwon", "진해": "changwon"},  # merged into 창원 2010
    "chungbuk": {"청원": "cheongju"},  # merged into 청주 2014
}
_SUFFIXES = ("특례시", "시", "군", "구")
# Romanised suffixes people add to a name: Mapo-gu, Gijang-gun, Goyang-si, Jeju City.
_LATIN_SUFFIX = re.compile(r"[\s-]+(gu|gun|si|city|county|district)$")


# The special and metropolitan cities: their second level is 구 (and 군), not 시·군.
METROPOLITAN = frozenset({"seoul", "busan", "daegu", "incheon", "gwangju", "daejeon", "ulsan"})


def is_metropolitan(province: str | None) -> bool:
    return province in METROPOLITAN


def districts(province: str | None) -> tuple[tuple[str, str, str], ...]:
    return DISTRICTS.get(province or "", ())


def district_codes(province: str | None) -> frozenset[str]:
    return frozenset(code for code, _, _ in districts(province))


def _bare(name: str) -> str:
    """A Korean name without its 시/군/구 (고양시 → 고양); a name that is only the suffix
    plus one syllable keeps it whole when stripping would leave nothing."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name.removesuffix(suffix)
    return name


def _latin(name: str) -> str:
    return _LATIN_SUFFIX.sub("", name).replace(" ", "").replace("-", "")


def parse_district(province: str | None, value: str) -> str | None:
    """A district code of `province` from a code, a Korean name with or without 시/군/구
    (고양, 고양시, 경기 고양시) or an English name (Goyang, goyang-si, Mapo-gu); None if
    unknown or ambiguous.

    A start of a name is accepted only when it is at least two syllables and names one
    district alone (서대 → 서대문구; 동 in 서울 could be 동대문구 or 동작구: None). After a
    city with 구 of its own the rest is ignored (창원시 성산구 → 창원시)."""
    choices = districts(province)
    if not choices:
        return None
    text = " ".join(value.strip().lower().split())
    words = text.split(" ")
    candidates = [text]
    if len(words) > 1 and parse_region(words[0]) == province:
        words = words[1:]  # "경기 고양시", "경기도 고양시"
        candidates.append(" ".join(words))
    if len(words) > 1:
        candidates.append(words[0])
    for candidate in candidates:
        code = _match(province or "", choices, candidate)
        if code is not None:
            return code
    return None


@functools.cache
def _names(province: str) -> dict[str, str]:
    """Every exact spelling of a province's districts → its code: the code, the Korean name
    with and without 시/군/구, the English name without -gu/-si, and former names. Built
    once per province: an import of 100,000 rows looks one up per row."""
    names: dict[str, str] = {}
    for code, ko, en in districts(province):
        for name in (code, ko, _bare(ko), _latin(en.lower())):
            names.setdefault(name, code)
    for name, code in _FORMER.get(province, {}).items():
        names.setdefault(name, code)
    return names


def _match(province: str, choices: tuple[tuple[str, str, str], ...], text: str) -> str | None:
    if not text:
        return None
    names = _names(province)
    stripped = _bare(text)
    code = names.get(text) or names.get(_latin(text)) or names.get(stripped)
    if code is not None or len(stripped) < 2:
        return code
    found = {code for code, ko, _en in choices if ko.startswith(stripped)}
    return found.pop() if len(found) == 1 else None


def district_name(province: str | None, code: str | None, lang: str) -> str:
    for c, ko, en in districts(province):
        if c == code:
            return ko if lang == "ko" else en
    return "-"
