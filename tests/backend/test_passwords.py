"""Password hashing: argon2's full cost everywhere but ENVIRONMENT=test, where it is the least."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher, extract_parameters

from backend.app import create_app
from backend.auth import passwords
from tests.backend.web.support import settings_for

DEFAULTS = PasswordHasher()


@pytest.fixture
def restore_test_cost() -> Iterator[None]:
    yield
    passwords.use_environment("test")


@pytest.mark.parametrize("environment", ["development", "production"])
def test_outside_tests_passwords_get_argon2s_full_cost(
    environment: str, restore_test_cost: None
) -> None:
    passwords.use_environment(environment)
    made = extract_parameters(passwords.hash_password("correct horse battery"))
    assert (made.time_cost, made.memory_cost, made.parallelism) == (
        DEFAULTS.time_cost,
        DEFAULTS.memory_cost,
        DEFAULTS.parallelism,
    )


def test_the_test_environment_hashes_with_the_least_work(restore_test_cost: None) -> None:
    passwords.use_environment("test")
    made = extract_parameters(passwords.hash_password("correct horse battery"))
    assert (made.time_cost, made.memory_cost, made.parallelism) == (1, 8, 1)


def test_the_app_picks_the_cost_from_its_settings(restore_test_cost: None) -> None:
    create_app(settings_for("sqlite+aiosqlite:///unused.db", environment="development"))
    assert extract_parameters(passwords.hash_password("x" * 12)).time_cost == DEFAULTS.time_cost
    create_app(settings_for("sqlite+aiosqlite:///unused.db"))
    assert extract_parameters(passwords.hash_password("x" * 12)).time_cost == 1


def test_a_full_cost_hash_still_signs_in_under_test_and_is_rehashed(
    restore_test_cost: None,
) -> None:
    strong = DEFAULTS.hash("correct horse battery")
    passwords.use_environment("test")
    assert passwords.verify_password(strong, "correct horse battery")
    assert not passwords.verify_password(strong, "wrong horse battery")
    assert passwords.needs_rehash(strong)
    assert not passwords.verify_password(None, "correct horse battery")
