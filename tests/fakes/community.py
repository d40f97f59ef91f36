"""Community group buy ports in memory (services/order/application/community_ports.py):
the same compare-and-set and conditional counters as the MongoDB stores."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Sequence

from siyu_kit.aggregate import StaleVersion

from services.order.application.community_ports import Batch
from services.order.domain.community import Campaign, CommunityLeader, CommunitySettings
from services.order.domain.orders import Order

SHOWN = ("PAID", "SHIPPED", "DELIVERED", "COMPLETED")


@dataclass
class FakeLeaders:
    leaders: dict[str, CommunityLeader] = field(default_factory=dict)

    async def get(self, merchant_id: str, leader_id: str) -> CommunityLeader | None:
        l = self.leaders.get(leader_id)
        return copy.deepcopy(l) if l and l.merchant_id == merchant_id else None

    async def of_member(self, merchant_id: str, member_id: str) -> CommunityLeader | None:
        found = [l for l in self.leaders.values() if l.merchant_id == merchant_id and l.member_id == member_id]
        return copy.deepcopy(found[0]) if found else None

    async def add(self, leader: CommunityLeader) -> bool:
        if await self.of_member(leader.merchant_id, leader.member_id):
            return False
        self.leaders[leader.id] = copy.deepcopy(leader)
        return True

    async def save(self, leader: CommunityLeader) -> None:
        stored = self.leaders[leader.id]
        if stored.version != leader.version:
            raise StaleVersion("leader changed")
        leader.version += 1
        self.leaders[leader.id] = copy.deepcopy(leader)

    async def page(self, merchant_id: str, state: str, after_id: str, limit: int) -> list[CommunityLeader]:
        rows = sorted((l for l in self.leaders.values() if l.merchant_id == merchant_id
                       and (not state or l.state.value == state) and l.id > after_id), key=lambda l: l.id)
        return copy.deepcopy(rows[:limit])


@dataclass
class FakeCampaigns:
    campaigns: dict[str, Campaign] = field(default_factory=dict)
    events: list[tuple[str, object]] = field(default_factory=list)
    # The next saves lose their compare-and-set, as if another replica came first.
    stale_saves: int = 0

    async def get(self, merchant_id: str, campaign_id: str) -> Campaign | None:
        c = self.campaigns.get(campaign_id)
        return copy.deepcopy(c) if c and c.merchant_id == merchant_id else None

    async def by_key(self, merchant_id: str, idempotency_key: str) -> Campaign | None:
        found = [c for c in self.campaigns.values()
                 if c.merchant_id == merchant_id and c.idempotency_key == idempotency_key]
        return copy.deepcopy(found[0]) if found else None

    async def add(self, campaign: Campaign) -> bool:
        if await self.by_key(campaign.merchant_id, campaign.idempotency_key):
            return False
        self.campaigns[campaign.id] = copy.deepcopy(campaign)
        return True

    async def save(self, campaign: Campaign) -> None:
        if self.stale_saves:
            self.stale_saves -= 1
            raise StaleVersion("another writer")
        if self.campaigns[campaign.id].version != campaign.version:
            raise StaleVersion("campaign changed")
        self.events.extend((campaign.id, e) for e in campaign.pull_events())
        campaign.version += 1
        self.campaigns[campaign.id] = copy.deepcopy(campaign)

    async def open_ones(self, merchant_id: str, now: datetime, limit: int) -> list[Campaign]:
        rows = sorted((c for c in self.campaigns.values() if c.merchant_id == merchant_id and c.cut_off_at > now),
                      key=lambda c: c.cut_off_at)
        return copy.deepcopy(rows[:limit])

    async def due_to_close(self, now: datetime, limit: int) -> list[Campaign]:
        rows = [c for c in self.campaigns.values() if c.closed_at is None and c.cut_off_at <= now]
        return copy.deepcopy(rows[:limit])


@dataclass
class FakeCommunitySettings:
    by_merchant: dict[str, CommunitySettings] = field(default_factory=dict)

    async def of_merchant(self, merchant_id: str) -> CommunitySettings:
        return self.by_merchant.get(merchant_id, CommunitySettings())

    async def put(self, merchant_id: str, settings: CommunitySettings) -> None:
        self.by_merchant[merchant_id] = settings


@dataclass
class FakeCommunityOrders:
    """Reads the orders of a FakeOrders by their activity."""
    orders: object

    def _all(self, merchant_id: str, campaign_id: str) -> list[Order]:
        return [copy.deepcopy(o) for o in sorted(self.orders.orders.values(), key=lambda o: o.id)
                if o.merchant_id == merchant_id and o.activity is not None and o.activity.activity_id == campaign_id]

    async def of_batch(self, merchant_id: str, campaign_id: str, leader_id: str,
                       states: Sequence[str] = ()) -> list[Order]:
        return [o for o in self._all(merchant_id, campaign_id)
                if o.activity.leader_id == leader_id and o.state.value in (states or SHOWN)]

    async def of_campaign(self, merchant_id: str, campaign_id: str, states: Sequence[str]) -> list[Order]:
        return [o for o in self._all(merchant_id, campaign_id) if o.state.value in states]

    async def by_code(self, merchant_id: str, campaign_id: str, leader_id: str, pickup_code: str) -> Order | None:
        found = [o for o in self._all(merchant_id, campaign_id)
                 if o.activity.leader_id == leader_id and o.activity.pickup_code == pickup_code]
        return found[0] if found else None


@dataclass
class FakePickupCodes:
    claimed: dict[tuple[str, str, str, str], str] = field(default_factory=dict)

    async def claim(self, merchant_id: str, campaign_id: str, leader_id: str, code: str, order_id: str) -> bool:
        key = (merchant_id, campaign_id, leader_id, code)
        if key in self.claimed:
            return False
        self.claimed[key] = order_id
        return True


@dataclass
class FakeMemberLimits:
    units: dict[tuple[str, str, str, str], int] = field(default_factory=dict)

    async def take(self, merchant_id: str, campaign_id: str, member_id: str, sku_id: str, units: int,
                   limit: int) -> bool:
        key = (merchant_id, campaign_id, member_id, sku_id)
        if self.units.get(key, 0) + units > limit:
            return False
        self.units[key] = self.units.get(key, 0) + units
        return True

    async def give_back(self, merchant_id: str, campaign_id: str, member_id: str, sku_id: str, units: int) -> None:
        key = (merchant_id, campaign_id, member_id, sku_id)
        self.units[key] = max(0, self.units.get(key, 0) - units)


@dataclass
class FakeBatches:
    batches: dict[tuple[str, str, str], Batch] = field(default_factory=dict)
    events: list[Batch] = field(default_factory=list)

    async def get(self, merchant_id: str, campaign_id: str, leader_id: str) -> Batch | None:
        return self.batches.get((merchant_id, campaign_id, leader_id))

    async def delivered(self, batch: Batch) -> None:
        key = (batch.merchant_id, batch.campaign_id, batch.leader_id)
        was = self.batches.get(key)
        ids = tuple(dict.fromkeys((was.order_ids if was else ()) + batch.order_ids))
        self.batches[key] = replace(batch, order_ids=ids, uncollected_done=False,
                                    version=(was.version + 1) if was else 1)
        self.events.append(batch)

    async def open_for_uncollected(self, limit: int) -> list[Batch]:
        return [b for b in self.batches.values() if not b.uncollected_done][:limit]

    async def uncollected_done(self, batch: Batch) -> bool:
        key = (batch.merchant_id, batch.campaign_id, batch.leader_id)
        now = self.batches[key]
        if now.uncollected_done or now.version != batch.version:
            return False
        self.batches[key] = replace(now, uncollected_done=True, version=now.version + 1)
        return True


@dataclass
class FakePickups:
    recorded: dict[str, str] = field(default_factory=dict)

    async def record(self, merchant_id: str, order: Order, confirmed_by: str, at: datetime) -> None:
        self.recorded.setdefault(order.id, confirmed_by)


@dataclass
class FakeFullRefunds:
    """RefundUseCases.create as the uncollected rule uses it: one refund per order and key,
    which the order takes in full."""
    orders: object
    created: dict[tuple[str, str], object] = field(default_factory=dict)
    calls: int = 0

    async def create(self, cmd) -> object:
        self.calls += 1
        key = (cmd.order_id, cmd.idempotency_key)
        if key not in self.created:
            self.created[key] = cmd
            order = self.orders.orders[cmd.order_id]
            order.refunded_amount = order.payable
        return self.created[key]
