"""Marketer pages: blocks and variants (sanitised on save), default rules, roles."""

from __future__ import annotations

import gzip
import hashlib
import html
import re
from pathlib import Path

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import ContentBlock, ContentRule, ContentVariant, Role
from tests.backend.personalization.conftest import Post, Shop
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import post_form

SNIPPET = Path(__file__).parents[3] / "frontend" / "static" / "snippet" / "touchflow.js"
EVIL = (
    '<div class="hero" onmouseover="steal()"><h2>Spring sale</h2><script>steal()</script>'
    '<a href="javascript:steal()">go</a><img src="x.png" onerror="steal()"></div>'
)


async def test_marketer_builds_a_block_with_a_rule(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], snippet: Post, shop: Shop
) -> None:
    client = await signed_in(Role.marketer)
    created = await post_form(
        client, "/personalization/blocks", {"name": "Spring"}, form_page="/personalization"
    )
    assert created.status_code == 303, created.text
    url = created.headers["location"]
    saved = await post_form(
        client,
        f"{url}/variants",
        {"key": "spring", "name": "Spring sale", "html": EVIL},
        form_page=url,
    )
    assert saved.status_code == 303, saved.text
    async with sessions() as db:
        block = await db.scalar(select(ContentBlock).where(ContentBlock.name == "Spring"))
        assert block is not None
        variant = await db.scalar(select(ContentVariant).where(ContentVariant.block_id == block.id))
    assert variant is not None
    assert variant.html == (
        '<div class="hero"><h2>Spring sale</h2>'
        '<a rel="noopener noreferrer">go</a><img src="x.png"></div>'
    )
    page = await client.get(url)
    assert "Spring sale" in page.text and "steal()</script>" not in page.text

    rule = await post_form(
        client,
        "/personalization/rules",
        {
            "variant_id": str(variant.id),
            "slot": "banner",
            "url_pattern": "/pricing*",
            "utm_source": "",
            "audience": "anyone",
            "priority": "5",
        },
        form_page=url,
    )
    assert rule.status_code == 303, rule.text
    decided = await snippet(
        "decide", slots=["banner"], page={"url": "https://shop.example.com/pricing"}
    )
    assert decided.json()["slots"]["banner"]["html"] == variant.html
    overview = await client.get("/personalization")
    assert "/pricing*" in overview.text and "tfs_test-shop-key" in overview.text


async def test_bad_variant_and_rule_input_is_explained(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], shop: Shop
) -> None:
    client = await signed_in(Role.marketer)
    url = f"/personalization/blocks/{shop.block_id}"
    bad = await post_form(client, f"{url}/variants", {"key": "Bad Key!", "html": ""}, form_page=url)
    assert bad.status_code == 422
    assert "Use lowercase letters" in bad.text and "Write the HTML" in bad.text
    duplicate = await post_form(
        client, f"{url}/variants", {"key": "linkedin", "html": "<p>x</p>"}, form_page=url
    )
    assert "already has a variant with this key" in duplicate.text
    rule = await post_form(
        client,
        "/personalization/rules",
        {"variant_id": str(shop.variants["known"]), "slot": "Hero Banner", "audience": "all"},
        form_page=url,
    )
    assert rule.status_code == 422
    assert "slot&#39;s name" in rule.text or "slot's name" in rule.text
    async with sessions() as db:
        assert len(list(await db.scalars(select(ContentRule)))) == 2  # the shop's own


async def test_viewers_can_look_but_not_change(
    signed_in: SignedIn, shop: Shop, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.viewer)
    assert (await client.get("/personalization")).status_code == 200
    refused = await post_form(
        client, "/personalization/blocks", {"name": "Nope"}, form_page="/personalization"
    )
    assert refused.status_code == 403


async def test_snippet_is_small_and_its_hashed_url_cached_for_a_year(
    signed_in: SignedIn, shop: Shop
) -> None:
    assert len(gzip.compress(SNIPPET.read_bytes(), 9)) < 5 * 1024
    client = await signed_in(Role.viewer)
    page = html.unescape((await client.get("/personalization")).text)
    found = re.search(
        r'src="(http://testserver\.local(/snippet/([0-9a-f]{16})/touchflow\.js))"', page
    )
    assert found is not None, "the embed code names the content-hashed snippet"
    assert found.group(3) == hashlib.sha256(SNIPPET.read_bytes()).hexdigest()[:16]
    assert "touchflow-hide" in page and "visibility:hidden" in page  # the inline anti-flicker
    response = await client.get(found.group(2))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.content == SNIPPET.read_bytes()
    stale = await client.get("/snippet/0123456789abcdef/touchflow.js", follow_redirects=False)
    assert (stale.status_code, stale.headers["location"]) == (302, found.group(2))
    old = await client.get("/static/snippet/touchflow.js")
    assert "max-age=3600" in old.headers["cache-control"]


async def test_snippet_pages_and_answers_are_compressed(client: AsyncTestClient[Litestar]) -> None:
    gzipped = await client.get("/static/snippet/touchflow.js", headers={"Accept-Encoding": "gzip"})
    assert gzipped.headers["content-encoding"] == "gzip"
    assert gzipped.content == SNIPPET.read_bytes()  # httpx undoes the gzip
    assert int(gzipped.headers["content-length"]) < len(SNIPPET.read_bytes()) / 2
    brotli = await client.get("/login", headers={"Accept-Encoding": "br, gzip"})
    assert brotli.headers["content-encoding"] == "br"
    plain = await client.get(
        "/static/snippet/touchflow.js", headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers


async def test_marketer_marks_a_block_safe_to_show_on_a_claim(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], shop: Shop
) -> None:
    client = await signed_in(Role.marketer)
    url = f"/personalization/blocks/{shop.block_id}"
    assert 'name="show_on_claim"' in (await client.get(url)).text
    states = []
    for data in ({"show_on_claim": "on"}, {}):
        answer = await post_form(client, f"{url}/claim", data, form_page=url)
        assert answer.status_code == 303, answer.text
        async with sessions() as db:
            block = await db.get(ContentBlock, shop.block_id)
            assert block is not None
            states.append(block.show_on_claim)
    assert states == [True, False]
