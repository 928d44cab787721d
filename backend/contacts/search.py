"""Finding contacts for the Contacts page and the API."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.contacts.filtering import search_condition
from backend.models import Contact
from backend.paging import Page


async def search_contacts(db: AsyncSession, query: str, page: Page) -> tuple[list[Contact], int]:
    """One page of contacts matching ``query`` (email, name or phone), and the total count."""
    stmt = select(Contact).where(Contact.erased_at.is_(None))
    searched = search_condition(db.get_bind().dialect.name, query)
    if searched is not None:
        stmt = stmt.where(searched)
    total = await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = await db.scalars(
        stmt.order_by(Contact.created_at.desc(), Contact.id.desc())
        .limit(page.size)
        .offset(page.offset)
    )
    return list(rows), total
