"""In-memory fakes of the order service's money ports: payments, refunds, the ledger,
the payment provider, stock returns and merchant settings.

The repositories keep aggregates in dicts, honour the version compare-and-set the real
ones make (a save on a version that is no longer the stored one raises StaleVersion),
and keep the events saved with each payment so tests can assert them."""
from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from siyu_kit import context
from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import FailedPrecondition
from siyu_kit.ids import new_id

from tests.fakes.store import require_version

from services.order.domain.ledger import Entry
from services.order.domain.orders import Order, OrderLine, OrderState
from services.order.domain.payments import Notification, Payment, PaymentMethod, RefundReceipt
from services.order.domain.refunds import OPEN, Refund, RefundState
from services.order.domain.settings import DEFAULTS, OrderSettings


def _saved(aggregate: Any, stored: dict[str, Any], stale_saves: list[int]) -> list[Any]:
    """The compare-and-set of a save; returns the events it stores."""
    recorded = aggregate.pull_events()
    if stale_saves[0] > 0:
        stale_saves[0] -= 1
        raise StaleVersion(f"{aggregate.id} changed since it was read")
    require_version(stored.get(aggregate.id), aggregate)
    aggregate.version += 1
    aggregate.changed.clear()
    stored[aggregate.id] = copy.deepcopy(aggregate)
    return recorded


@dataclass
class FakePayments:
    """PaymentRepository in memory. `events` lists (payment id, version, domain event) in
    the order they were stored; `stale(n)` makes the next n saves lose their
    compare-and-set (as if another writer came first); `writes` counts adds and saves."""
    payments: dict[str, Payment] = field(default_factory=dict)
    events: list[tuple[str, int, Any]] = field(default_factory=list)
    writes: int = 0
    _stale: list[int] = field(default_factory=lambda: [0])

    def stale(self, saves: int = 1) -> None:
        self._stale[0] = saves

    def stored(self, payment_id: str) -> Payment:
        return self.payments[payment_id]

    def event_types(self, payment_id: str = "") -> list[str]:
        return [type(e).__name__ for pid, _, e in self.events if not payment_id or pid == payment_id]

    def _find(self, **match: Any) -> Payment | None:
        for p in self.payments.values():
            if all(getattr(p, k) == v for k, v in match.items()):
                return copy.deepcopy(p)
        return None

    async def add(self, payment: Payment) -> bool:
        self.writes += 1
        if payment.id in self.payments or self._find(merchant_id=payment.merchant_id, order_id=payment.order_id,
                                                     idempotency_key=payment.idempotency_key):
            return False
        self.payments[payment.id] = copy.deepcopy(payment)
        return True

    async def by_key(self, merchant_id: str, order_id: str, key: str) -> Payment | None:
        return self._find(merchant_id=merchant_id, order_id=order_id, idempotency_key=key)

    async def by_id_any_merchant(self, payment_id: str) -> Payment | None:
        return self._find(id=payment_id)

    async def get(self, merchant_id: str, payment_id: str) -> Payment | None:
        return self._find(id=payment_id, merchant_id=merchant_id)

    async def of_member(self, merchant_id: str, member_id: str, payment_id: str) -> Payment | None:
        return self._find(id=payment_id, merchant_id=merchant_id, member_id=member_id)

    async def of_order(self, merchant_id: str, order_id: str) -> list[Payment]:
        return [copy.deepcopy(p) for p in sorted(self.payments.values(), key=lambda p: p.id)
                if p.merchant_id == merchant_id and p.order_id == order_id]

    async def open_due(self, now_ms: int, limit: int) -> list[Payment]:
        due = sorted((p for p in self.payments.values() if p.open and p.reconcile_ms <= now_ms),
                     key=lambda p: p.reconcile_ms)
        return [copy.deepcopy(p) for p in due[:limit]]

    async def take_for_reconcile(self, payment: Payment, seen_ms: int) -> bool:
        stored = self.payments.get(payment.id)
        if stored is None or not stored.open or stored.reconcile_ms != seen_ms:
            return False
        stored.reconcile_ms = payment.reconcile_ms
        return True

    async def query_due(self, now_ms: int, limit: int) -> list[Payment]:
        due = sorted((p for p in self.payments.values()
                      if 0 < p.query_ms <= now_ms and p.state.value == "PENDING"), key=lambda p: p.query_ms)
        return [copy.deepcopy(p) for p in due[:limit]]

    async def take_for_query(self, payment: Payment, seen_ms: int) -> bool:
        stored = self.payments.get(payment.id)
        if stored is None or stored.query_ms != seen_ms:
            return False
        stored.query_ms = payment.query_ms
        return True

    async def save(self, payment: Payment) -> None:
        self.writes += 1
        recorded = _saved(payment, self.payments, self._stale)
        self.events.extend((payment.id, payment.version, e) for e in recorded)


@dataclass
class FakeRefunds:
    """RefundRepository in memory, with the same compare-and-set and `stale(n)`."""
    refunds: dict[str, Refund] = field(default_factory=dict)
    writes: int = 0
    _stale: list[int] = field(default_factory=lambda: [0])
    _after: list[int] = field(default_factory=lambda: [0])

    def stale(self, saves: int = 1, after: int = 0) -> None:
        """The next `saves` saves lose their compare-and-set, once `after` saves went through."""
        self._stale[0] = saves
        self._after[0] = after

    def stored(self, refund_id: str) -> Refund:
        return self.refunds[refund_id]

    def _select(self, **match: Any) -> list[Refund]:
        return [copy.deepcopy(r) for r in sorted(self.refunds.values(), key=lambda r: r.id)
                if all(getattr(r, k) == v for k, v in match.items())]

    async def add(self, refund: Refund) -> bool:
        self.writes += 1
        if refund.id in self.refunds or self._select(merchant_id=refund.merchant_id, order_id=refund.order_id,
                                                     requested_by=refund.requested_by,
                                                     idempotency_key=refund.idempotency_key):
            return False
        self.refunds[refund.id] = copy.deepcopy(refund)
        return True

    async def order_ids_of_member(self, merchant_id: str, member_id: str) -> set[str]:
        return {r.order_id for r in self._select(merchant_id=merchant_id, member_id=member_id)}

    async def by_key(self, merchant_id: str, order_id: str, requested_by: str, key: str) -> Refund | None:
        found = self._select(merchant_id=merchant_id, order_id=order_id, requested_by=requested_by,
                             idempotency_key=key)
        return found[0] if found else None

    async def get(self, merchant_id: str, refund_id: str) -> Refund | None:
        found = self._select(id=refund_id, merchant_id=merchant_id)
        return found[0] if found else None

    async def of_order(self, merchant_id: str, order_id: str) -> list[Refund]:
        return self._select(merchant_id=merchant_id, order_id=order_id)

    async def count_open(self, merchant_id: str, order_id: str) -> int:
        return sum(r.state in OPEN for r in self._select(merchant_id=merchant_id, order_id=order_id))

    async def page(self, merchant_id: str, order_id: str, state: str, before_id: str, limit: int,
                   provider_status: str = "") -> list[Refund]:
        found = [r for r in reversed(self._select(merchant_id=merchant_id))
                 if (not order_id or r.order_id == order_id) and (not state or r.state.value == state)
                 and (not provider_status or r.provider_status == provider_status)
                 and (not before_id or r.id < before_id)]
        return found[:limit]

    async def provider_query_due(self, now_ms: int, limit: int) -> list[Refund]:
        found = sorted((r for r in self.refunds.values() if r.provider_status == "PROCESSING"
                        and 0 < r.provider_query_ms <= now_ms), key=lambda r: r.provider_query_ms)
        return [copy.deepcopy(r) for r in found[:limit]]

    async def take_for_provider_query(self, refund: Refund, seen_ms: int) -> bool:
        stored = self.refunds.get(refund.id)
        if stored is None or stored.provider_query_ms != seen_ms:
            return False
        stored.provider_query_ms = refund.provider_query_ms
        return True

    async def stalled(self, approved_before_ms: int, limit: int) -> list[Refund]:
        found = sorted((r for r in self.refunds.values() if r.state is RefundState.APPROVED
                        and r.approved_ms is not None and r.approved_ms <= approved_before_ms),
                       key=lambda r: r.approved_ms)
        return [copy.deepcopy(r) for r in found[:limit]]

    async def save(self, refund: Refund) -> None:
        self.writes += 1
        if self._after[0] > 0:
            self._after[0] -= 1
            _saved(refund, self.refunds, [0])
            return
        _saved(refund, self.refunds, self._stale)


@dataclass
class FakeLedger:
    """LedgerRepository in memory: an entry id is stored once."""
    entries: dict[str, tuple[str, Entry, str, datetime]] = field(default_factory=dict)

    async def record(self, merchant_id: str, entry: Entry, currency: str, at: datetime) -> bool:
        if entry.entry_id in self.entries:
            return False
        self.entries[entry.entry_id] = (merchant_id, entry, currency, at)
        return True

    def of_order(self, order_id: str) -> list[Entry]:
        return [e for _, e, _, _ in self.entries.values() if e.order_id == order_id]

    def kinds(self, order_id: str) -> list[str]:
        return sorted(e.kind for e in self.of_order(order_id))


@dataclass
class FakeProvider:
    """PaymentProvider: signs with a fixed word, and keeps the refunds it was asked for
    as (payment id, amount)."""
    method: PaymentMethod = PaymentMethod.SANDBOX
    refunds: list[tuple[str, int]] = field(default_factory=list)
    txns: int = 0
    # refund id → (payment id, receipt); how many refund and find calls came
    by_key: dict[str, tuple[str, RefundReceipt]] = field(default_factory=dict)
    calls: int = 0
    finds: int = 0

    def sign(self, notification: Notification) -> str:
        return f"signed:{notification.payment_id}:{notification.provider_txn_id}:{notification.amount}:" \
               f"{notification.result}"

    def verify(self, notification: Notification) -> bool:
        return notification.signature == self.sign(notification)

    def new_txn_id(self) -> str:
        self.txns += 1
        return f"sbx_txn_{self.txns}"

    async def refund(self, payment: Payment, refund_id: str, amount: int) -> RefundReceipt:
        """Keyed by the refund id as the sandbox is: a repeat answers the first refund; another
        amount under the same id is refused."""
        self.calls += 1
        made = self.by_key.get(refund_id)
        if made is not None:
            if (made[0], made[1].amount) != (payment.id, amount):
                raise FailedPrecondition(f"the key {refund_id} was used with other parameters",
                                         reason="PROVIDER_KEY_REUSED")
            return made[1]
        self.refunds.append((payment.id, amount))
        receipt = RefundReceipt(provider_refund_id=f"sbxrf_{len(self.refunds)}", amount=amount)
        self.by_key[refund_id] = (payment.id, receipt)
        return receipt

    async def find(self, payment: Payment, refund_id: str) -> RefundReceipt | None:
        self.finds += 1
        made = self.by_key.get(refund_id)
        return made[1] if made is not None and made[0] == payment.id else None


@dataclass
class FakeStock:
    """StockReturns: keeps (return id, order id, lines) of every call."""
    returns: list[tuple[str, str, list[tuple[str, int]]]] = field(default_factory=list)

    async def return_stock(self, return_id: str, order_id: str, lines: list[tuple[str, int]]) -> None:
        self.returns.append((return_id, order_id, list(lines)))


@dataclass
class FakeSettings:
    """SettingsRepository (reads): the same settings for every merchant."""
    settings: OrderSettings = DEFAULTS

    async def of_merchant(self, merchant_id: str, fresh: bool = False) -> OrderSettings:
        return self.settings


# ---- builders and callers -----------------------------------------------------------

MERCHANT = new_id("mch")
MEMBER = new_id("mem")
ORD_1, ORD_2 = new_id("ord"), new_id("ord")
OLN_1, OLN_2 = new_id("oln"), new_id("oln")


def an_order(order_id: str = ORD_1, *, lines: tuple[tuple[str, int, int], ...] = ((OLN_1, 2, 1000),),
             shipping_fee: int = 0, created_at: datetime, state: OrderState = OrderState.PENDING_PAYMENT,
             payment_id: str = "", **changes: Any) -> Order:
    """An order of MEMBER at MERCHANT, with (line id, quantity, paid amount) lines."""
    order_lines = [OrderLine(line_id=lid, sku_id=f"sku_{lid}", product_id="prd_1", title="Tea", quantity=q,
                             unit_price=paid // q, line_total=paid, line_amount=paid, paid_amount=paid)
                   for lid, q, paid in lines]
    payable = sum(paid for _, _, paid in lines) + shipping_fee
    order = Order.place(order_id=order_id, merchant_id=MERCHANT, member_id=MEMBER, idempotency_key=f"k-{order_id}",
                        lines=order_lines, currency="CNY", total=payable, payable=payable,
                        reservation_id=f"rsv_{order_id}", created_at=created_at,
                        expires_at=created_at + timedelta(minutes=30), shipping_fee=shipping_fee,
                        attribution={"channel": "H5"})
    order.pull_events()
    order.state, order.payment_id = state, payment_id
    for name, value in changes.items():
        setattr(order, name, value)
    return order


@contextmanager
def acting(*, member: str = "", staff: str = "", roles: tuple[str, ...] = (), merchant: str = MERCHANT):
    """The request context a servicer sets: a member, staff with roles, or nobody."""
    kind, caller = ("member", member) if member else (("staff", staff) if staff else ("", ""))
    token = context.use(context.RequestContext(request_id="req_test", merchant_id=merchant, caller_kind=kind,
                                               caller_id=caller, roles=roles))
    try:
        yield
    finally:
        context.reset(token)
