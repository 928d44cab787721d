"""Shared bits of the messaging endpoints: the link signer and the app's runtime."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import NotFoundException
from sqlalchemy.ext.asyncio import AsyncSession

from backend.i18n import _
from runtime import events
from runtime.engine import Runtime
from runtime.messaging.channels import link_signer
from runtime.messaging.links import BadToken, LinkSigner


def signer(request: Request[Any, Any, Any]) -> LinkSigner:
    return link_signer(request.app.state.settings)


def runtime(request: Request[Any, Any, Any]) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def record_event(
    request: Request[Any, Any, Any], db: AsyncSession, type: str, **kwargs: Any
) -> events.IngestResult:
    """Store an event and let flows react to it in the request's own transaction.

    The request's other writes and this event commit together or not at all,
    and the dedupe key the caller derives from the request makes a retry act
    once. Keyword arguments are those of ``runtime.events.ingest``.
    """
    rt = runtime(request)
    return await events.ingest(
        db, rt.versions, type=type, now=rt.clock.now(), doorbell=rt.doorbell, **kwargs
    )


def claims(request: Request[Any, Any, Any], purpose: str, token: str) -> dict[str, Any]:
    """The token's claims, or a 404 that tells the person what happened."""
    try:
        return signer(request).loads(purpose, token)
    except BadToken as exc:
        raise NotFoundException(_("This link is not valid.")) from exc
