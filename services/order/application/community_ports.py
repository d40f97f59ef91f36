"""What the community group buy use cases need from outside (adapters/community_store.py
implements them over MongoDB; tests/fakes/community.py in memory)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, Sequence

from services.order.domain.community import Campaign, CommunityLeader, CommunitySettings
from services.order.domain.orders import Order


@dataclass(frozen=True)
class Batch:
    """A leader's orders of a campaign delivered to the pickup point together; the
    uncollected rule is applied to it once (`uncollected_done`)."""
    merchant_id: str
    campaign_id: str
    leader_id: str
    delivered_at: datetime
    order_ids: tuple[str, ...]
    uncollected_done: bool = False
    version: int = 1


class LeaderRepository(Protocol):
    async def get(self, merchant_id: str, leader_id: str) -> CommunityLeader | None: ...

    async def of_member(self, merchant_id: str, member_id: str) -> CommunityLeader | None: ...

    async def add(self, leader: CommunityLeader) -> bool:
        """False when the member already has a leader at the merchant (one per member)."""
        ...

    async def save(self, leader: CommunityLeader) -> None:
        """On the version read; StaleVersion when it changed meanwhile."""
        ...

    async def page(self, merchant_id: str, state: str, after_id: str, limit: int) -> list[CommunityLeader]: ...


class CampaignRepository(Protocol):
    async def get(self, merchant_id: str, campaign_id: str) -> Campaign | None: ...

    async def by_key(self, merchant_id: str, idempotency_key: str) -> Campaign | None: ...

    async def add(self, campaign: Campaign) -> bool:
        """False when a campaign with its idempotency key exists."""
        ...

    async def save(self, campaign: Campaign) -> None:
        """On the version read, with its events; StaleVersion when it changed meanwhile."""
        ...

    async def open_ones(self, merchant_id: str, now: datetime, limit: int) -> list[Campaign]:
        """Campaigns whose cut-off has not passed, soonest first."""
        ...

    async def due_to_close(self, now: datetime, limit: int) -> list[Campaign]:
        """Campaigns past their cut-off not yet recorded closed, across merchants."""
        ...


class CommunitySettingsRepository(Protocol):
    async def of_merchant(self, merchant_id: str) -> CommunitySettings: ...

    async def put(self, merchant_id: str, settings: CommunitySettings) -> None: ...


class CommunityOrders(Protocol):
    """Reads of community orders (the order collection, by activity)."""

    async def of_batch(self, merchant_id: str, campaign_id: str, leader_id: str,
                       states: Sequence[str] = ()) -> list[Order]:
        """The campaign's orders through the leader (in those states; every state but
        PENDING_PAYMENT and CANCELLED when none are named)."""
        ...

    async def of_campaign(self, merchant_id: str, campaign_id: str, states: Sequence[str]) -> list[Order]: ...

    async def by_code(self, merchant_id: str, campaign_id: str, leader_id: str, pickup_code: str) -> Order | None: ...


class PickupCodes(Protocol):
    async def claim(self, merchant_id: str, campaign_id: str, leader_id: str, code: str, order_id: str) -> bool:
        """Reserves the code for the order; False when another order of the batch has it."""
        ...


class MemberLimits(Protocol):
    async def take(self, merchant_id: str, campaign_id: str, member_id: str, sku_id: str, units: int,
                   limit: int) -> bool:
        """One conditional update: the member's units of the SKU in the campaign grow by
        `units` unless that would pass `limit`; False then, and nothing changes."""
        ...

    async def give_back(self, merchant_id: str, campaign_id: str, member_id: str, sku_id: str, units: int) -> None:
        ...


class Batches(Protocol):
    async def get(self, merchant_id: str, campaign_id: str, leader_id: str) -> Batch | None: ...

    async def delivered(self, batch: Batch) -> None:
        """Records the batch delivered (with its community_batch.delivered event); the
        orders it adds to a batch recorded before are added to it."""
        ...

    async def open_for_uncollected(self, limit: int) -> list[Batch]:
        """Delivered batches whose uncollected rule is not applied yet, oldest first."""
        ...

    async def uncollected_done(self, batch: Batch) -> bool:
        """Marks the rule applied; False when another run did it first."""
        ...


class Pickups(Protocol):
    async def record(self, merchant_id: str, order: Order, confirmed_by: str, at: datetime) -> None:
        """The pickup, once per order, with its community_pickup.confirmed event."""
        ...
