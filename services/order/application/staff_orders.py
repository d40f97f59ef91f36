"""What staff read about orders: search, one order with its refunds and payments, and
its payment ledger."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from siyu_kit import context
from siyu_kit.context import CHANNELS
from siyu_kit.errors import NotFound, Violations
from siyu_kit.ids import is_id

from services.order.application.fulfilment import require_order_id
from services.order.application.ports import (LedgerRecord, LedgerRecords, OrderRepository, PaymentRepository,
                                              RefundRepository)
from services.order.domain import ledger
from services.order.domain.orders import Order, OrderState
from services.order.domain.payments import Payment, PaymentState
from services.order.domain.refunds import Refund

DEFAULT_PAGE = 20
MAX_PAGE = 100


@dataclass(frozen=True)
class OrderQuery:
    state: str = ""  # an OrderState name, or "" for any
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive
    channel: str = ""
    member_id: str = ""
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True)
class LedgerView:
    entries: list[LedgerRecord]
    balances: dict[str, int]
    balanced: bool


@dataclass
class StaffOrderUseCases:
    orders: OrderRepository
    payments: PaymentRepository
    refunds: RefundRepository
    entries: LedgerRecords

    async def search(self, q: OrderQuery) -> tuple[list[Order], str]:
        """Orders newest first; a guide's come with the shipping address masked (see
        for_staff)."""
        ctx = context.current()
        ctx.require_staff(*READ_ROLES)
        v = Violations()
        v.check(not q.state or q.state in OrderState.__members__, "state", "not an order state")
        v.check(not q.channel or q.channel in CHANNELS, "channel", "not a channel")
        v.check(not q.member_id or is_id(q.member_id, "mem"), "member_id", "unset, or a mem_ id")
        v.check(not (q.created_from and q.created_to) or q.created_from < q.created_to, "created_to",
                "must be after created_from")
        v.check(0 <= q.page_size <= MAX_PAGE, "page_size", f"1..{MAX_PAGE}")
        v.check(not q.page_token or is_id(q.page_token, "ord"), "page_token", "not a token from this search")
        v.raise_if_any()
        size = q.page_size or DEFAULT_PAGE
        orders = await self.orders.search(ctx.merchant_id, state=q.state, created_from=q.created_from,
                                          created_to=q.created_to, channel=q.channel, member_id=q.member_id,
                                          before_id=q.page_token, limit=size + 1)
        more = len(orders) > size
        orders = orders[:size]
        return [for_staff(o, ctx.roles) for o in orders], (orders[-1].id if more else "")

    async def get(self, order_id: str) -> tuple[Order, list[Refund], list[Payment]]:
        """The order, its refunds and its payments; a guide's with the shipping address
        masked (see for_staff)."""
        ctx = context.current()
        ctx.require_staff(*READ_ROLES)
        order = for_staff(await self._order(ctx.merchant_id, order_id), ctx.roles)
        refunds = await self.refunds.of_order(ctx.merchant_id, order_id)
        payments = await self.payments.of_order(ctx.merchant_id, order_id)
        return order, refunds, payments

    async def ledger(self, order_id: str) -> LedgerView:
        ctx = context.current()
        ctx.require_staff("FINANCE")
        order = await self._order(ctx.merchant_id, order_id)
        records = await self.entries.of_order(ctx.merchant_id, order_id)
        entries = [r.entry for r in records]
        paid = order.payable if order.payment_id else 0
        # Money the provider took must be in the ledger, whatever became of it since.
        payments = await self.payments.of_order(ctx.merchant_id, order_id)
        captured = [p.id for p in payments if p.amount > 0 and p.state is not PaymentState.PENDING]
        return LedgerView(entries=records, balances=ledger.balances(entries),
                          balanced=ledger.is_balanced(entries, order_id, paid, order.refunded_amount, captured))

    async def _order(self, merchant_id: str, order_id: str) -> Order:
        require_order_id(order_id)
        order = await self.orders.get(merchant_id, order_id)
        if order is None:
            raise NotFound(f"order {order_id} not found")
        return order


# Staff who read orders (search and one order). The owner reads everything.
READ_ROLES = ("OPERATOR", "FINANCE", "GUIDE")
# Who sees a shipping address's full phone: those who ship the order. Everyone else
# (finance, a guide, the member) sees it masked.
FULL_PHONE_ROLES = frozenset({"OWNER", "OPERATOR"})
# Who sees the recipient's name and the detail address: those who ship the order and
# finance. A guide (who only sells) sees the address masked: 张*, 138****8000, the
# regions without the detail.
FULL_ADDRESS_ROLES = FULL_PHONE_ROLES | {"FINANCE"}


def sees_full_phone(roles) -> bool:
    return bool(FULL_PHONE_ROLES & set(roles))


def sees_full_address(roles) -> bool:
    return bool(FULL_ADDRESS_ROLES & set(roles))


def for_staff(order: Order, roles) -> Order:
    """The order as staff with `roles` may read it: a copy with the shipping address
    masked for a guide, else the order itself."""
    if order.shipping_address is None or sees_full_address(roles):
        return order
    return replace(order, shipping_address=order.shipping_address.masked())
