"""A sold-out flash sale answered from memory: once this process has seen a pool empty,
a buyer's press is refused SOLD_OUT without a database command, for at most `ttl_s`.

Units come back to a pool only when a reservation is released; a release made by this
process forgets the sale at once, and one made by another replica is seen within `ttl_s`,
so a false SOLD_OUT never lasts longer than that. Nothing is sold from memory: a press
that gets through still takes its units by the pool's one conditional update.
"""
from __future__ import annotations

import time
from typing import Any, Callable

# Short next to an order's expiry (minutes): units that came back are on sale again within it.
SOLD_OUT_MEMORY_S = 1.0


class SoldOut:
    def __init__(self, ttl_s: float = SOLD_OUT_MEMORY_S, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.clock = clock
        self._until: dict[tuple[str, str], float] = {}

    def known(self, merchant_id: str, sale_id: str) -> bool:
        until = self._until.get((merchant_id, sale_id))
        if until is None:
            return False
        if until > self.clock():
            return True
        del self._until[(merchant_id, sale_id)]
        return False

    def remember(self, merchant_id: str, sale_id: str) -> None:
        self._until[(merchant_id, sale_id)] = self.clock() + self.ttl_s

    def forget(self, merchant_id: str, sale_id: str) -> None:
        self._until.pop((merchant_id, sale_id), None)


class ForgetOnRelease:
    """A flash-sale repository whose releases clear the sale's sold-out memory: whatever
    gives units back to a pool (an expired order, a cancelled one, a member over the
    limit, an orphaned hold) goes through `release`."""

    def __init__(self, sales: Any, sold_out: SoldOut):
        self._sales = sales
        self._sold_out = sold_out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sales, name)

    async def release(self, merchant_id: str, sale_id: str, key: str, quantity: int) -> bool:
        released = await self._sales.release(merchant_id, sale_id, key, quantity)
        if released:
            self._sold_out.forget(merchant_id, sale_id)
        return released
