"""Marketer pages: content blocks, their variants, and default rules per slot.

Variant HTML is sanitised when saved; the page shows the cleaned result, so
what the marketer sees is what visitors get. Every change drops this
process's snippet caches; other processes pick it up within their TTL.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import audited, record
from backend.auth.guards import role
from backend.deps import Actor, Db, Now
from backend.i18n import N_, _
from backend.models import Audience, ContentBlock, ContentRule, ContentVariant, Role, SiteKey
from backend.personalization.sanitize import MAX_HTML_CHARS, sanitize_html
from backend.web.personalization.api import personalizer
from backend.web.personalization.snippet import ANTI_FLICKER_MS, embed_code, snippet_url
from backend.web.posted import Posted, read_posted
from backend.web.render import redirect, render
from backend.web.urls import public_base_url

AUDIENCES = {
    Audience.anyone.value: N_("Everyone"),
    Audience.anonymous.value: N_("Anonymous visitors"),
    Audience.known.value: N_("Known contacts"),
}
_KEY = re.compile(r"^[a-z0-9_-]{1,64}$")


async def _block(db: AsyncSession, block_id: int) -> ContentBlock:
    block = await db.get(ContentBlock, block_id)
    if block is None or block.archived_at is not None:
        raise NotFoundException(_("There is no content block with this number."))
    return block


async def _variants(db: AsyncSession, block_id: int) -> list[ContentVariant]:
    return list(
        await db.scalars(
            select(ContentVariant)
            .where(ContentVariant.block_id == block_id)
            .order_by(ContentVariant.position, ContentVariant.id)
        )
    )


def _check_variant(posted: Posted) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not _KEY.match(posted.get("key")):
        errors["key"] = _("Use lowercase letters, digits, _ and - (at most 64), like linkedin.")
    if not posted.get("html"):
        errors["html"] = _("Write the HTML to show.")
    elif len(posted.get("html")) > MAX_HTML_CHARS:
        errors["html"] = _("At most %(n)d characters.") % {"n": MAX_HTML_CHARS}
    return errors


@get("/personalization", opt=role(Role.viewer))
async def overview(request: Request[Any, Any, Any], db: Db, actor: Actor) -> Template:
    """Blocks, the default rules, and how to put the snippet on a site."""
    blocks = list(
        await db.scalars(
            select(ContentBlock)
            .where(ContentBlock.archived_at.is_(None))
            .order_by(ContentBlock.name)
        )
    )
    rules = (
        await db.execute(
            select(ContentRule, ContentVariant.name, ContentBlock.name)
            .join(ContentVariant, ContentVariant.id == ContentRule.variant_id)
            .join(ContentBlock, ContentBlock.id == ContentVariant.block_id)
            .order_by(ContentRule.slot, ContentRule.priority, ContentRule.id)
        )
    ).all()
    site_keys = list(await db.scalars(select(SiteKey).where(SiteKey.revoked_at.is_(None))))
    return render(
        request,
        "personalization/overview.html",
        {
            "nav": "personalization",
            "blocks": blocks,
            "rules": rules,
            "site_keys": site_keys,
            "audiences": AUDIENCES,
            "base_url": public_base_url(request),
            "embed_codes": {key.id: embed_code(snippet_url(request), key.key) for key in site_keys},
            "hide_ms": ANTI_FLICKER_MS,
            "can_edit": actor.allows(Role.marketer),
        },
    )


async def _block_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    block: ContentBlock,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Template:
    variants = await _variants(db, block.id)
    return render(
        request,
        "personalization/block.html",
        {
            "nav": "personalization",
            "block": block,
            "variants": variants,
            "audiences": AUDIENCES,
            "errors": errors or {},
            "values": values or {},
        },
        status_code=status,
    )


@post("/personalization/blocks", opt=role(Role.marketer) | audited("content_block.created"))
async def create_block(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now
) -> Response[Any]:
    posted = await read_posted(request)
    name = posted.get("name")[:200] or _("Untitled block")
    now = clock.now()
    block = ContentBlock(name=name, description="", created_by_id=actor.id, created_at=now)
    block.updated_at = now
    db.add(block)
    await db.flush()
    record(db, actor, "content_block.created", block, {"name": name})
    return redirect(request, f"/personalization/blocks/{block.id}")


@get("/personalization/blocks/{block_id:int}", opt=role(Role.marketer))
async def block_page(request: Request[Any, Any, Any], db: Db, block_id: FromPath[int]) -> Template:
    return await _block_page(request, db, await _block(db, block_id))


@post(
    "/personalization/blocks/{block_id:int}/variants",
    opt=role(Role.marketer) | audited("content_variant.saved", "content_variant.deleted"),
)
async def save_variant(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, block_id: FromPath[int]
) -> Response[Any] | Template:
    """Add a variant, or change one (``variant_id``), or delete it (``delete``)."""
    block = await _block(db, block_id)
    posted = await read_posted(request)
    variant: ContentVariant | None = None
    if posted.get("variant_id").isdigit():
        variant = await db.get(ContentVariant, int(posted.get("variant_id")))
        if variant is None or variant.block_id != block.id:
            raise NotFoundException(_("This variant no longer exists."))
    if variant is not None and posted.get("delete"):
        await db.delete(variant)
        record(db, actor, "content_variant.deleted", block, {"key": variant.key})
        personalizer(request).forget()
        return redirect(request, f"/personalization/blocks/{block.id}")
    errors = _check_variant(posted)
    duplicate = await db.scalar(
        select(ContentVariant.id).where(
            ContentVariant.block_id == block.id, ContentVariant.key == posted.get("key")
        )
    )
    if duplicate is not None and (variant is None or duplicate != variant.id):
        errors.setdefault("key", _("This block already has a variant with this key."))
    if errors:
        return await _block_page(
            request, db, block, errors=errors, values=posted.values, status=422
        )
    now = clock.now()
    if variant is None:
        variant = ContentVariant(block_id=block.id, position=len(await _variants(db, block.id)))
        variant.created_at = now
        db.add(variant)
    variant.key = posted.get("key")
    variant.name = posted.get("name")[:200] or variant.key
    variant.html = sanitize_html(posted.get("html"))
    variant.updated_at = now
    block.updated_at = now
    await db.flush()
    record(db, actor, "content_variant.saved", block, {"key": variant.key})
    personalizer(request).forget()
    return redirect(request, f"/personalization/blocks/{block.id}")


@post(
    "/personalization/blocks/{block_id:int}/archive",
    opt=role(Role.marketer) | audited("content_block.archived"),
)
async def archive_block(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, block_id: FromPath[int]
) -> Response[Any]:
    block = await _block(db, block_id)
    block.archived_at = clock.now()
    record(db, actor, "content_block.archived", block, {"name": block.name})
    personalizer(request).forget()
    return redirect(request, "/personalization")


@post(
    "/personalization/blocks/{block_id:int}/claim",
    opt=role(Role.marketer) | audited("content_block.claim_safety"),
)
async def set_claim_safe(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, block_id: FromPath[int]
) -> Response[Any]:
    """Whether the block may show to a visitor whose identity is only claimed."""
    block = await _block(db, block_id)
    block.show_on_claim = bool((await read_posted(request)).get("show_on_claim"))
    block.updated_at = clock.now()
    record(db, actor, "content_block.claim_safety", block, {"show_on_claim": block.show_on_claim})
    personalizer(request).forget()
    return redirect(request, f"/personalization/blocks/{block.id}")


@post("/personalization/rules", opt=role(Role.marketer) | audited("content_rule.created"))
async def add_rule(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now
) -> Response[Any] | Template:
    """A default rule: in ``slot``, show ``variant_id`` when page, source and audience match."""
    posted = await read_posted(request)
    variant = (
        await db.get(ContentVariant, int(posted.get("variant_id")))
        if posted.get("variant_id").isdigit()
        else None
    )
    if variant is None:
        raise NotFoundException(_("Choose a variant of this block."))
    block = await _block(db, variant.block_id)
    errors: dict[str, str] = {}
    if not _KEY.match(posted.get("slot")):
        errors["slot"] = _("Use the slot's name as on the page, like hero (a-z, 0-9, _ and -).")
    if posted.get("audience") not in AUDIENCES:
        errors["audience"] = _("Choose who the rule is for.")
    priority = posted.get("priority") or "100"
    if not priority.lstrip("-").isdigit():
        errors["priority"] = _("The order is a whole number; lower numbers are tried first.")
    if errors:
        return await _block_page(
            request, db, block, errors=errors, values=posted.values, status=422
        )
    rule = ContentRule(
        slot=posted.get("slot"),
        variant_id=variant.id,
        priority=int(priority),
        url_pattern=posted.get("url_pattern")[:300],
        utm_source=posted.get("utm_source")[:100].lower(),
        audience=posted.get("audience"),
        enabled=True,
        created_at=clock.now(),
    )
    db.add(rule)
    await db.flush()
    record(db, actor, "content_rule.created", block, {"slot": rule.slot, "variant": variant.key})
    personalizer(request).forget()
    return redirect(request, "/personalization")


@post(
    "/personalization/rules/{rule_id:int}/delete",
    opt=role(Role.marketer) | audited("content_rule.deleted"),
)
async def delete_rule(
    request: Request[Any, Any, Any], db: Db, actor: Actor, rule_id: FromPath[int]
) -> Response[Any]:
    rule = await db.get(ContentRule, rule_id)
    if rule is None:
        raise NotFoundException(_("This rule no longer exists."))
    await db.delete(rule)
    record(db, actor, "content_rule.deleted", None, {"slot": rule.slot, "rule_id": rule_id})
    personalizer(request).forget()
    return redirect(request, "/personalization")


ROUTES = [
    overview,
    create_block,
    block_page,
    save_variant,
    archive_block,
    set_claim_safe,
    add_rule,
    delete_rule,
]
