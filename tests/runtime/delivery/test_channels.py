"""Which channels a runtime gets from settings: the dev mail catcher, SMTP, SMS providers."""

from __future__ import annotations

from typing import Any

import pytest

from backend.settings import Settings
from runtime.clock import FakeClock
from runtime.delivery.email import CaptureDeliverer, EmailDeliverer
from runtime.delivery.sms import ElksProvider, GenericProvider, SmsDeliverer, TwilioProvider
from runtime.messaging.channels import installed_deliverers
from runtime.messaging.gate import GatedDeliverer


def _settings(**values: Any) -> Settings:
    base: dict[str, Any] = {"secret_key": "k" * 40, "database_url": "sqlite+aiosqlite://"}
    return Settings(_env_file=None, **{**base, **values})  # type: ignore[call-arg]


def _inner(deliverer: Any) -> Any:
    assert isinstance(deliverer, GatedDeliverer)
    return deliverer.inner


def test_without_smtp_settings_development_catches_mail_and_production_has_none() -> None:
    dev = installed_deliverers(_settings(), sessions=None, clock=FakeClock())  # type: ignore[arg-type]
    assert type(_inner(dev["email"])) is CaptureDeliverer
    assert "sms" not in dev and set(dev) >= {"task", "webhook"}
    prod = installed_deliverers(
        _settings(environment="production"),
        sessions=None,  # type: ignore[arg-type]
        clock=FakeClock(),
    )
    assert "email" not in prod


def test_smtp_settings_give_a_pooled_deliverer_with_signed_links() -> None:
    settings = _settings(smtp_host="mail.test", smtp_port=2525, smtp_pool_size=3)
    email = _inner(installed_deliverers(settings, None, FakeClock())["email"])  # type: ignore[arg-type]
    assert type(email) is EmailDeliverer
    assert (email.hostname, email.port, email.links.base_url) == (
        "mail.test",
        2525,
        settings.base_url,
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [("twilio", TwilioProvider), ("46elks", ElksProvider), ("generic", GenericProvider)],
)
def test_sms_provider_from_settings(name: str, kind: type) -> None:
    settings = _settings(sms_provider=name, sms_url="http://127.0.0.1:1/send", sms_username="u")
    sms = _inner(installed_deliverers(settings, None, FakeClock())["sms"])  # type: ignore[arg-type]
    assert isinstance(sms, SmsDeliverer) and isinstance(sms.provider, kind)


def test_unreadable_fatigue_settings_are_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="3/7d"):
        _settings(frequency_caps={"email": "three a week"})
    with pytest.raises(ValueError, match="21:00-08:00"):
        _settings(quiet_hours="9pm to 8am")
