"""Password hashing with argon2id. Hashing is CPU-heavy, so callers run it in a thread."""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_LENGTH = 10

_STRONG = PasswordHasher()
# ENVIRONMENT=test only: the least work argon2 accepts. A test suite signs in hundreds of
# times with throwaway passwords; a quarter of a second each is most of its run time.
_CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

_hasher = _STRONG


@functools.cache
def _dummy_for(hasher: PasswordHasher) -> str:
    """A hash verified against when the email is unknown.

    A wrong email then costs as much time as a wrong password, so response
    timing does not reveal which accounts exist. Made on first use, not at
    import: every process that imports the app (each worker, each CLI call)
    would otherwise pay a full-strength hash it may never need.
    """
    return hasher.hash("touchflow-no-such-user")


def use_environment(environment: str) -> None:
    """Pick the process's hashing cost: argon2's defaults, or the cheap ones for "test"."""
    global _hasher
    _hasher = _CHEAP if environment == "test" else _STRONG


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; always does the full amount of work."""
    try:
        return _hasher.verify(password_hash or _dummy_for(_hasher), password) and bool(
            password_hash
        )
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)
