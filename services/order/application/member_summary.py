"""One member's orders in figures, for the member service's 360° view (an internal call):
how many orders, how many were paid and for how much, what was refunded, and the newest
order. Recharge orders (buying stored value) are not purchases and are left out."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from siyu_kit import context
from siyu_kit.errors import Violations
from siyu_kit.ids import is_id

# States an order reaches only after it was paid (a paid order cancelled because its units
# were gone is refunded in full, so it shows as paid and refunded).
_PAID_STATES = frozenset({"PAID", "SHIPPED", "DELIVERED", "COMPLETED"})


@dataclass(frozen=True)
class OrderFigure:
    """What the summary needs of one order."""
    order_id: str
    state: str
    payable: int
    refunded: int
    created_at: datetime
    paid: bool  # it was paid at some point
    recharge: bool


@dataclass(frozen=True)
class MemberOrderSummary:
    order_count: int = 0
    paid_count: int = 0
    paid_amount: int = 0
    refunded_amount: int = 0
    last: OrderFigure | None = None


class MemberOrderFigures(Protocol):
    async def of_member(self, merchant_id: str, member_id: str) -> list[OrderFigure]:
        """Every order of the member, in one read of a few fields each."""


def summarize(figures: list[OrderFigure]) -> MemberOrderSummary:
    orders = [f for f in figures if not f.recharge]
    paid = [f for f in orders if f.paid or f.state in _PAID_STATES]
    last = max(orders, key=lambda f: (f.created_at, f.order_id), default=None)
    return MemberOrderSummary(order_count=len(orders), paid_count=len(paid),
                              paid_amount=sum(f.payable for f in paid),
                              refunded_amount=sum(f.refunded for f in paid), last=last)


@dataclass
class MemberOrderSummaries:
    figures: MemberOrderFigures

    async def summarize(self, member_id: str) -> MemberOrderSummary:
        ctx = context.current()
        merchant_id = ctx.require_merchant()
        v = Violations()
        v.check(is_id(member_id, "mem"), "member_id", "a mem_ id")
        v.raise_if_any()
        return summarize(await self.figures.of_member(merchant_id, member_id))
