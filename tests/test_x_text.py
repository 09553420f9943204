"""X's text rules: weighted length, threads of Korean and English text, commands, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.broadcasts import OutgoingMessage
from campaigns.replies import Button
from campaigns.x.intake import Command, parse_command
from campaigns.x.posts import plan_post
from campaigns.x.settings import TIERS, XLimits, parse_limits, rate_limit_reset
from campaigns.x.text import (
    deep_link,
    html_to_plain,
    poll_minutes,
    poll_problem,
    split_thread,
    weighted_length,
)

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
LINK = "https://t.me/nalgae_bot?start=sign_clean-air"


def test_hangul_weighs_two_latin_one_and_a_url_23() -> None:
    assert weighted_length("가" * 140) == 280
    assert weighted_length("a" * 280) == 280
    assert weighted_length("서명 clean-air") == 14  # 2×2 + space + 9
    assert weighted_length(LINK) == 23
    assert weighted_length("https://example.org/" + "x" * 300) == 23


def test_a_korean_text_of_exactly_280_is_one_post_and_281_is_a_thread() -> None:
    exact = "가" * 140
    assert split_thread(exact) == [exact]
    over = "가" * 139 + " a"  # 278 + 1 + 1 = 280 ... plus one more character
    assert weighted_length(over) == 280
    assert split_thread(over) == [over]
    parts = split_thread(over + "b")
    assert len(parts) == 2
    assert [p[-6:] for p in parts] == [" (1/2)", " (2/2)"]
    assert all(weighted_length(p) <= 280 for p in parts)
    # Nothing lost, nothing added but the numbering.
    assert "".join(p[:-6] for p in parts).replace(" ", "") == (over + "b").replace(" ", "")


def test_korean_sentences_are_cut_at_sentence_ends_and_numbered() -> None:
    sentence = "오늘 국회 앞에서 기후위기 대응을 촉구하는 집회가 열립니다."
    text = " ".join([sentence] * 12)
    parts = split_thread(text)
    assert len(parts) == 3
    for i, part in enumerate(parts, start=1):
        assert weighted_length(part) <= 280
        assert part.endswith(f"다. ({i}/3)"), part[-20:]  # a whole sentence each time
    assert " ".join(p.removesuffix(f" ({i}/3)") for i, p in enumerate(parts, 1)) == text


def test_a_post_exactly_at_the_limit_with_its_link_is_not_split() -> None:
    link = f"\n\n서명하기: {LINK}"
    room = 280 - weighted_length(link)
    body = "가" * (room // 2) + "!" * (room % 2)
    assert weighted_length(body + link) == 280
    assert split_thread(body, first_suffix=link) == [body + link]
    parts = split_thread(body + "나", first_suffix=link)
    assert len(parts) == 2 and parts[0].endswith(link) and not parts[1].endswith(link)
    assert all(weighted_length(p) <= 280 for p in parts)


def test_a_word_longer_than_a_post_is_cut_between_characters_not_inside_a_url() -> None:
    word = "가" * 300 + "https://example.org/very/long/path" + "나" * 10
    parts = split_thread(word)
    assert all(weighted_length(p) <= 280 for p in parts)
    assert sum("https://example.org/very/long/path" in p for p in parts) == 1


def test_english_text_splits_at_words() -> None:
    text = " ".join(["solidarity"] * 60)
    parts = split_thread(text)
    assert all(weighted_length(p) <= 280 for p in parts)
    assert all(p.split(" (")[0].split(" ")[-1] == "solidarity" for p in parts)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["가나다", "청원", "서명해요.", "climate", "justice!", "🙂",
                                 "https://nalgae.example/p", "\n", "\n\n", "라" * 50]),
                min_size=1, max_size=120))
def test_every_part_fits_and_the_words_survive(words: list[str]) -> None:
    text = " ".join(words).strip()
    if not text:
        return
    parts = split_thread(text, first_suffix=f"\n\nSign: {LINK}")
    assert all(0 < weighted_length(p) <= 280 for p in parts)
    n = len(parts)
    bodies = [p.removesuffix(f"\n\nSign: {LINK}") for p in parts]
    if n > 1:
        bodies = [b.removesuffix(f" ({i}/{n})") for i, b in enumerate(bodies, 1)]
    squash = "".join(text.split())
    assert "".join("".join(b.split()) for b in bodies) == squash


def test_html_becomes_plain_text_with_links_spelled_out() -> None:
    assert html_to_plain('<b>오늘</b> 집회 &amp; <a href="https://x.org/a">안내</a> &lt;3') == \
        "오늘 집회 & 안내 (https://x.org/a) <3"


def test_the_deep_link_opens_the_bot_on_the_petition() -> None:
    assert deep_link("@nalgae_bot", "clean-air") == LINK


def test_a_post_plan_puts_the_petition_link_in_the_first_post() -> None:
    message = OutgoingMessage("오늘 집회에 함께해요. " * 30,
                              buttons=((Button("서명하기", url=LINK),),))
    plan = plan_post(message)
    assert plan.kind == "thread" and plan.problem is None
    assert plan.parts[0].endswith(f"서명하기: {LINK}")
    assert all(LINK not in p for p in plan.parts[1:])


def test_a_post_that_mentions_people_is_refused() -> None:
    plan = plan_post(OutgoingMessage("@someone 오늘 집회"))
    assert plan.problem is not None and "mention" in plan.problem


@pytest.mark.parametrize(("text", "command"), [
    ("@nalgae_bot sign clean-air", Command("sign", "clean-air", "en")),
    ("@nalgae_bot 서명 clean-air", Command("sign", "clean-air", "ko")),
    ("@nalgae_bot #서명 #clean-air", Command("sign", "clean-air", "ko")),
    ("@nalgae_bot @friend 저도 서명 clean-air 합니다!",
     Command("sign", "clean-air", "ko", leading=False)),
    ("@nalgae_bot 서명 clean-air에 동참합니다", Command("sign", "clean-air", "ko")),
    ("@nalgae_bot how do I sign up?", Command("sign", "up", "en", leading=False)),
    ("@nalgae_bot Sign Clean-Air.", Command("sign", "clean-air", "en")),
    ("@nalgae_bot stop", Command("stop", None, "en")),
    ("@nalgae_bot 중지", Command("stop", None, "ko")),
    ("@nalgae_bot STOP please", Command("stop", None, "en")),
    ("@nalgae_bot we must stop the dam", None),
    ("@nalgae_bot 오늘 집회 몇 시에 시작하나요?", None),
    ("@nalgae_bot sign", None),
    ("@nalgae_bot sign https://evil.example/x", None),
])
def test_mention_commands(text: str, command: Command | None) -> None:
    assert parse_command(text) == command


def test_poll_rules() -> None:
    assert poll_problem("다음 행동은?", ["집회", "서명"]) is None
    assert poll_problem("다음 행동은?", ["하나"]) is not None
    assert poll_problem("다음 행동은?", ["1", "2", "3", "4", "5"]) is not None
    assert poll_problem("다음 행동은?", ["가" * 26, "나"]) is not None
    assert poll_minutes(None) == 1440
    assert poll_minutes(4 * 60 + 59) is None
    assert poll_minutes(5 * 60) == 5
    assert poll_minutes(30 * 24 * 3600) == 7 * 24 * 60


def test_rate_limit_reset_prefers_the_exhausted_24_hour_cap() -> None:
    now = NOW.timestamp()
    at, which = rate_limit_reset({"x-rate-limit-remaining": "0",
                                  "x-rate-limit-reset": str(int(now) + 900)}, NOW)
    assert which == "15m" and at == NOW + timedelta(seconds=900)
    at, which = rate_limit_reset({
        "x-rate-limit-remaining": "63", "x-rate-limit-reset": str(int(now) + 600),
        "x-app-limit-24hour-remaining": "0", "x-app-limit-24hour-reset": str(int(now) + 72000),
        "x-user-limit-24hour-remaining": "112", "x-user-limit-24hour-reset": str(int(now) + 70000),
    }, NOW)
    assert which == "24h-app" and at == NOW + timedelta(seconds=72000)
    at, which = rate_limit_reset({}, NOW)
    assert which == "unknown" and at == NOW + timedelta(seconds=60)


def test_limits_per_tier_and_overrides() -> None:
    assert TIERS["pro"] == XLimits(100, 10_000, 180)
    assert parse_limits("basic", "posts_24h=50").posts_24h == 50
    with pytest.raises(ValueError):
        parse_limits("gold", "")
    with pytest.raises(ValueError):
        parse_limits("pro", "posts=3")
