"""Creating users and changing their roles (admin pages, CLI and demo share this)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.auth.middleware import end_sessions
from backend.auth.passwords import MIN_PASSWORD_LENGTH, hash_password_async
from backend.i18n import _
from backend.models import Role, User
from backend.validation import clean_email


class UserError(ValueError):
    """A user cannot be created or changed as asked; the message is for people."""


async def find_user(db: AsyncSession, email: str) -> User | None:
    return await db.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(
            _("The password must be at least %(num)d characters long.")
            % {"num": MIN_PASSWORD_LENGTH}
        )


async def create_user(
    db: AsyncSession, email: str, password: str, role: Role, name: str = ""
) -> User:
    """Add a user; raises UserError for a bad email, a short password or a taken email."""
    cleaned = clean_email(email)
    if cleaned is None:
        raise UserError(_("Enter a valid email address."))
    check_password(password)
    if await find_user(db, cleaned) is not None:
        raise UserError(_("A user with this email already exists."))
    user = User(
        email=cleaned,
        name=name.strip(),
        password_hash=await hash_password_async(password),
        role=role.value,
        is_active=True,
    )
    db.add(user)
    await db.flush()
    return user


async def set_password(user: User, password: str) -> None:
    """Change the password; every session the user has ends (the caller commits)."""
    check_password(password)
    user.password_hash = await hash_password_async(password)
    end_sessions(user)
