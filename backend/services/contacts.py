"""Finding contacts for the Contacts page and the API."""

from __future__ import annotations

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import Contact
from backend.paging import Page


def _search(query: str) -> Select[Contact]:
    stmt = select(Contact).where(Contact.erased_at.is_(None))
    query = query.strip()
    if query:
        pattern = f"%{query.lower()}%"
        full_name = func.lower(Contact.first_name + " " + Contact.last_name)
        stmt = stmt.where(
            or_(
                func.lower(Contact.email).like(pattern),
                full_name.like(pattern),
                Contact.phone.like(pattern),
            )
        )
    return stmt


async def search_contacts(db: AsyncSession, query: str, page: Page) -> tuple[list[Contact], int]:
    """One page of contacts matching ``query`` (email, name or phone), and the total count."""
    stmt = _search(query)
    total = await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = await db.scalars(
        stmt.order_by(Contact.created_at.desc(), Contact.id.desc())
        .limit(page.size)
        .offset(page.offset)
    )
    return list(rows), total
