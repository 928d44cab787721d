"""Task routing: who takes the follow-ups of a flow or the contacts of a form.

A flow (or a form) may name a set of users who take turns: each member row
counts what it was given (``assigned``), and the next one goes to the member
with the fewest, so a member added later joins the rotation instead of
catching up with a burst of work.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from runtime.models.base import Base, BigId


class RoutingMember(Base):
    """One user in the round-robin of one flow or one form (exactly one of the two)."""

    __tablename__ = "routing_members"
    __table_args__ = (
        CheckConstraint("(flow_id IS NULL) <> (form_id IS NULL)", name="one_owner"),
        Index("uq_routing_members_flow_user", "flow_id", "user_id", unique=True),
        Index("uq_routing_members_form_user", "form_id", "user_id", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    flow_id: Mapped[int | None] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    # The web app's forms table: a form's new contacts are dealt out the same way.
    form_id: Mapped[int | None] = mapped_column(ForeignKey("forms.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    assigned: Mapped[int] = mapped_column(Integer, default=0)
