"""In-memory bargain stores for the bargain use cases' unit tests: the version
compare-and-set, the open-bargain unique key and the conditional help counters."""
from __future__ import annotations

import asyncio
import copy
from datetime import datetime
from typing import Any

from siyu_kit.aggregate import StaleVersion

from services.order.application.ports import ActivityPool
from services.order.domain.bargains import OPEN_STATES, Bargain, BargainActivity, BargainState


class FakeBargainActivities:
    def __init__(self):
        self.rows: dict[str, BargainActivity] = {}
        self.keys: dict[tuple[str, str], str] = {}

    async def get(self, merchant_id: str, activity_id: str) -> BargainActivity | None:
        a = self.rows.get(activity_id)
        return copy.deepcopy(a) if a is not None and a.merchant_id == merchant_id else None

    async def by_key(self, merchant_id: str, key: str) -> BargainActivity | None:
        found = self.keys.get((merchant_id, key))
        return await self.get(merchant_id, found) if found else None

    async def add(self, activity: BargainActivity, key: str) -> bool:
        if (activity.merchant_id, key) in self.keys:
            return False
        self.keys[(activity.merchant_id, key)] = activity.id
        self.rows[activity.id] = copy.deepcopy(activity)
        return True

    async def save(self, activity: BargainActivity) -> None:
        if self.rows[activity.id].version != activity.version:
            raise StaleVersion(activity.id)
        activity.version += 1
        self.rows[activity.id] = copy.deepcopy(activity)

    async def page(self, merchant_id: str, before_id: str, limit: int, open_at: datetime | None = None):
        rows = sorted((a for a in self.rows.values() if a.merchant_id == merchant_id
                       and (not before_id or a.id < before_id)
                       and (open_at is None or a.open_at(open_at))), key=lambda a: a.id, reverse=True)
        return [copy.deepcopy(a) for a in rows[:limit]]


class FakeBargains:
    def __init__(self):
        self.rows: dict[str, Bargain] = {}
        self.events: list[tuple[str, int, Any]] = []
        self.saves = 0
        # Yields to other tasks inside save, between the read and the write, so concurrent
        # helpers really race for the version.
        self.interleave = False

    def event_types(self, bargain_id: str = "") -> list[str]:
        return [type(e).__name__ for b, _, e in self.events if not bargain_id or b == bargain_id]

    async def get(self, merchant_id: str, bargain_id: str) -> Bargain | None:
        b = self.rows.get(bargain_id)
        return copy.deepcopy(b) if b is not None and b.merchant_id == merchant_id else None

    async def open_of(self, merchant_id: str, activity_id: str, member_id: str) -> Bargain | None:
        for b in self.rows.values():
            if (b.merchant_id, b.activity_id, b.member_id) == (merchant_id, activity_id, member_id) \
                    and b.state in OPEN_STATES:
                return copy.deepcopy(b)
        return None

    async def add(self, bargain: Bargain) -> bool:
        if await self.open_of(bargain.merchant_id, bargain.activity_id, bargain.member_id) is not None:
            bargain.pull_events()
            return False
        self.events.extend((bargain.id, bargain.version, e) for e in bargain.pull_events())
        self.rows[bargain.id] = copy.deepcopy(bargain)
        return True

    async def save(self, bargain: Bargain) -> None:
        if self.interleave:
            await asyncio.sleep(0)
        if self.rows[bargain.id].version != bargain.version:
            bargain.pull_events()
            raise StaleVersion(bargain.id)
        self.saves += 1
        bargain.version += 1
        self.events.extend((bargain.id, bargain.version, e) for e in bargain.pull_events())
        self.rows[bargain.id] = copy.deepcopy(bargain)

    async def of_member(self, merchant_id: str, member_id: str, before_id: str, limit: int) -> list[Bargain]:
        rows = sorted((b for b in self.rows.values() if b.merchant_id == merchant_id and b.member_id == member_id
                       and (not before_id or b.id < before_id)), key=lambda b: b.id, reverse=True)
        return [copy.deepcopy(b) for b in rows[:limit]]

    async def due(self, now: datetime, limit: int) -> list[Bargain]:
        return [copy.deepcopy(b) for b in self.rows.values()
                if b.state in (BargainState.ACTIVE, BargainState.SUCCEEDED) and b.expires_at <= now][:limit]


class FakeHelpCounters:
    def __init__(self):
        self.counts: dict[tuple[str, str], int] = {}

    async def take(self, merchant_id: str, key: str, limit: int) -> bool:
        n = self.counts.get((merchant_id, key), 0)
        if n >= limit:
            return False
        self.counts[(merchant_id, key)] = n + 1
        return True

    async def give_back(self, merchant_id: str, key: str) -> None:
        n = self.counts.get((merchant_id, key), 0)
        if n > 0:
            self.counts[(merchant_id, key)] = n - 1


class FakePools:
    def __init__(self, list_price: int = 20_000):
        self.list_price = list_price
        self.pools: dict[str, ActivityPool] = {}
        self.keys: dict[str, str] = {}

    async def create_pool(self, idempotency_key: str, kind: str, sku_id: str, price: int, units: int,
                          per_member_limit: int, starts_at: datetime, ends_at: datetime, title: str = ""):
        if idempotency_key in self.keys:
            return self.pools[self.keys[idempotency_key]]
        pool = ActivityPool(pool_id=f"fls_{len(self.pools):026d}", kind=kind, product_id="prd_1", sku_id=sku_id,
                            title=title or "product", price=price, list_price=self.list_price, total=units,
                            available=units, reserved=0, sold=0, per_member_limit=per_member_limit)
        self.pools[pool.pool_id] = pool
        self.keys[idempotency_key] = pool.pool_id
        return pool

    async def pool(self, pool_id: str) -> ActivityPool | None:
        return self.pools.get(pool_id)


class FakeInvitees:
    def __init__(self):
        self.calls: list[tuple[str, str, str]] = []
        self.fail: Exception | None = None
        self.answer = True

    async def bind(self, inviter_id: str, invitee_id: str, cause: str) -> bool:
        self.calls.append((inviter_id, invitee_id, cause))
        if self.fail is not None:
            raise self.fail
        return self.answer
