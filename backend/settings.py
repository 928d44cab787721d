"""Application settings, read from the environment (prefix-free, 12-factor style).

With no settings at all, Touchflow runs on a SQLite file in the working
directory with an in-process executor: one process for a laptop. Setting
``DATABASE_URL`` (PostgreSQL) and ``REDIS_URL`` turns on the multi-process
deployment described in DESIGN principle 9.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

INSECURE_SECRET_KEY = "change-me"  # noqa: S105 - the known-bad value refused in production


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./touchflow.db"
    redis_url: str | None = None
    secret_key: str | None = None
    secret_key_file: Path = Path(".touchflow-secret")
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

    # Runtime tuning.
    batch_size: int = Field(default=500, ge=1, le=10_000)
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    max_step_attempts: int = Field(default=5, ge=1)
    queue_name: str = "touchflow"

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> Settings:
        if self.environment == "production" and self.secret_key in (None, "", INSECURE_SECRET_KEY):
            raise ValueError(
                "SECRET_KEY must be set to a long random value in production "
                "(the default and generated keys are for development only)."
            )
        return self

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
