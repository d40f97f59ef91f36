"""Flash sales (秒杀): a pool of units taken out of a SKU's stock, sold inside a time window,
at most a per-member limit to each member.

A pool's units are always in exactly one place: free (`available`), held by an unpaid
reservation (`reserved`), paid (`sold`), or given back to the SKU after the sale ended
(`returned`). The SKU's stock holds the pool's unsold units under the sale's id until they
are sold or returned.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from siyu_kit.aggregate import Aggregate

# domain.md: "flash-sale per-member limit | 1", used when a sale is created without one.
DEFAULT_PER_MEMBER_LIMIT = 1
MAX_PER_MEMBER_LIMIT = 100
MAX_UNITS = 100_000

SCHEDULED = "SCHEDULED"
RUNNING = "RUNNING"
ENDED = "ENDED"

# Why a member cannot take units from a pool.
NOT_STARTED = "NOT_STARTED"
ENDED_REASON = "ENDED"
SOLD_OUT = "SOLD_OUT"
LIMIT_REACHED = "LIMIT_REACHED"

MESSAGES = {
    NOT_STARTED: "the flash sale has not started yet",
    ENDED_REASON: "the flash sale has ended",
    SOLD_OUT: "the flash sale is sold out",
    LIMIT_REACHED: "you have bought as many as this flash sale allows per member",
}


def state(starts_at: datetime, ends_at: datetime, now: datetime) -> str:
    if now < starts_at:
        return SCHEDULED
    return RUNNING if now < ends_at else ENDED


def refusal(starts_at: datetime, ends_at: datetime, now: datetime) -> str:
    """Why a take from a pooled sale failed: outside the window, or (inside it) fewer units
    left than asked for."""
    phase = state(starts_at, ends_at, now)
    if phase == SCHEDULED:
        return NOT_STARTED
    return ENDED_REASON if phase == ENDED else SOLD_OUT


def per_member_limit(requested: int) -> int:
    return requested or DEFAULT_PER_MEMBER_LIMIT


def sort_key(starts_at_ms: int, sale_id: str) -> str:
    """Orders sales soonest first, then by id, as one string that compares like the pair."""
    return f"{starts_at_ms:013d}:{sale_id}"


def starts_bound(starts_at_ms: int) -> str:
    """A bound on sort keys: every sale starting at or after `starts_at_ms` has a key ≥ it,
    every sale starting before has a key < it."""
    return f"{starts_at_ms:013d}"


# What a pool is for. An activity of the order service (group buy, bargain, points mall)
# keeps its units in a pool like a flash sale's; a pool is bought only as its own kind.
FLASH_SALE = "FLASH_SALE"
KINDS = (FLASH_SALE, "GROUP_BUY", "BARGAIN", "POINTS_MALL")


@dataclass(frozen=True)
class StockCatchUp:
    """What the SKU's stock still has to follow of its pool: units sold (they leave on_hand
    and reserved) and units returned (reserved back to available) since the last catch-up."""
    sold: int
    returned: int

    @property
    def nothing(self) -> bool:
        return self.sold == 0 and self.returned == 0


def catch_up(pool_sold: int, pool_returned: int, applied_sold: int, applied_returned: int) -> StockCatchUp:
    """Both counters only grow, so the difference is exactly what the stock has not seen."""
    if pool_sold < applied_sold or pool_returned < applied_returned:
        raise ValueError("the stock is ahead of its pool")
    return StockCatchUp(pool_sold - applied_sold, pool_returned - applied_returned)


# A limit no member reaches: units bought and held again count without being refused.
ANY_LIMIT = 2 ** 31


@dataclass(frozen=True)
class SaleSku:
    """The SKU as it was when the sale was made, for order lines."""
    code: str
    attributes: dict[str, str]
    list_price: int
    currency: str
    product_title: str
    tier_prices: tuple[tuple[str, int], ...] = ()
    weight_g: int = 0  # shipping weight of one unit, for the order's freight


@dataclass(frozen=True)
class PoolHold:
    """Units of the pool held for one reservation (or its late hold)."""
    quantity: int
    member_id: str
    expires_ms: int


@dataclass
class FlashSale(Aggregate):
    """A sale and its pool, as read. The pool's counters move only by the repository's
    conditional updates (a take guarded by available ≥ n and the window, a release or a
    sale guarded by the reservation's hold); this object decides nothing about them."""
    id: str
    merchant_id: str
    idempotency_key: str
    title: str
    product_id: str
    sku_id: str
    sku: SaleSku
    price: int
    currency: str
    units: int
    per_member_limit: int
    starts_at: datetime
    ends_at: datetime
    sort_key: str
    created_at: datetime
    live_session_id: str = ""
    available: int = 0
    reserved: int = 0
    sold: int = 0
    returned: int = 0
    pooled: bool = False
    # Held units by key; sales are read without them (the job reads them as SaleHolds).
    holds: dict[str, PoolHold] = field(default_factory=dict)
    version: int = 1
    # What the pool is for (KINDS); only FLASH_SALE pools are listed as flash sales.
    kind: str = "FLASH_SALE"

    def state(self, now: datetime) -> str:
        return state(self.starts_at, self.ends_at, now)

    def refusal(self, now: datetime) -> str:
        return refusal(self.starts_at, self.ends_at, now)


@dataclass(frozen=True)
class SaleHolds:
    """A sale's units held by reservations, by the key each is held under."""
    id: str
    merchant_id: str
    holds: dict[str, PoolHold]


@dataclass(frozen=True)
class PoolCounters:
    """What the SKU's stock follows of a pool."""
    sale_id: str
    sku_id: str
    product_id: str
    sold: int
    returned: int


@dataclass(frozen=True)
class Applied:
    """The pool's sold and returned units the SKU's stock has followed."""
    sold: int
    returned: int
