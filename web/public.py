"""Public pages (no sign-in): a petition with its live count, a printable poster with a QR
code of the Telegram deep link, the results of closed polls, and a campaign's published
ideas with their backs and answers.

Every page and poster takes ``?src=<code>`` (a rally, a flyer) and carries it into its
deep link (``start=sign_<slug>__src_<code>``, campaigns.sources), so that sign-ups and
signatures through a printed QR code show under that source in the per-source report."""

from __future__ import annotations

from typing import Any

import segno
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from campaigns import ideas, petitions, polls, sources
from campaigns.errors import RuleError
from campaigns.times import DISPLAY_TZ
from campaigns.x.results import x_column
from storage import petitions as petition_store
from storage import polls as poll_store
from web.pages import (
    absolute,
    bot_username,
    database,
    language,
    live,
    live_count,
    page,
    render_results,
)

router = APIRouter(include_in_schema=False)


def deep_link(username: str | None, slug: str, src: str | None = None) -> str | None:
    """``https://t.me/<bot>?start=sign_<slug>[__src_<src>]``: opens the bot and starts
    signing."""
    return sources.deep_link(username, f"sign_{slug}", src)


def source_of(request: Request) -> str | None:
    """The page's `?src=` as a deep link may carry it; a bad one is ignored."""
    return sources.clean_source(request.query_params.get("src"))


def with_src(url: str, src: str | None) -> str:
    """A page address that keeps the source (a poster without a bot links to its page)."""
    return f"{url}?src={src}" if src else url


def qr_svg(url: str) -> Markup:
    """The QR code as inline SVG (error correction M: survives a crumpled poster)."""
    svg = segno.make(url, error="m").svg_inline(scale=8, border=2, dark="#000", light="#fff")
    return Markup(svg)


async def _public_petition(request: Request, slug: str) -> Any:
    async with database(request).session() as s:
        p = await petition_store.petition_by_slug(s, slug)
        count = await petitions.live_count(s, p) if p is not None else 0
    if p is None or p.status == "draft":
        raise HTTPException(404, "no such petition")
    return p, count


@router.get("/p/{slug}", response_class=HTMLResponse, name="public_petition")
async def petition_page(request: Request, slug: str) -> Response:
    p, count = await _public_petition(request, slug)
    lang = language(request)
    link = deep_link(await bot_username(request), p.slug, source_of(request))
    return page(request, "public_petition.html", {
        "p": p, "count": count, "deep_link": link,
        "share_url": absolute(request, f"/p/{p.slug}"),
        "title": (p.title_en if lang == "en" and p.title_en else p.title_ko),
        "body": (p.body_en if lang == "en" and p.body_en else p.body_ko) or "",
        "closes": p.closes_at.astimezone(DISPLAY_TZ).strftime("%Y-%m-%d %H:%M")
        if p.closes_at else None,
        "public": True,
    })


@router.get("/p/{slug}/live")
async def petition_live(request: Request, slug: str) -> Response:
    p, _count_now = await _public_petition(request, slug)
    return live(request, lambda: live_count(request, p.id))


@router.get("/p/{slug}/poster", response_class=HTMLResponse)
async def poster(request: Request, slug: str) -> Response:
    p, count = await _public_petition(request, slug)
    lang = language(request)
    src = source_of(request)
    link = deep_link(await bot_username(request), p.slug, src)
    target = link or with_src(absolute(request, f"/p/{p.slug}"), src)
    return page(request, "poster.html", {
        "p": p, "count": count, "link": target, "qr": qr_svg(target),
        "title": (p.title_en if lang == "en" and p.title_en else p.title_ko),
        "public": True,
    })


@router.get("/p/poll/{slug}", response_class=HTMLResponse)
async def poll_results(request: Request, slug: str) -> Response:
    lang = language(request)
    async with database(request).session() as s:
        poll = await poll_store.poll_by_slug(s, slug)
        if poll is None or poll.status != "closed":
            # Results are published once the poll closes (as in the bot).
            raise HTTPException(404, "no published results")
        results = await polls.results(s, poll)
        voters = await poll_store.voter_count(s, poll.id)
        x = await x_column(s, poll.id)
    return page(request, "public_poll.html", {
        "poll": poll, "public": True,
        "question": poll.question_en if lang == "en" and poll.question_en
        else poll.question_ko,
        "results": Markup(render_results(request, poll, results, voters, lang, x))})


@router.get("/i/{campaign}", response_class=HTMLResponse)
async def ideas_page(request: Request, campaign: str) -> Response:
    """Approved ideas, most backed first, with the organisers' answers (no names)."""
    lang = language(request)
    async with database(request).session() as s:
        try:
            found = await ideas.campaign_of(s, campaign)
            rows = await ideas.listing(s, campaign)
        except RuleError:
            raise HTTPException(404, "no such campaign") from None
    username = await bot_username(request)
    return page(request, "public_ideas.html", {
        "ideas": rows, "public": True,
        "title": found.title_en if lang == "en" and found.title_en else found.title_ko,
        "deep_link": sources.deep_link(username, f"idea_{found.slug}", source_of(request))})
