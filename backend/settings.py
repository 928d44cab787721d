"""Application settings, read from the environment (prefix-free, 12-factor style).

With no settings at all, Touchflow runs on a SQLite file in the working
directory with an in-process executor: one process for a laptop. Setting
``DATABASE_URL`` (PostgreSQL) and ``REDIS_URL`` turns on the multi-process
deployment described in docs/architecture.md (decision 9).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.ratelimit import Limit

_CAP = re.compile(r"\d+/\d+[hd]")
_QUIET = re.compile(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d")
INSECURE_SECRET_KEY = "change-me"  # noqa: S105 - the known-bad value refused in production


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")
    _base_url_set: bool = PrivateAttr(default=False)

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./touchflow.db"
    redis_url: str | None = None
    secret_key: str | None = None
    secret_key_file: Path = Path(".touchflow-secret")
    # Unset: links shown on pages use the address each request came in on, and
    # `touchflow serve` puts its own address here for emails and what it prints.
    base_url: str = "http://127.0.0.1:8000"
    default_timezone: str = "Europe/Stockholm"

    # Email. With no SMTP host in development, mail is caught locally (issue 7).
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_use_tls: bool = False
    smtp_start_tls: bool = False
    mail_from: str = "Touchflow <no-reply@localhost>"

    # SMS provider: "generic", "twilio" or "46elks"; credentials depend on the provider.
    sms_provider: str | None = None
    sms_url: str | None = None
    sms_username: str | None = None
    sms_password: str | None = None
    sms_sender: str = "Touchflow"
    sms_default_region: str = "SE"  # how numbers without a country code are read

    # Email delivery and tracking (issue 7).
    smtp_pool_size: int = Field(default=4, ge=1, le=64)
    # Off: links in email are left as written and opens are not tracked.
    email_tracking: bool = True

    # Fatigue (marketing only; transactional messages bypass these). A cap is
    # "<count>/<period>" with the period in hours (h) or days (d); the key is a
    # channel or "all" for every channel together.
    frequency_caps: dict[str, str] = Field(
        default_factory=lambda: {"email": "3/7d", "sms": "2/7d", "all": "5/7d"}
    )
    # "HH:MM-HH:MM" in the contact's time zone during which marketing waits; empty for none.
    quiet_hours: str = "21:00-08:00"
    # Days marketing may go out, Monday=0 ... Sunday=6.
    sending_days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4, 5, 6])
    # Whether a new call-list task is also emailed to its salesperson (a node may override).
    task_email_owner: bool = False
    # What happens to a marketing message a cap or window blocks: "defer" or "drop".
    when_blocked: Literal["defer", "drop"] = "defer"

    # Hosted form posts accepted per form and client address: "<count>/<second|minute|hour|day>".
    form_rate_limit: str = "10/minute"
    # Security (issue 13). Outgoing requests to addresses people type (webhooks, SMS
    # provider URLs) never reach loopback, private, link-local or metadata addresses
    # unless named here: comma-separated host names (".corp.example" for a domain),
    # addresses or CIDR ranges.
    egress_allow: str = ""
    # Addresses or CIDR ranges of the reverse proxies whose X-Forwarded-For /
    # X-Forwarded-Proto are believed; from anyone else those headers are ignored.
    trusted_proxies: str = ""
    # A signed-in session ends after this long without a request, and after this long in any case.
    session_idle_minutes: int = Field(default=12 * 60, ge=5)
    session_max_hours: int = Field(default=14 * 24, ge=1)
    # Web snippet: contacts a browser's identify call may create, per hour, per site key
    # and per client address (a signed identify token is not counted).
    browser_contacts_per_site_key: int = Field(default=200, ge=0)
    browser_contacts_per_address: int = Field(default=5, ge=0)

    # Runtime tuning.
    batch_size: int = Field(default=500, ge=1, le=10_000)
    # How long a worker's claim on journeys and messages hides them from the others; a live
    # worker renews its message claims, so this only bounds how long a crashed one's wait.
    lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    # Webhooks and SMS requests in flight per worker (email: SMTP_POOL_SIZE connections).
    webhook_concurrency: int = Field(default=16, ge=1, le=256)
    sms_concurrency: int = Field(default=4, ge=1, le=64)
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    max_step_attempts: int = Field(default=5, ge=1)

    # Retention: the worker prunes, in batches, run history (steps) of ended journeys, events
    # and the bodies of sent messages older than this many days; 0 keeps them for ever.
    # Journeys, message statuses and what the charts count are kept (docs/database.md).
    retention_step_days: int = Field(default=180, ge=0)
    retention_event_days: int = Field(default=365, ge=0)
    retention_body_days: int = Field(default=90, ge=0)
    retention_batch_size: int = Field(default=1000, ge=1, le=50_000)
    retention_interval_minutes: float = Field(default=60.0, gt=0)
    queue_name: str = "touchflow"

    @field_validator("frequency_caps")
    @classmethod
    def _caps_are_readable(cls, caps: dict[str, str]) -> dict[str, str]:
        for channel, cap in caps.items():
            if not _CAP.fullmatch(cap.strip()):
                raise ValueError(
                    f"frequency cap for {channel!r} must look like '3/7d' or '1/12h', not {cap!r}"
                )
        return caps

    @field_validator("form_rate_limit")
    @classmethod
    def _rate_limit_is_readable(cls, value: str) -> str:
        Limit.parse(value)
        return value.strip()

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours_are_readable(cls, value: str) -> str:
        if value.strip() and not _QUIET.fullmatch(value.strip()):
            raise ValueError(f"quiet hours must look like '21:00-08:00', not {value!r}")
        return value.strip()

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"TRUSTED_PROXIES lists addresses or CIDR ranges such as 10.0.0.5 or "
                    f"10.0.0.0/24, not {item!r}"
                ) from None
        return value

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> Settings:
        if self.environment == "production" and self.secret_key in (None, "", INSECURE_SECRET_KEY):
            raise ValueError(
                "SECRET_KEY must be set to a long random value in production "
                "(the default and generated keys are for development only)."
            )
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._base_url_set = "base_url" in self.model_fields_set

    @property
    def base_url_set(self) -> bool:
        """Whether ``BASE_URL`` was given (else links follow the request's address)."""
        return self._base_url_set

    @property
    def form_limit(self) -> Limit:
        return Limit.parse(self.form_rate_limit)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def resolved_secret_key(self) -> str:
        """Return SECRET_KEY, generating and storing one on first run if it is unset."""
        if self.secret_key:
            return self.secret_key
        path = self.secret_key_file
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_urlsafe(48)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(key)
        return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
