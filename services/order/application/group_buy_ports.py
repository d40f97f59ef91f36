"""What the group-buy use cases need from outside: the activities, the groups (whose
slot-taking is one conditional update), the tickets of placed orders, the member's
profile, and the refund of a GROUPING order."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.order.domain.group_buys import Expiry, Group, GroupBuyActivity, GroupMember
from services.order.domain.orders import Order


@dataclass(frozen=True)
class Ticket:
    """What placing a group-buy order fixed for its slot: the group it opens or joins, and
    the member as the group page shows them (masked)."""
    order_id: str
    merchant_id: str
    member_id: str
    activity_id: str
    group_id: str
    leader: bool
    nickname: str
    avatar_url: str
    created_at: datetime


@dataclass(frozen=True)
class OrderRef:
    """The order a group event is about, with its attribution for the funnels."""
    order_id: str
    member_id: str
    leader: bool
    share_code: str = ""
    persona_id: str = ""
    channel: str = ""


class GroupBuyActivities(Protocol):
    async def add(self, activity: GroupBuyActivity) -> bool:
        """Inserts it; False when the merchant has one with its idempotency key."""
        ...

    async def by_key(self, merchant_id: str, idempotency_key: str) -> GroupBuyActivity | None: ...

    async def get(self, merchant_id: str, activity_id: str) -> GroupBuyActivity | None: ...

    async def save(self, activity: GroupBuyActivity) -> None:
        """On the version read; StaleVersion when another write came first."""
        ...

    async def page(self, merchant_id: str, before_id: str, limit: int, *, on_at: datetime | None = None
                   ) -> list[GroupBuyActivity]:
        """Newest first; with `on_at`, only ACTIVE ones not ended at that time."""
        ...


class GroupBuyGroups(Protocol):
    async def open(self, group: Group, ref: OrderRef) -> bool:
        """Inserts an OPEN group with its leader (group.opened in its outbox, and
        group.formed as well when its size is 1); False when it exists (a redelivery)."""
        ...

    async def take(self, group: Group, member: GroupMember, ref: OrderRef, now: datetime, *, last: bool) -> bool:
        """One conditional update: OPEN, not expired, neither the order nor the member in it,
        and fewer than size − 1 paid (`last`: exactly size − 1) → the member added and the
        paid count raised, with group.joined; `last` also sets FORMED with group.formed
        (the members read, plus this one), in the same write. False: the guard did not hold."""
        ...

    async def get(self, merchant_id: str, group_id: str) -> Group | None: ...

    async def expired(self, now: datetime, limit: int) -> list[Group]:
        """OPEN groups of any merchant past their deadline, oldest deadline first."""
        ...

    async def close(self, group: Group, outcome: Expiry, now: datetime) -> bool:
        """OPEN → outcome by compare-and-set on the state and the paid count read, with
        group.formed or group.failed in the same write; False when it changed meanwhile."""
        ...

    async def joinable(self, merchant_id: str, activity_id: str, now: datetime, limit: int) -> list[Group]: ...

    async def among(self, merchant_id: str, group_ids: list[str]) -> list[Group]: ...


class GroupBuyTickets(Protocol):
    async def put(self, ticket: Ticket) -> None:
        """Idempotent by order id."""
        ...

    async def get(self, merchant_id: str, order_id: str) -> Ticket | None: ...

    async def of_member(self, merchant_id: str, member_id: str, limit: int) -> list[Ticket]:
        """Newest first."""
        ...


class MemberProfiles(Protocol):
    async def nickname_and_avatar(self, member_id: str) -> tuple[str, str]:
        """The calling member's nickname and avatar; ("", "") when they cannot be read
        (the group page then shows a masked placeholder)."""
        ...


class GroupRefunds(Protocol):
    async def refund_grouping(self, merchant_id: str, order_id: str, reason: str) -> Order | None:
        """Cancels a GROUPING order with `reason` and sends its payment back, once."""
        ...
