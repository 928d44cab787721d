"""Email decoration at delivery time: tracked links, the open pixel, unsubscribe headers.

Pure functions over the rendered HTML/text: the node renders the content, the
deliverer calls ``decorate`` right before building the MIME message, so every
copy of a message (including a retry) carries the same signed links.

The footer's link texts are marked with ``N_`` (extracted into the app's
catalogue) and shown in the contact's language through the SDK's translation
hook (``nodes.sdk.i18n.translate``), which the app installs: the runtime never
imports the app. Without it (tests of the runtime alone) they stay English.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from nodes.sdk.i18n import N_, translate
from runtime.messaging.links import LinkSigner

__all__ = ["Decorated", "decorate", "footer_text", "track_links"]

UNSUBSCRIBE = N_("Unsubscribe")
PREFERENCES = N_("Email preferences")


def footer_text(message: str, locale: str | None) -> str:
    """``message`` in the contact's ``locale``; English when the contact has none."""
    return translate(message, locale or "en")


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
    locale: str | None = None,
) -> Decorated:
    """The email's final HTML, text and extra headers.

    Marketing mail gets a footer in both parts, in the contact's ``locale``: the
    unsubscribe link and, for a known contact, the preference centre; and the RFC 8058
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
        links = [(footer_text(UNSUBSCRIBE, locale), unsubscribe)]
        if contact_id is not None:
            links.append((footer_text(PREFERENCES, locale), signer.preferences_url(contact_id)))
        lines = "".join(f"{label}: {url}\n" for label, url in links)
        text = f"{text.rstrip()}\n\n--\n{lines}"
        if body is not None:
            anchors = " · ".join(
                f'<a href="{html.escape(url, quote=True)}">{html.escape(label)}</a>'
                for label, url in links
            )
            body = _append_html(body, f'\n<p style="font-size:12px;color:#666">{anchors}</p>')
    if body is not None and tracking:
        pixel = html.escape(signer.open_url(message_id), quote=True)
        body = _append_html(
            body, f'<img src="{pixel}" width="1" height="1" alt="" style="display:none">'
        )
    return Decorated(html=body, text=text, headers=headers)
