"""In-memory fakes of the order service's ports, for use-case tests without servers.

Each fake keeps what it stores in dicts, honours the version compare-and-set the real
repository makes (a save on a version that is no longer the stored one raises
StaleVersion), and keeps the events saved with each aggregate so tests can assert them."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from siyu_kit.aggregate import StaleVersion

from services.order.domain.orders import Order, OrderState


@dataclass
class FakeOrders:
    """OrderRepository in memory. `events` lists (order id, version, domain event) in the
    order they were stored; `stale_saves` makes the next saves lose their compare-and-set
    (as if another writer came first), `writes` counts adds and saves."""
    orders: dict[str, Order] = field(default_factory=dict)
    events: list[tuple[str, int, Any]] = field(default_factory=list)
    stale_saves: int = 0
    writes: int = 0
    reads: int = 0

    def _copy(self, order: Order | None) -> Order | None:
        return copy.deepcopy(order) if order is not None else None

    def stored(self, order_id: str) -> Order:
        """The order as stored (a test's look, not a repository read)."""
        return self.orders[order_id]

    def events_of(self, order_id: str) -> list[Any]:
        return [e for oid, _, e in self.events if oid == order_id]

    def event_types(self, order_id: str = "") -> list[str]:
        return [type(e).__name__ for oid, _, e in self.events if not order_id or oid == order_id]

    async def get(self, merchant_id: str, order_id: str) -> Order | None:
        self.reads += 1
        order = self.orders.get(order_id)
        return self._copy(order) if order and order.merchant_id == merchant_id else None

    async def of_member(self, merchant_id: str, member_id: str, order_id: str) -> Order | None:
        self.reads += 1
        order = self.orders.get(order_id)
        ok = order and order.merchant_id == merchant_id and order.member_id == member_id
        return self._copy(order) if ok else None

    async def by_key(self, merchant_id: str, member_id: str, idempotency_key: str) -> Order | None:
        self.reads += 1
        for order in self.orders.values():
            if (order.merchant_id, order.member_id, order.idempotency_key) == (merchant_id, member_id,
                                                                              idempotency_key):
                return self._copy(order)
        return None

    async def page_of_member(self, merchant_id: str, member_id: str, before_id: str, limit: int) -> list[Order]:
        self.reads += 1
        found = sorted((o for o in self.orders.values() if o.merchant_id == merchant_id
                        and o.member_id == member_id and (not before_id or o.id < before_id)),
                       key=lambda o: o.id, reverse=True)
        return [self._copy(o) for o in found[:limit]]

    async def search(self, merchant_id: str, *, state: str, created_from: datetime | None,
                     created_to: datetime | None, channel: str, member_id: str, before_id: str,
                     limit: int) -> list[Order]:
        self.reads += 1

        def matches(o: Order) -> bool:
            return (o.merchant_id == merchant_id and (not state or o.state.value == state)
                    and (created_from is None or o.created_at >= created_from)
                    and (created_to is None or o.created_at < created_to)
                    and (not channel or o.channel == channel) and (not member_id or o.member_id == member_id)
                    and (not before_id or o.id < before_id))
        found = sorted(filter(matches, self.orders.values()), key=lambda o: o.id, reverse=True)
        return [self._copy(o) for o in found[:limit]]

    async def expired(self, now: datetime, limit: int) -> list[Order]:
        self.reads += 1
        found = sorted((o for o in self.orders.values()
                        if o.state is OrderState.PENDING_PAYMENT and o.expires_at <= now), key=lambda o: o.expires_at)
        return [self._copy(o) for o in found[:limit]]

    async def due_for_auto_confirm(self, now_ms: int, limit: int) -> list[Order]:
        self.reads += 1
        found = sorted((o for o in self.orders.values() if o.is_due_for_auto_confirm(now_ms)),
                       key=lambda o: o.auto_confirm_ms)
        return [self._copy(o) for o in found[:limit]]

    async def add(self, order: Order) -> bool:
        self.writes += 1
        if order.id in self.orders or await self.by_key(order.merchant_id, order.member_id, order.idempotency_key):
            order.pull_events()
            return False
        recorded = order.pull_events()
        self.orders[order.id] = self._copy(order)
        self.events.extend((order.id, order.version, e) for e in recorded)
        return True

    async def save(self, order: Order) -> None:
        recorded = order.pull_events()
        if not recorded:
            return
        self.writes += 1
        stored = self.orders.get(order.id)
        if self.stale_saves > 0:
            self.stale_saves -= 1
            raise StaleVersion(f"order {order.id} changed since it was read")
        if stored is None or stored.merchant_id != order.merchant_id or stored.version != order.version:
            raise StaleVersion(f"order {order.id} changed since it was read")
        order.version += 1
        self.orders[order.id] = self._copy(order)
        self.events.extend((order.id, order.version, e) for e in recorded)
