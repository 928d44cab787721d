"""Shared bits of the messaging endpoints: the link signer and the app's runtime."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import NotFoundException

from backend.i18n import _
from runtime.engine import Runtime
from runtime.messaging.channels import link_signer
from runtime.messaging.links import BadToken, LinkSigner


def signer(request: Request[Any, Any, Any]) -> LinkSigner:
    return link_signer(request.app.state.settings)


def runtime(request: Request[Any, Any, Any]) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def claims(request: Request[Any, Any, Any], purpose: str, token: str) -> dict[str, Any]:
    """The token's claims, or a 404 that tells the person what happened."""
    try:
        return signer(request).loads(purpose, token)
    except BadToken as exc:
        raise NotFoundException(_("This link is not valid.")) from exc
