"""In-memory stand-ins for the distribution ports (services.member.application.distribution_ports).

They keep the stores' guarantees: versions compare-and-set (StaleVersion), one distributor
per member, binding changes conditional on the values read (and each able to let "another
writer" win once), spend counted once per order."""
from __future__ import annotations

import copy
from dataclasses import replace

from siyu_kit.aggregate import StaleVersion

from services.member.application.distribution_ports import CustomerTies, MemberCard
from services.member.domain.distribution import Binding, DistributionSettings, Distributor, DistributorLevel


class FakeDistributionSettings:
    def __init__(self):
        self.items: dict[str, tuple[DistributionSettings, int]] = {}

    async def get(self, merchant_id: str) -> tuple[DistributionSettings, int]:
        return self.items.get(merchant_id, (DistributionSettings(), 0))

    async def put(self, merchant_id: str, settings: DistributionSettings, expected_version: int) -> int | None:
        _, version = await self.get(merchant_id)
        if version != expected_version:
            return None
        self.items[merchant_id] = (settings, version + 1)
        return version + 1


class FakeLevels:
    def __init__(self):
        self.items: dict[str, DistributorLevel] = {}
        self.keys: dict[tuple[str, str], str] = {}

    async def get(self, merchant_id: str, level_id: str) -> DistributorLevel | None:
        found = self.items.get(level_id)
        return copy.deepcopy(found) if found and found.merchant_id == merchant_id else None

    async def all(self, merchant_id: str) -> list[DistributorLevel]:
        return [copy.deepcopy(lv) for lv in self.items.values() if lv.merchant_id == merchant_id]

    async def add(self, level: DistributorLevel, idempotency_key: str) -> tuple[DistributorLevel, bool]:
        known = self.keys.get((level.merchant_id, idempotency_key))
        if known:
            return copy.deepcopy(self.items[known]), False
        self.items[level.id] = copy.deepcopy(level)
        self.keys[(level.merchant_id, idempotency_key)] = level.id
        return level, True

    async def save(self, level: DistributorLevel) -> None:
        stored = self.items.get(level.id)
        if stored is None or stored.version != level.version:
            raise StaleVersion("level")
        self.items[level.id] = replace(copy.deepcopy(level), version=level.version + 1)


class FakeDistributors:
    def __init__(self):
        self.items: dict[str, Distributor] = {}
        self.reads = 0

    def _of(self, merchant_id: str, member_id: str) -> Distributor | None:
        return next((d for d in self.items.values() if (d.merchant_id, d.member_id) == (merchant_id, member_id)),
                    None)

    async def of_member(self, merchant_id: str, member_id: str) -> Distributor | None:
        self.reads += 1
        found = self._of(merchant_id, member_id)
        return copy.deepcopy(found) if found else None

    async def of_members(self, merchant_id: str, member_ids: list[str]) -> dict[str, Distributor]:
        self.reads += 1
        return {m: copy.deepcopy(d) for m in member_ids if (d := self._of(merchant_id, m)) is not None}

    async def add(self, distributor: Distributor) -> bool:
        if self._of(distributor.merchant_id, distributor.member_id) is not None:
            return False
        self.items[distributor.id] = copy.deepcopy(distributor)
        return True

    async def save(self, distributor: Distributor) -> None:
        stored = self.items.get(distributor.id)
        if stored is None or stored.version != distributor.version:
            raise StaleVersion("distributor")
        saved = copy.deepcopy(distributor)
        saved.version += 1
        self.items[distributor.id] = saved

    async def page(self, merchant_id: str, state: str, before_id: str, limit: int) -> list[Distributor]:
        rows = sorted((d for d in self.items.values() if d.merchant_id == merchant_id and (not state or d.state == state)
                       and (not before_id or d.id < before_id)), key=lambda d: d.id, reverse=True)
        return [copy.deepcopy(d) for d in rows[:limit]]

    async def downline(self, merchant_id: str, upline_id: str, before_id: str, limit: int) -> list[Distributor]:
        rows = sorted((d for d in self.items.values() if d.merchant_id == merchant_id and d.upline_id == upline_id
                       and (not before_id or d.id < before_id)), key=lambda d: d.id, reverse=True)
        return [copy.deepcopy(d) for d in rows[:limit]]

    async def count_downline(self, merchant_id: str, upline_id: str) -> int:
        return sum(1 for d in self.items.values() if d.merchant_id == merchant_id and d.upline_id == upline_id)


def _key(ms: int, member_id: str) -> str:
    return f"{ms:015d}:{member_id}"


class FakeCustomers:
    def __init__(self):
        self.items: dict[tuple[str, str], CustomerTies] = {}
        self.lose_next = False  # the next binding change loses to "another writer"
        self.reads = 0
        self.writes = 0

    async def of(self, merchant_id: str, member_id: str) -> CustomerTies:
        self.reads += 1
        return self.items.get((merchant_id, member_id), CustomerTies())

    async def bind_distributor(self, merchant_id: str, member_id: str, current: Binding, new: Binding,
                               upline_id: str) -> bool:
        ties = self.items.get((merchant_id, member_id), CustomerTies())
        if self.lose_next:
            self.lose_next = False
            return False
        if ties.binding != current:
            return False
        self.writes += 1
        self.items[(merchant_id, member_id)] = replace(ties, binding=new, upline_id=upline_id)
        return True

    async def bind_guide(self, merchant_id: str, member_id: str, current_guide_id: str, guide_id: str,
                         now_ms: int) -> bool:
        ties = self.items.get((merchant_id, member_id), CustomerTies())
        if self.lose_next:
            self.lose_next = False
            return False
        if ties.guide_id != current_guide_id:
            return False
        self.writes += 1
        self.items[(merchant_id, member_id)] = replace(ties, guide_id=guide_id, guide_ms=now_ms)
        return True

    def _list(self, merchant_id: str, pick, after_key: str, limit: int) -> list[tuple[str, int, str]]:
        rows = []
        for (m, member_id), ties in self.items.items():
            owner, ms = pick(ties)
            if m == merchant_id and owner:
                rows.append((member_id, ms, _key(ms, member_id), owner))
        return rows

    async def customers(self, merchant_id: str, distributor_id: str, after_key: str,
                        limit: int) -> list[tuple[str, int, str]]:
        rows = [(m, ms, k) for m, ms, k, owner in self._list(merchant_id, lambda t: (t.binding.distributor_id,
                                                                                   t.binding.bound_ms), after_key,
                                                            limit) if owner == distributor_id]
        rows = sorted((r for r in rows if not after_key or r[2] < after_key), key=lambda r: r[2], reverse=True)
        return rows[:limit]

    async def guide_customers(self, merchant_id: str, guide_id: str, after_key: str,
                              limit: int) -> list[tuple[str, int, str]]:
        rows = [(m, ms, k) for m, ms, k, owner in self._list(merchant_id, lambda t: (t.guide_id, t.guide_ms),
                                                            after_key, limit) if owner == guide_id]
        rows = sorted((r for r in rows if not after_key or r[2] < after_key), key=lambda r: r[2], reverse=True)
        return rows[:limit]

    async def count_customers(self, merchant_id: str, distributor_id: str, since_ms: int) -> int:
        return sum(1 for (m, _), t in self.items.items()
                   if m == merchant_id and t.binding.distributor_id == distributor_id and t.binding.bound_ms >= since_ms)


class FakeHistory:
    def __init__(self):
        self.entries: list[tuple] = []

    async def add(self, merchant_id: str, member_id: str, kind: str, before_id: str, after_id: str, source: str,
                  actor_id: str, at_ms: int) -> None:
        self.entries.append((merchant_id, member_id, kind, before_id, after_id, source, actor_id, at_ms))


class FakeGuideProfiles:
    def __init__(self):
        self.stores: dict[tuple[str, str], str] = {}

    async def store_of(self, merchant_id: str, guide_id: str) -> str:
        return self.stores.get((merchant_id, guide_id), "")

    async def set_store(self, merchant_id: str, guide_id: str, store: str) -> None:
        self.stores[(merchant_id, guide_id)] = store


class FakeSpend:
    def __init__(self):
        self.orders: dict[tuple[str, str], dict[str, int]] = {}

    async def record(self, merchant_id: str, member_id: str, order_id: str, net: int) -> int:
        orders = self.orders.setdefault((merchant_id, member_id), {})
        if order_id not in orders or net < orders[order_id]:
            orders[order_id] = net
        return sum(orders.values())


class FakeCards:
    def __init__(self):
        self.items: dict[tuple[str, str], MemberCard] = {}

    def add(self, merchant_id: str, card: MemberCard) -> None:
        self.items[(merchant_id, card.member_id)] = card

    async def cards(self, merchant_id: str, member_ids: list[str], contact: bool) -> dict[str, MemberCard]:
        out = {}
        for m in member_ids:
            card = self.items.get((merchant_id, m))
            if card is not None:
                out[m] = card if contact else MemberCard(m, card.nickname)
        return out


class FakeGuides:
    def __init__(self):
        self.guides: set[tuple[str, str]] = set()

    async def is_guide(self, merchant_id: str, staff_id: str) -> bool:
        return (merchant_id, staff_id) in self.guides
