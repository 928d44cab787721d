"""The "sms" channel: a narrow provider protocol and three HTTP providers.

Payload: ``nodes.sdk.SmsPayload`` (``to``, ``text``, ``from``). Numbers are
normalised to E.164 before sending; the provider is told where to post delivery
reports (a signed URL per message, ``/hooks/sms/status/<token>``), which become
``sms.delivered`` / ``sms.failed`` events. Built-in providers:

- ``twilio``: ``POST /2010-04-01/Accounts/<sid>/Messages.json`` (form, basic auth);
- ``46elks``: ``POST /a1/sms`` (form, basic auth);
- ``generic``: POST JSON ``{to, text, sender, status_url, idempotency_key}`` to a URL
  template whose ``{to}``, ``{text}`` and ``{sender}`` are filled in (URL-encoded).

Other providers are plugins (``touchflow.sms_providers`` entry points, see
``runtime.delivery.plugins``): a class like these with a ``from_settings``.

HTTP 4xx (except 408/425/429) is permanent; 5xx, timeouts and connection
errors are retried by the outbox.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import quote

import httpx

from nodes.sdk.payloads import SmsPayload
from runtime.delivery import Delivered, HardBounce, Outgoing, PermanentError, read_payload
from runtime.delivery.errors import http_status_is_permanent
from runtime.egress import EgressClient, EgressRefused
from runtime.messaging.phone import BadNumber, to_e164

if TYPE_CHECKING:
    from runtime.settings import RuntimeSettings

__all__ = [
    "PROVIDERS",
    "ElksProvider",
    "GenericProvider",
    "SmsDeliverer",
    "SmsProvider",
    "SmsReport",
    "TwilioProvider",
]


@dataclass(frozen=True)
class SmsReport:
    """A provider's delivery report or inbound message, in its common shape."""

    provider_message_id: str | None = None
    status: str | None = None  # "delivered", "failed" or the provider's word in between
    sender: str | None = None
    text: str | None = None


class SmsProvider(Protocol):
    """How one SMS API sends a message and phrases its callbacks."""

    name: ClassVar[str]

    def request(
        self, *, to: str, sender: str, text: str, status_url: str | None, key: str
    ) -> httpx.Request:
        """The HTTP request that sends one SMS."""
        ...

    def provider_id(self, response: httpx.Response) -> str | None:
        """The provider's id for the message, from its answer."""
        ...

    @staticmethod
    def parse_callback(form: Mapping[str, str]) -> SmsReport:
        """A delivery report or inbound message posted by the provider."""
        ...


def _basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _final(status: str | None) -> str | None:
    if status in ("delivered",):
        return "delivered"
    if status in ("failed", "undelivered"):
        return "failed"
    return status


def _json_id(response: httpx.Response, key: str) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    value = data.get(key) if isinstance(data, dict) else None
    return str(value) if value is not None else None


class TwilioProvider:
    name: ClassVar[str] = "twilio"

    @classmethod
    def from_settings(cls, settings: RuntimeSettings) -> TwilioProvider | None:
        user, password = settings.sms_username or "", settings.sms_password or ""
        return cls(user, password, base_url=settings.sms_url)

    def __init__(self, account_sid: str, auth_token: str, base_url: str | None = None) -> None:
        self.account_sid = account_sid
        self.auth = (account_sid, auth_token)
        self.base_url = (base_url or "https://api.twilio.com").rstrip("/")

    def request(
        self, *, to: str, sender: str, text: str, status_url: str | None, key: str
    ) -> httpx.Request:
        form = {"To": to, "From": sender, "Body": text}
        if status_url:
            form["StatusCallback"] = status_url
        return httpx.Request(
            "POST",
            f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json",
            data=form,
            headers={"I-Twilio-Idempotency-Token": key[:64], **_basic(*self.auth)},
        )

    def provider_id(self, response: httpx.Response) -> str | None:
        return _json_id(response, "sid")

    @staticmethod
    def parse_callback(form: Mapping[str, str]) -> SmsReport:
        return SmsReport(
            provider_message_id=form.get("MessageSid") or form.get("SmsSid"),
            status=_final(form.get("MessageStatus")),
            sender=form.get("From"),
            text=form.get("Body"),
        )


class ElksProvider:
    name: ClassVar[str] = "46elks"

    @classmethod
    def from_settings(cls, settings: RuntimeSettings) -> ElksProvider | None:
        user, password = settings.sms_username or "", settings.sms_password or ""
        return cls(user, password, base_url=settings.sms_url)

    def __init__(self, username: str, password: str, base_url: str | None = None) -> None:
        self.auth = (username, password)
        self.base_url = (base_url or "https://api.46elks.com").rstrip("/")

    def request(
        self, *, to: str, sender: str, text: str, status_url: str | None, key: str
    ) -> httpx.Request:
        form = {"from": sender, "to": to, "message": text}
        if status_url:
            form["whendelivered"] = status_url
        return httpx.Request(
            "POST",
            f"{self.base_url}/a1/sms",
            data=form,
            headers=_basic(*self.auth),
        )

    def provider_id(self, response: httpx.Response) -> str | None:
        return _json_id(response, "id")

    @staticmethod
    def parse_callback(form: Mapping[str, str]) -> SmsReport:
        return SmsReport(
            provider_message_id=form.get("id"),
            status=_final(form.get("status")),
            sender=form.get("from"),
            text=form.get("message"),
        )


class GenericProvider:
    name: ClassVar[str] = "generic"

    @classmethod
    def from_settings(cls, settings: RuntimeSettings) -> GenericProvider | None:
        return cls(settings.sms_url, token=settings.sms_password) if settings.sms_url else None

    def __init__(self, url_template: str, token: str | None = None) -> None:
        self.url_template = url_template
        self.token = token

    def request(
        self, *, to: str, sender: str, text: str, status_url: str | None, key: str
    ) -> httpx.Request:
        url = self.url_template.format_map(
            {"to": quote(to, safe=""), "text": quote(text, safe=""), "sender": quote(sender)}
        )
        body = {
            "to": to,
            "text": text,
            "sender": sender,
            "status_url": status_url,
            "idempotency_key": key,
        }
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return httpx.Request("POST", url, content=json.dumps(body).encode(), headers=headers)

    def provider_id(self, response: httpx.Response) -> str | None:
        return _json_id(response, "id")

    @staticmethod
    def parse_callback(form: Mapping[str, str]) -> SmsReport:
        return SmsReport(
            provider_message_id=form.get("id"),
            status=_final(form.get("status")),
            sender=form.get("from"),
            text=form.get("text"),
        )


PROVIDERS: dict[str, type[Any]] = {
    TwilioProvider.name: TwilioProvider,
    ElksProvider.name: ElksProvider,
    GenericProvider.name: GenericProvider,
}


def _snippet(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {response.text[:300]}"


class SmsDeliverer:
    """Sends SMS through one provider; ``status_url(message_id)`` makes the report URL."""

    def __init__(
        self,
        provider: SmsProvider,
        *,
        sender: str,
        region: str = "SE",
        status_url: Callable[[int], str] | None = None,
        client: httpx.AsyncClient | None = None,
        concurrency: int = 4,
    ) -> None:
        self.provider = provider
        self.concurrency = concurrency
        self.sender = sender
        self.region = region
        self.status_url = status_url
        # The guarded client (runtime.egress): the provider URL is a setting a person typed.
        self.client = client or EgressClient()

    async def deliver(self, message: Outgoing) -> Delivered:
        payload = read_payload(SmsPayload, message)
        text = payload.text
        if not text.strip():
            raise PermanentError("the SMS has no text")
        raw = payload.to
        try:
            to = to_e164(raw, self.region)
        except BadNumber as exc:
            raise HardBounce(str(exc), raw) from exc
        request = self.provider.request(
            to=to,
            sender=payload.sender or self.sender,
            text=text,
            status_url=self.status_url(message.id) if self.status_url else None,
            key=message.idempotency_key,
        )
        try:
            response = await self.client.send(request)
        except EgressRefused as exc:
            raise PermanentError(str(exc)) from exc
        if response.is_success:
            return Delivered(
                provider_message_id=self.provider.provider_id(response), detail=_snippet(response)
            )
        if http_status_is_permanent(response.status_code):
            raise PermanentError(f"the SMS provider refused the message: {_snippet(response)}")
        raise RuntimeError(f"the SMS provider failed: {_snippet(response)}")

    async def aclose(self) -> None:
        """Close the HTTP client (on shutdown)."""
        await self.client.aclose()
