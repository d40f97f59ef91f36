"""What a live room hears of the flash sales bound to its session: that a sale started
(once), and the units still free while it runs: at most once a second, only when the
figure changed, and at once when it reaches 0."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

STOCK_EVERY_MS = 1000
STARTED, STOCK_LEFT = "STARTED", "STOCK_LEFT"


@dataclass(frozen=True)
class RoomSale:
    """A running flash sale of a live session, with what its room last heard."""
    id: str
    merchant_id: str
    live_session_id: str
    product_id: str
    sku_id: str
    price: int
    currency: str
    units: int
    available: int
    ends_at: datetime
    announced_ms: int | None = None  # None: the start was not announced yet
    announced_units: int = 0


def next_announcement(sale: RoomSale, now_ms: int) -> str | None:
    if sale.announced_ms is None:
        return STARTED
    if sale.available == sale.announced_units:
        return None
    if sale.available == 0 or now_ms - sale.announced_ms >= STOCK_EVERY_MS:
        return STOCK_LEFT
    return None
