"""Flash sales (秒杀): a pool of units taken out of a SKU's stock, sold inside a time window,
at most a per-member limit to each member.

A pool's units are always in exactly one place: free (`available`), held by an unpaid
reservation (`reserved`), paid (`sold`), or given back to the SKU after the sale ended
(`returned`). The SKU's stock holds the pool's unsold units under the sale's id until they
are sold or returned.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
