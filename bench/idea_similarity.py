"""Idea similarity: precision and recall on a labelled Korean fixture, and time per lookup
over 1,000 ideas, for the approach in campaigns/ideas.py and the alternatives the issue names.

    .venv/bin/python bench/idea_similarity.py [--extra-path DIR]

Methods: `bigrams` (ours: particles cut, spaces removed, Dice of character bigrams, no
dependency), `rapidfuzz` (normalised Indel ratio of the same normalised text), `kiwi`
(kiwipiepy morphemes: Dice of the content morphemes' sets), `pg_trgm` (PostgreSQL
similarity() of the raw texts, when a server is reachable). The optional libraries are
imported only if installed (or found under --extra-path); a missing one is reported as
such. Every method uses the same scoring as `most_similar` (best of title, and half title
half text) and its own threshold. Prints one JSON object per method, the last line all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from campaigns import ideas

EXISTING = [
    (1, "청년 대중교통 요금을 무료로", "청년들의 버스와 지하철 요금을 없애자"),
    (2, "공공 도서관 운영 시간 연장", "밤 10시까지 열자"),
    (3, "반려동물 놀이터 설치", "구마다 하나씩"),
    (4, "최저임금을 1만 5천원으로", "생활임금 수준으로 올리자"),
    (5, "공공임대주택을 더 많이 짓자", "청년과 신혼부부에게 우선 공급"),
    (6, "어린이 보호구역 과속 단속 강화", "학교 앞 카메라를 늘리자"),
    (7, "지역 화폐 발행 확대", "골목상권을 살리자"),
    (8, "주 4일 근무제 도입", "노동시간을 줄이자"),
    (9, "탄소세를 도입하자", "기후위기 대응 재원"),
    (10, "동네 병원 야간 진료 지원", "아이가 밤에 아플 때"),
]
# (title, text, the ideas it must match): particles and spacing differ; then unrelated
# ideas sharing a word or two with one of the above, which must match nothing.
QUERIES: list[tuple[str, str, set[int]]] = [
    ("청년대중교통 요금 무료", "버스 지하철 무료로 하자", {1}),
    ("공공도서관의 운영시간을 연장", "밤늦게까지 열자", {2}),
    ("반려동물놀이터를 설치해요", "공원마다", {3}),
    ("최저임금 1만5천원", "임금을 올리자", {4}),
    ("공공 임대 주택을 더 많이", "집값 대책", {5}),
    ("어린이보호구역의 과속단속을 강화", "아이들 안전", {6}),
    ("지역화폐를 발행 확대", "상권 살리기", {7}),
    ("주4일 근무제를 도입", "쉬는 날", {8}),
    ("탄소세 도입", "기후 재원", {9}),
    ("동네병원의 야간진료를 지원", "밤에 아픈 아이", {10}),
    ("공원 벤치를 늘리자", "쉴 곳이 없다", set()),
    ("전기차 충전소 확대", "아파트마다", set()),
    ("청소년 투표권 확대", "16세부터", set()),
    ("도서 정가제 폐지", "책값", set()),
    ("야간 버스 노선 신설", "심야에 집에 갈 수 있게", set()),
    ("반려견 등록제 강화", "유기견을 줄이자", set()),
    ("학교 급식 무상화", "모든 학교에서", set()),
    ("공공 와이파이 설치", "지하철역마다", set()),
]

Similarity = Callable[[str, str], float]


def scorer(similarity: Similarity, at: float) -> Callable[..., list[int]]:
    def most_similar(title: str, body: str, candidates: list[tuple[int, str, str]]) -> list[int]:
        scored = []
        for idea_id, t, b in candidates:
            s = max(similarity(title, t), 0.5 * similarity(title, t) + 0.5 * similarity(body, b))
            if s >= at:
                scored.append((s, idea_id))
        return [i for _s, i in sorted(scored, reverse=True)[:ideas.SIMILAR_SHOWN]]
    return most_similar


def rapidfuzz_similarity() -> Similarity:
    from rapidfuzz import fuzz

    return lambda a, b: fuzz.ratio(ideas.normalise(a), ideas.normalise(b)) / 100


def kiwi_similarity() -> Similarity:
    from kiwipiepy import Kiwi

    kiwi = Kiwi()
    cache: dict[str, set[str]] = {}

    def content(text: str) -> set[str]:
        if text not in cache:
            cache[text] = {tok.form for tok in kiwi.tokenize(text)
                           if tok.tag.startswith(("NN", "VV", "VA", "SN", "XR"))}
        return cache[text]

    def similarity(a: str, b: str) -> float:
        x, y = content(a), content(b)
        return 2 * len(x & y) / (len(x) + len(y)) if x and y else 0.0
    return similarity


def thousand_ideas() -> list[tuple[int, str, str]]:
    rnd = random.Random(12)
    words = ["청년", "주거", "교통", "버스", "지하철", "요금", "공공", "임대", "주택", "도서관",
             "운영", "시간", "반려동물", "공원", "학교", "급식", "병원", "야간", "진료", "지역",
             "화폐", "기후", "탄소", "에너지", "태양광", "일자리", "노동", "임금", "돌봄", "어린이"]
    particles = ["", "을", "를", "의", "에", "로", "은", "는"]
    out = []
    for i in range(1000):
        title = " ".join(rnd.choice(words) + rnd.choice(particles) for _ in range(4))
        body = " ".join(rnd.choice(words) + rnd.choice(particles) for _ in range(12))
        out.append((100 + i, title, body))
    return out


def measure(name: str, similarity: Similarity, at: float) -> dict[str, Any]:
    find = scorer(similarity, at)
    tp = fp = positives = 0
    wrong: list[str] = []
    for title, body, expected in QUERIES:
        got = set(find(title, body, EXISTING))
        tp += len(got & expected)
        fp += len(got - expected)
        positives += len(expected)
        if got != expected:
            wrong.append(f"{title} -> {sorted(got)} (want {sorted(expected)})")
    pool = thousand_ideas()
    t0 = time.perf_counter()
    find(*QUERIES[0][:2], pool)  # the first lookup: nothing cached yet
    cold_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    for title, body, _e in QUERIES * 3:
        find(title, body, pool)
    per_ms = (time.perf_counter() - t0) * 1000 / (len(QUERIES) * 3)
    return {"method": name, "threshold": at, "precision": round(tp / (tp + fp), 3) if tp + fp
            else None, "recall": round(tp / positives, 3), "lookup_ms_at_1000": round(per_ms, 2),
            "first_lookup_ms_at_1000": round(cold_ms, 1),
            "wrong": wrong}


async def pg_trgm(url: str) -> Similarity | None:
    import asyncpg

    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        texts = {t for _i, t, b in EXISTING for t in (t, b)} | \
            {t for t, b, _e in QUERIES for t in (t, b)}
        pairs = {(a, b): float(await conn.fetchval("SELECT similarity($1, $2)", a, b))
                 for a in texts for b in texts}
    except asyncpg.PostgresError:
        return None
    finally:
        await conn.close()
    return lambda a, b: pairs.get((a, b), 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--extra-path", help="where optional libraries are installed")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    if args.extra_path:
        sys.path.append(args.extra_path)
    results = [measure("bigrams", ideas.similarity, ideas.SIMILAR_AT)]
    for name, make, at in (("rapidfuzz", rapidfuzz_similarity, 0.6),
                           ("kiwi", kiwi_similarity, ideas.SIMILAR_AT)):
        try:
            results.append(measure(name, make(), at))
        except ImportError:
            results.append({"method": name, "missing": True})
    trgm = asyncio.run(pg_trgm(args.pg))
    if trgm is not None:
        # Lookups run in the database there; the time is not comparable, so not given.
        found = measure("pg_trgm", trgm, 0.3)
        found["lookup_ms_at_1000"] = None
        results.append(found)
    for r in results:
        print(json.dumps(r, ensure_ascii=False))
    print(json.dumps({r["method"]: {k: r.get(k) for k in ("precision", "recall",
                                                             "lookup_ms_at_1000",
                                                             "first_lookup_ms_at_1000")}
                      for r in results}, ensure_ascii=False))


if __name__ == "__main__":
    main()
