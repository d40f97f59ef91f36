"""What the use cases need from outside the service."""
from __future__ import annotations

from datetime import datetime
from typing import Protocol

from services.order.adapters.catalog import SkuInfo
from services.order.domain.orders import Order


class Catalog(Protocol):
    async def skus(self, sku_ids: list[str]) -> dict[str, SkuInfo]: ...

    async def reserve(self, reservation_id: str, order_id: str, lines: list[tuple[str, int]],
                      expires_at: datetime) -> None: ...

    async def release(self, reservation_id: str) -> None: ...


class Attributions(Protocol):
    async def check_attribution(self, persona_id: str, content_id: str) -> None: ...


class OrderRepository(Protocol):
    """Orders: read as aggregates, written as a whole change with the events it recorded.
    Every read names the merchant, except the jobs' scans across merchants."""

    async def get(self, merchant_id: str, order_id: str) -> Order | None: ...

    async def of_member(self, merchant_id: str, member_id: str, order_id: str) -> Order | None: ...

    async def by_key(self, merchant_id: str, member_id: str, idempotency_key: str) -> Order | None: ...

    async def page_of_member(self, merchant_id: str, member_id: str, before_id: str, limit: int) -> list[Order]:
        """Newest first; `before_id` is the last id of the previous page."""
        ...

    async def search(self, merchant_id: str, *, state: str, created_from: datetime | None,
                     created_to: datetime | None, channel: str, member_id: str, before_id: str,
                     limit: int) -> list[Order]:
        """Staff search, newest first; empty criteria match every order."""
        ...

    async def expired(self, now: datetime, limit: int) -> list[Order]:
        """Unpaid orders past their expiry, of every merchant, soonest first."""
        ...

    async def due_for_auto_confirm(self, now_ms: int, limit: int) -> list[Order]:
        """Shipped or delivered orders whose auto-confirm time has come, of every merchant."""
        ...

    async def add(self, order: Order) -> bool:
        """Stores a new order with its recorded events; False when an order with its
        idempotency key exists already (nothing is stored)."""
        ...

    async def save(self, order: Order) -> None:
        """Stores the change and the events recorded since it was read, on the version it
        was read at (then bumped on `order`); raises siyu_kit.aggregate.StaleVersion when
        another write came first."""
        ...
