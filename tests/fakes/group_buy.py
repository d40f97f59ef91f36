"""Group buy's ports in memory: activities (version compare-and-set), groups whose slot is
taken under the same guard as the store's one conditional update, tickets, profiles and
the catalog's pools."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from siyu_kit.aggregate import StaleVersion
from siyu_kit.ids import new_id

from services.order.application.group_buy_ports import OrderRef, Ticket
from services.order.application.ports import ActivityPool
from services.order.domain.group_buys import Expiry, Group, GroupBuyActivity, GroupMember, GroupState


@dataclass
class FakeActivities:
    by_id: dict[str, GroupBuyActivity] = field(default_factory=dict)

    async def add(self, activity: GroupBuyActivity) -> bool:
        if await self.by_key(activity.merchant_id, activity.idempotency_key):
            return False
        self.by_id[activity.id] = replace(activity)
        return True

    async def by_key(self, merchant_id: str, idempotency_key: str) -> GroupBuyActivity | None:
        return next((replace(a) for a in self.by_id.values()
                     if a.merchant_id == merchant_id and a.idempotency_key == idempotency_key), None)

    async def get(self, merchant_id: str, activity_id: str) -> GroupBuyActivity | None:
        a = self.by_id.get(activity_id)
        return replace(a) if a is not None and a.merchant_id == merchant_id else None

    async def save(self, activity: GroupBuyActivity) -> None:
        if not activity.changed:
            return
        if self.by_id[activity.id].version != activity.version:
            raise StaleVersion("changed")
        activity.version += 1
        activity.changed = False
        self.by_id[activity.id] = replace(activity)

    async def page(self, merchant_id: str, before_id: str, limit: int, *, on_at: datetime | None = None):
        found = sorted((a for a in self.by_id.values() if a.merchant_id == merchant_id
                        and (not before_id or a.id < before_id)
                        and (on_at is None or (a.state.value == "ACTIVE" and a.terms.ends_at > on_at))),
                       key=lambda a: a.id, reverse=True)
        return [replace(a) for a in found[:limit]]


@dataclass
class FakeGroups:
    by_id: dict[str, Group] = field(default_factory=dict)
    # (group id, event name) in the order written: the group's outbox.
    events: list[tuple[str, str]] = field(default_factory=list)

    async def open(self, group: Group, ref: OrderRef) -> bool:
        if group.id in self.by_id:
            return False
        self.by_id[group.id] = group
        self.events.append((group.id, "opened"))
        return True

    async def take(self, group: Group, member: GroupMember, ref: OrderRef, now: datetime, *, last: bool) -> bool:
        g = self.by_id.get(group.id)
        if g is None or g.merchant_id != group.merchant_id or g.state is not GroupState.OPEN \
                or not g.expires_at > now or g.member(member.member_id) is not None or g.has_order(member.order_id):
            return False
        if (g.paid != g.size - 1) if last else not (g.paid < g.size - 1):
            return False
        self.by_id[g.id] = replace(g, members=g.members + (member,),
                                   state=GroupState.FORMED if last else GroupState.OPEN)
        self.events.append((g.id, "joined"))
        if last:
            self.events.append((g.id, "formed"))
        return True

    async def get(self, merchant_id: str, group_id: str) -> Group | None:
        g = self.by_id.get(group_id)
        return g if g is not None and g.merchant_id == merchant_id else None

    async def expired(self, now: datetime, limit: int) -> list[Group]:
        return sorted((g for g in self.by_id.values() if g.state is GroupState.OPEN and g.expires_at <= now),
                      key=lambda g: g.expires_at)[:limit]

    async def close(self, group: Group, outcome: Expiry, now: datetime) -> bool:
        g = self.by_id.get(group.id)
        if g is None or g.state is not GroupState.OPEN or g.paid != group.paid:
            return False
        self.by_id[g.id] = replace(g, state=outcome.state, placeholders=outcome.placeholders,
                                   failed_reason=outcome.reason)
        self.events.append((g.id, outcome.state.value.lower()))
        return True

    async def joinable(self, merchant_id: str, activity_id: str, now: datetime, limit: int) -> list[Group]:
        return [g for g in self.by_id.values() if g.merchant_id == merchant_id and g.activity_id == activity_id
                and g.state is GroupState.OPEN and g.expires_at > now][:limit]

    async def among(self, merchant_id: str, group_ids: list[str]) -> list[Group]:
        return [g for i in group_ids if (g := await self.get(merchant_id, i)) is not None]


@dataclass
class FakeTickets:
    by_order: dict[str, Ticket] = field(default_factory=dict)

    async def put(self, ticket: Ticket) -> None:
        self.by_order.setdefault(ticket.order_id, ticket)

    async def get(self, merchant_id: str, order_id: str) -> Ticket | None:
        t = self.by_order.get(order_id)
        return t if t is not None and t.merchant_id == merchant_id else None

    async def of_member(self, merchant_id: str, member_id: str, limit: int) -> list[Ticket]:
        return sorted((t for t in self.by_order.values() if t.merchant_id == merchant_id
                       and t.member_id == member_id), key=lambda t: t.order_id, reverse=True)[:limit]


@dataclass
class FakeProfiles:
    nicknames: dict[str, str] = field(default_factory=dict)

    async def nickname_and_avatar(self, member_id: str) -> tuple[str, str]:
        return self.nicknames.get(member_id, "小明"), "https://img.example/a.png"


@dataclass
class FakePools:
    """ActivityPools: one pool per idempotency key (a retry finds the first)."""
    by_key: dict[str, ActivityPool] = field(default_factory=dict)
    calls: int = 0

    async def create_pool(self, idempotency_key: str, kind: str, sku_id: str, price: int, units: int,
                          per_member_limit: int, starts_at: datetime, ends_at: datetime,
                          title: str = "") -> ActivityPool:
        self.calls += 1
        if idempotency_key not in self.by_key:
            self.by_key[idempotency_key] = ActivityPool(
                pool_id=new_id("fls"), kind=kind, product_id="prd_1", sku_id=sku_id, title=title, price=price,
                list_price=0, total=units, available=units, reserved=0, sold=0, per_member_limit=per_member_limit)
        return self.by_key[idempotency_key]

    async def pool(self, pool_id: str) -> ActivityPool | None:
        return next((p for p in self.by_key.values() if p.pool_id == pool_id), None)
