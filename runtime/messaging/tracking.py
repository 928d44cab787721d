"""Email decoration at delivery time: tracked links, the open pixel, unsubscribe headers.

Pure functions over the rendered HTML/text: the node renders the content, the
deliverer calls ``decorate`` right before building the MIME message, so every
copy of a message (including a retry) carries the same signed links.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from runtime.messaging.links import LinkSigner

__all__ = ["Decorated", "decorate", "track_links"]

# An <a ...href="http(s)://..."> attribute; other schemes (mailto:, tel:) are left alone.
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"'\s>]+)\2""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class Decorated:
    html: str | None
    text: str
    headers: dict[str, str] = field(default_factory=dict)


def track_links(body: str, message_id: int, signer: LinkSigner) -> str:
    """Point every http(s) link of ``body`` at its signed click redirect."""

    def rewrite(match: re.Match[str]) -> str:
        target = html.unescape(match.group(3))
        tracked = html.escape(signer.click_url(message_id, target), quote=True)
        return f"{match.group(1)}{match.group(2)}{tracked}{match.group(2)}"

    return _HREF.sub(rewrite, body)


def _append_html(body: str, fragment: str) -> str:
    found = list(_BODY_END.finditer(body))
    if not found:
        return body + fragment
    at = found[-1].start()
    return body[:at] + fragment + body[at:]


def decorate(
    *,
    message_id: int,
    contact_id: int | None,
    marketing: bool,
    html_body: str | None,
    text_body: str,
    signer: LinkSigner,
    tracking: bool,
    unsubscribe_label: str = "Unsubscribe",
) -> Decorated:
    """The email's final HTML, text and extra headers.

    Marketing mail gets an unsubscribe footer link in both parts and the RFC 8058
    one-click headers (``List-Unsubscribe`` with the signed HTTPS URL and
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``). With ``tracking``,
    HTML links go through the click redirect and an open pixel is appended.
    The footer link is added after link tracking so it is never rewritten.
    """
    headers: dict[str, str] = {}
    text = text_body
    body = html_body
    if body is not None and tracking:
        body = track_links(body, message_id, signer)
    if marketing:
        unsubscribe = signer.unsubscribe_url(message_id, contact_id, "email")
        headers["List-Unsubscribe"] = f"<{unsubscribe}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        text = f"{text.rstrip()}\n\n--\n{unsubscribe_label}: {unsubscribe}\n"
        if body is not None:
            link = html.escape(unsubscribe, quote=True)
            body = _append_html(
                body,
                f'\n<p style="font-size:12px;color:#666"><a href="{link}">'
                f"{html.escape(unsubscribe_label)}</a></p>",
            )
    if body is not None and tracking:
        pixel = html.escape(signer.open_url(message_id), quote=True)
        body = _append_html(
            body, f'<img src="{pixel}" width="1" height="1" alt="" style="display:none">'
        )
    return Decorated(html=body, text=text, headers=headers)
