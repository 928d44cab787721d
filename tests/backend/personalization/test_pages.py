"""Marketer pages: blocks and variants (sanitised on save), default rules, roles."""

from __future__ import annotations

import gzip
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


async def test_snippet_is_small_and_cached_long(client: AsyncTestClient[Litestar]) -> None:
    assert len(gzip.compress(SNIPPET.read_bytes(), 9)) < 5 * 1024
    response = await client.get("/static/snippet/touchflow.js")
    assert response.status_code == 200
    assert "max-age=86400" in response.headers["cache-control"]
    assert "data-touchflow-slot" in response.text
