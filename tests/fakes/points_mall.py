"""Points mall coupon items, member counters and redemptions in memory, with the guards
the MongoDB store sends (`left >= 1`, `used < limit`, the version compare-and-set), and a
world that wires them to the fake points ledger and the fake coupons of one merchant."""
from __future__ import annotations

import copy
from datetime import datetime

from services.member.application.points_mall import PointsMallCoupons
from services.member.domain.points_mall import CouponItem, ItemState, Redemption, RedemptionState
from siyu_kit.aggregate import StaleVersion
from tests.fakes.coupon_world import CouponWorld
from tests.fakes.points_world import points_world


class FakeCouponItems:
    def __init__(self):
        self.items: dict[str, CouponItem] = {}

    async def add(self, item: CouponItem) -> CouponItem:
        for stored in self.items.values():
            if (stored.merchant_id, stored.idempotency_key) == (item.merchant_id, item.idempotency_key):
                return copy.deepcopy(stored)
        self.items[item.id] = copy.deepcopy(item)
        return copy.deepcopy(item)

    async def get(self, merchant_id: str, item_id: str) -> CouponItem | None:
        item = self.items.get(item_id)
        return copy.deepcopy(item) if item and item.merchant_id == merchant_id else None

    async def save(self, item: CouponItem, add_units: int = 0) -> None:
        stored = self.items.get(item.id)
        if stored is None or stored.version != item.version or stored.merchant_id != item.merchant_id:
            raise StaleVersion("changed")
        stored.points_price, stored.total_units, stored.state = item.points_price, item.total_units, item.state
        stored.left += add_units
        stored.version += 1

    async def page(self, merchant_id: str, after: str, limit: int, open_at: datetime | None) -> list[CouponItem]:
        found = sorted((i for i in self.items.values() if i.merchant_id == merchant_id and (not after or i.id < after)
                        and (open_at is None or i.open_at(open_at))), key=lambda i: i.id, reverse=True)
        return [copy.deepcopy(i) for i in found[:limit]]

    async def take_unit(self, merchant_id: str, item_id: str) -> bool:
        item = self.items.get(item_id)
        if item is None or item.merchant_id != merchant_id or item.state is not ItemState.ACTIVE or item.left < 1:
            return False
        item.left -= 1
        return True

    async def give_back_unit(self, merchant_id: str, item_id: str) -> None:
        self.items[item_id].left += 1


class FakeMemberCounters:
    def __init__(self):
        self.used: dict[tuple[str, str], int] = {}

    async def take_place(self, merchant_id: str, item_id: str, member_id: str, limit: int) -> bool:
        if self.used.get((item_id, member_id), 0) >= limit:
            return False
        self.used[(item_id, member_id)] = self.used.get((item_id, member_id), 0) + 1
        return True

    async def give_back_place(self, merchant_id: str, item_id: str, member_id: str) -> None:
        if self.used.get((item_id, member_id), 0) >= 1:
            self.used[(item_id, member_id)] -= 1


class FakeRedemptions:
    def __init__(self):
        self.rows: dict[str, Redemption] = {}
        self.owes_back: dict[str, int] = {}
        self.leases: dict[str, datetime] = {}

    async def add(self, redemption: Redemption) -> Redemption:
        for r in self.rows.values():
            if (r.merchant_id, r.member_id, r.idempotency_key) == (redemption.merchant_id, redemption.member_id,
                                                                   redemption.idempotency_key):
                return copy.deepcopy(r)
        self.rows[redemption.id] = copy.deepcopy(redemption)
        self.owes_back[redemption.id] = 0
        return copy.deepcopy(redemption)

    async def get(self, merchant_id: str, redemption_id: str) -> Redemption | None:
        r = self.rows.get(redemption_id)
        return copy.deepcopy(r) if r and r.merchant_id == merchant_id else None

    async def by_key(self, merchant_id: str, member_id: str, key: str) -> Redemption | None:
        for r in self.rows.values():
            if (r.merchant_id, r.member_id, r.idempotency_key) == (merchant_id, member_id, key):
                return copy.deepcopy(r)
        return None

    async def save(self, redemption: Redemption, owes_back: bool = False) -> None:
        stored = self.rows.get(redemption.id)
        if stored is None or stored.version != redemption.version:
            raise StaleVersion("changed")
        self.rows[redemption.id] = copy.deepcopy(redemption)
        self.rows[redemption.id].version = stored.version + 1
        if owes_back:
            self.owes_back[redemption.id] = 1

    async def gave_back(self, merchant_id: str, redemption_id: str) -> bool:
        if self.owes_back.get(redemption_id) != 1:
            return False
        self.owes_back[redemption_id] = 0
        return True

    async def claim_unfinished(self, made_before: datetime, lease_until: datetime,
                               now: datetime) -> Redemption | None:
        for r in sorted(self.rows.values(), key=lambda r: r.id):
            due = r.state in (RedemptionState.TAKEN, RedemptionState.POINTS_SPENT) or self.owes_back.get(r.id) == 1
            if due and r.created_at < made_before and self.leases.get(r.id, datetime.min.replace(
                    tzinfo=now.tzinfo)) < now:
                self.leases[r.id] = lease_until
                return copy.deepcopy(r)
        return None

    async def page_of_member(self, merchant_id: str, member_id: str, after: str, limit: int) -> list[Redemption]:
        found = sorted((r for r in self.rows.values() if (r.merchant_id, r.member_id) == (merchant_id, member_id)
                        and (not after or r.id < after)), key=lambda r: r.id, reverse=True)
        return [copy.deepcopy(r) for r in found[:limit]]


async def points_mall_world():
    """One merchant with a member (points_world) and its coupons (coupon_world's use
    cases) on one clock, and the points mall over the fakes."""
    w = await points_world()
    w.coupon = CouponWorld()
    w.coupon.clock = w.clock
    w.coupon.__post_init__()
    w.items, w.counters, w.redemptions = FakeCouponItems(), FakeMemberCounters(), FakeRedemptions()
    w.mall = PointsMallCoupons(w.items, w.counters, w.redemptions, w.economy, w.coupon.cases, clock=w.clock)
    return w
