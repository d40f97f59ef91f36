"""What the catalog's use cases need from storage and from other services.

Every counter a buyer races for moves by one conditional update the repository makes
(a StockChange on a SKU, a take or release on a flash sale's pool); no port offers a way
to read the counters and write them back. Aggregates with a version (reservations) are
saved by compare-and-set: `save` raises siyu_kit.aggregate.StaleVersion when it lost."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.catalog.domain.flash_sales import Applied, FlashSale, PoolCounters, PoolHold, SaleHolds
from services.catalog.domain.listing import Key, Sort
from services.catalog.domain.reservations import Reservation
from services.catalog.domain.stock import Movement, Stock, StockChange

# What the order service says may become of an order's expired reservation.
COMMIT, RELEASE, KEEP = "COMMIT", "RELEASE", "KEEP"


@dataclass(frozen=True)
class ProductFilter:
    status: str | None = None
    terms: tuple[str, ...] = ()
    category_id: str = ""
    tag: str = ""
    min_price: int | None = None
    max_price: int | None = None


class ProductRepository(Protocol):
    """Products as stored documents (`_id`, `skus`, …); changed by compare-and-set on version."""
    async def by_code(self, merchant_id: str, code: str) -> dict | None: ...
    async def get(self, merchant_id: str, product_id: str) -> dict | None: ...
    async def get_many(self, merchant_id: str, product_ids: list[str]) -> list[dict]: ...
    async def add(self, fields: dict) -> bool: ...
    async def update(self, merchant_id: str, product_id: str, version: int, fields: dict) -> bool: ...
    async def page(self, merchant_id: str, where: ProductFilter, sort: Sort, after: Key | None,
                   limit: int) -> list[dict]: ...


class CategoryRepository(Protocol):
    async def get(self, merchant_id: str, category_id: str) -> dict | None: ...
    async def all_of(self, merchant_id: str) -> list[dict]: ...
    async def add(self, fields: dict) -> bool: ...
    async def name_taken(self, merchant_id: str, parent_id: str, name: str, other_than: str) -> bool: ...
    async def update(self, merchant_id: str, category_id: str, version: int, fields: dict) -> dict | None: ...


class StockRepository(Protocol):
    async def add(self, stock: Stock) -> bool:
        """A SKU's first stock, owing its INITIAL movement; False when it exists."""
    async def get(self, merchant_id: str, sku_id: str) -> Stock | None: ...
    async def get_many(self, merchant_id: str, sku_ids: list[str]) -> list[Stock]: ...
    async def apply(self, merchant_id: str, change: StockChange) -> bool:
        """One conditional update; False when its guard does not hold (nothing moved)."""
    async def apply_and_read(self, merchant_id: str, change: StockChange) -> Stock | None:
        """As `apply`, returning the stock after the change (None when nothing moved)."""
    async def holds(self, merchant_id: str, sku_id: str, key: str) -> bool: ...
    async def owing(self, limit: int) -> list[Stock]:
        """SKUs (of any merchant) whose ledger movements a crash left unstored."""


class LedgerRepository(Protocol):
    async def record(self, merchant_id: str, movement: Movement, at_ms: int | None = None) -> bool:
        """Store the movement (once: its id is deterministic) and clear the stock's entry
        owing it. True when this call stored it."""
    async def movements_of(self, merchant_id: str, sku_id: str) -> list[dict]: ...
    async def add_sales(self, merchant_id: str, product_id: str, quantity: int) -> None: ...


class ReservationRepository(Protocol):
    async def get(self, merchant_id: str, reservation_id: str) -> Reservation | None: ...
    async def add(self, reservation: Reservation) -> bool:
        """Insert with its recorded events; False when the id is taken."""
    async def save(self, reservation: Reservation) -> None:
        """The change and its events, compare-and-set on the version read; raises
        StaleVersion when it lost. The reservation is at its next version afterwards."""
    async def mark_settled(self, reservation: Reservation) -> None: ...
    async def expired(self, now: datetime, limit: int, after_id: str = "") -> list[Reservation]: ...
    async def unsettled(self, before: datetime, limit: int) -> list[Reservation]: ...


class FlashSaleRepository(Protocol):
    async def add(self, sale: FlashSale) -> bool:
        """False when the merchant already used the idempotency key."""
    async def by_key(self, merchant_id: str, key: str) -> FlashSale | None: ...
    async def get(self, merchant_id: str, sale_id: str) -> FlashSale | None: ...
    async def mark_pooled(self, merchant_id: str, sale_id: str) -> None: ...
    async def discard(self, merchant_id: str, sale_id: str) -> None: ...
    async def page(self, merchant_id: str, *, live_session_id: str, after_key: str, ends_after: datetime,
                   limit: int, product_id: str = "") -> list[FlashSale]: ...
    async def unpooled(self, created_before: datetime, limit: int) -> list[FlashSale]: ...
    async def ended_with_units(self, now: datetime, limit: int) -> list[FlashSale]: ...
    async def unsynced(self, limit: int) -> list[tuple[str, str]]:
        """(merchant id, sale id) of sales whose SKU's stock has not caught up."""
    async def holding(self, after_id: str, limit: int) -> list[SaleHolds]:
        """Sales (of any merchant) with held units, in id order."""
    async def settle_ended(self, now: datetime) -> int:
        """Ended sales with no free and no held units: never scanned again; how many."""
    # The pool: each one conditional update.
    async def take(self, merchant_id: str, sale_id: str, key: str, hold: PoolHold, now: datetime,
                   kind: str = "FLASH_SALE") -> FlashSale | None:
        """Free units of a pool of this kind to this key inside the window, once; the sale after, or None."""
    async def take_again(self, merchant_id: str, sale_id: str, key: str, hold: PoolHold) -> bool: ...
    async def hold_of(self, merchant_id: str, sale_id: str, key: str) -> PoolHold | None: ...
    async def release(self, merchant_id: str, sale_id: str, key: str, quantity: int) -> bool: ...
    async def sell(self, merchant_id: str, sale_id: str, key: str, quantity: int) -> bool: ...
    async def give_back(self, merchant_id: str, sale_id: str, quantity: int) -> bool: ...
    # Per-member quotas.
    async def count(self, merchant_id: str, sale_id: str, member_id: str, key: str, quantity: int,
                    limit: int) -> bool:
        """Count against the member's limit, once per key; False over the limit."""
    async def uncount(self, merchant_id: str, sale_id: str, member_id: str, key: str, quantity: int) -> bool: ...
    # The SKU's stock following its pool.
    async def pool_out(self, merchant_id: str, change: StockChange) -> bool:
        """The sale's units out of the SKU's stock (a guarded StockChange), starting to follow it."""
    async def counters(self, merchant_id: str, sale_id: str) -> PoolCounters | None: ...
    async def applied(self, merchant_id: str, sku_id: str, sale_id: str) -> Applied | None: ...
    async def follow(self, merchant_id: str, pool: PoolCounters, applied: Applied) -> list[Movement]:
        """Compare-and-set on what the stock has followed: the movements it now owes.
        Raises StaleVersion when another catch-up went first."""
    async def mark_synced(self, merchant_id: str, sale_id: str, sold: int, returned: int) -> None: ...


class OrderVerdicts(Protocol):
    async def verdict(self, merchant_id: str, order_id: str, reservation_id: str) -> str | None:
        """COMMIT, RELEASE or KEEP; None when the order service cannot say now."""


# ---- the screens' everyday reads: my price ----

@dataclass(frozen=True)
class MemberTier:
    """A member's tier and its discount in basis points (9500 = 5% off)."""
    tier: str
    discount_bp: int


class MemberPricing(Protocol):
    """The member service's tier pricing (GetMemberPricing): one call per page shown."""

    async def pricing(self, member_id: str) -> MemberTier: ...


# ---- staff lists ----

@dataclass(frozen=True)
class SkuFilter:
    """What the stock documents themselves can be asked: the product, and low stock."""
    product_id: str = ""
    max_available: int | None = None  # available ≤ this


@dataclass(frozen=True)
class SaleFilter:
    """Flash sales by product, by start (bounds on the sale's sort key, which begins with its
    start in epoch ms: domain.flash_sales.starts_bound) and by end."""
    product_id: str = ""
    key_from: str = ""  # sort_key ≥ this
    key_before: str = ""  # sort_key < this
    ends_after: datetime | None = None  # ends_at > this
    ends_by: datetime | None = None  # ends_at ≤ this


class StaffSkuPages(Protocol):
    async def page(self, merchant_id: str, where: SkuFilter, after_sku_id: str, descending: bool,
                   limit: int) -> list[Stock]:
        """Stock documents in SKU id order, strictly after `after_sku_id` ("" for the start)."""


class StaffCategoryPages(Protocol):
    async def page(self, merchant_id: str, parent_id: str | None, after_id: str, limit: int) -> list[dict]:
        """Categories by id, oldest first, after `after_id`; `parent_id` None: any parent,
        "": roots only."""


class StaffSalePages(Protocol):
    async def staff_page(self, merchant_id: str, where: SaleFilter, after_key: str, descending: bool,
                         limit: int) -> list[FlashSale]:
        """Pooled sales in sort-key order, strictly after `after_key` ("" for the start)."""
