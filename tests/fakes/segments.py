"""In-memory stand-ins for the member statistics, facts and RFM settings ports
(services.member.application.segment_ports)."""
from __future__ import annotations

import copy
from typing import Any

from services.member.domain.segments import MemberStats, RfmSettings, Segment, Tag, TagGroup, tags_after


class FakeStats:
    def __init__(self):
        self.items: dict[tuple[str, str], MemberStats] = {}
        self.causes: set[tuple[str, str, str]] = set()
        self.dirty: set[tuple[str, str]] = set()

    async def apply(self, merchant_id: str, member_id: str, cause: str, day: str, orders: int, amount: int,
                    paid_ms: int, channel: str, refunds: int) -> bool:
        if (merchant_id, member_id, cause) in self.causes:
            return False
        self.causes.add((merchant_id, member_id, cause))
        s = self.items.setdefault((merchant_id, member_id), MemberStats(merchant_id, member_id))
        bucket = s.days.setdefault(day, {"o": 0, "a": 0})
        bucket["o"] += orders
        bucket["a"] += amount
        s.paid_orders += orders
        if orders and channel:
            s.channels[channel] = s.channels.get(channel, 0) + orders
        if refunds:
            s.refunds += refunds
            s.refunded_amount -= amount
        if paid_ms:
            s.first_paid_ms = min(s.first_paid_ms or paid_ms, paid_ms)
            s.last_paid_ms = max(s.last_paid_ms, paid_ms)
        s.version += 1
        self.dirty.add((merchant_id, member_id))
        return True

    async def follow(self, merchant_id: str, member_id: str, persona_id: str, mark: int) -> bool:
        s = self.items.setdefault((merchant_id, member_id), MemberStats(merchant_id, member_id))
        if s.follows.get(persona_id, 0) >= mark:
            return False
        s.follows[persona_id] = mark
        s.version += 1
        self.dirty.add((merchant_id, member_id))
        return True

    async def changed(self, limit: int) -> list[MemberStats]:
        return [copy.deepcopy(self.items[k]) for k in sorted(self.dirty)][:limit]

    async def of(self, merchant_id: str, member_ids: list[str]) -> dict[str, MemberStats]:
        return {m: copy.deepcopy(self.items[(merchant_id, m)]) for m in member_ids if (merchant_id, m) in self.items}

    async def settle(self, stats: MemberStats, expired_days: list[str]) -> bool:
        key = (stats.merchant_id, stats.member_id)
        current = self.items[key]
        if current.version != stats.version:
            return False
        for d in expired_days:
            current.days.pop(d, None)
        self.dirty.discard(key)
        return True

    async def settle_many(self, items: list[tuple[MemberStats, list[str]]]) -> int:
        self.settle_calls = getattr(self, "settle_calls", 0) + 1
        return sum([await self.settle(stats, expired) for stats, expired in items])


class FakeFacts:
    def __init__(self):
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.batches: list[int] = []  # the size of each put_many

    async def put(self, merchant_id: str, member_id: str, stats_version: int, facts: dict[str, Any]) -> bool:
        current = self.items.setdefault((merchant_id, member_id), {"stats_version": 0, "manual_tags": []})
        if current["stats_version"] > stats_version:
            return False
        current.update(facts, stats_version=stats_version,
                       tags=sorted(set(current["manual_tags"]) | set(facts.get("auto_tags") or [])))
        return True

    async def put_many(self, merchant_id: str, items: list[tuple[str, int, dict[str, Any]]]) -> int:
        self.batches.append(len(items))
        return sum([await self.put(merchant_id, m, v, f) for m, v, f in items])

    async def retag(self, merchant_id: str, member_ids: list[str], add: list[str], remove: list[str]) -> int:
        changed = 0
        for m in member_ids:
            current = self.items.get((merchant_id, m))
            if current is None:
                continue
            after = tags_after(current["manual_tags"], add, remove)
            if after != sorted(current["manual_tags"]):
                current["manual_tags"] = after
                current["tags"] = sorted(set(after) | set(current.get("auto_tags") or []))
                changed += 1
        return changed

    async def existing(self, merchant_id: str, member_ids: list[str]) -> set[str]:
        return {m for m in member_ids if (merchant_id, m) in self.items}

    async def carrying(self, merchant_id: str, tag_id: str) -> int:
        return sum(1 for (mer, _), f in self.items.items() if mer == merchant_id and tag_id in f["manual_tags"])

    # Segment queries are checked against MongoDB (tests/conformance); here a small matcher
    # of the same subset serves the use cases' tests.
    async def count(self, query: dict) -> int:
        return len(await self.matching(query))

    async def page(self, query: dict, after_member_id: str, limit: int) -> list[str]:
        return sorted(m for m in await self.matching(query) if m > after_member_id)[:limit]

    async def matching(self, query: dict) -> list[str]:
        return [m for (mer, m), f in self.items.items() if _matches({**f, "merchant_id": mer, "member_id": m}, query)]

    async def consenting(self, merchant_id: str, member_ids: list[str]) -> set[str]:
        return {m for m in member_ids if int(self.items.get((merchant_id, m), {}).get("consent") or 0) == 1}


def _matches(doc: dict[str, Any], query: dict) -> bool:
    for key, want in query.items():
        if key == "$and":
            if not all(_matches(doc, q) for q in want):
                return False
            continue
        if key == "$or":
            if not any(_matches(doc, q) for q in want):
                return False
            continue
        have = doc.get(key)
        values = have if isinstance(have, list) else [have]
        if not isinstance(want, dict):
            if want not in values:
                return False
            continue
        for op, arg in want.items():
            ok = {"$in": lambda: any(v in arg for v in values), "$nin": lambda: not any(v in arg for v in values),
                  "$all": lambda: all(a in values for a in arg), "$exists": lambda: (key in doc) == bool(arg),
                  "$gte": lambda: have is not None and have >= arg, "$lte": lambda: have is not None and have <= arg,
                  "$gt": lambda: have is not None and have > arg, "$lt": lambda: have is not None and have < arg}[op]()
            if not ok:
                return False
    return True


class FakeGrantTargets:
    def __init__(self):
        self.items: dict[tuple[str, str], set[str]] = {}   # (merchant, grant) -> member ids

    async def add(self, merchant_id: str, grant_id: str, member_ids: list[str]) -> int:
        have = self.items.setdefault((merchant_id, grant_id), set())
        new = set(member_ids) - have
        have |= new
        return len(new)

    async def page(self, merchant_id: str, grant_id: str, after_member_id: str, limit: int) -> list[str]:
        return sorted(m for m in self.items.get((merchant_id, grant_id), set()) if m > after_member_id)[:limit]


class FakeMemberSide:
    """Members by (merchant, id) → {growth, registered_ms, birthday_month, consent}."""

    def __init__(self):
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    async def of(self, merchant_id: str, member_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {m: dict(self.items[(merchant_id, m)]) for m in member_ids if (merchant_id, m) in self.items}

    async def page(self, after_id: str, limit: int) -> list[tuple[str, str, dict[str, Any]]]:
        rows = sorted((m, mer, side) for (mer, m), side in self.items.items() if m > after_id)[:limit]
        return [(mer, m, dict(side)) for m, mer, side in rows]


class FakeSweep:
    def __init__(self):
        self.day, self.after_id, self.holder, self.until = "", "", "", 0

    async def claim(self, holder: str, now_ms: int, until_ms: int) -> tuple[str, str] | None:
        if self.holder not in ("", holder) and self.until >= now_ms:
            return None
        self.holder, self.until = holder, until_ms
        return self.day, self.after_id

    async def advance(self, holder: str, day: str, after_id: str, until_ms: int) -> bool:
        if self.holder != holder:
            return False
        self.day, self.after_id, self.until = day, after_id, until_ms
        return True


class FakeRfmSettings:
    def __init__(self):
        self.items: dict[str, RfmSettings] = {}

    async def get(self, merchant_id: str) -> RfmSettings:
        return self.items.get(merchant_id, RfmSettings())

    async def put(self, merchant_id: str, settings: RfmSettings) -> None:
        self.items[merchant_id] = settings




class FakeTags:
    def __init__(self):
        self.groups_: dict[str, TagGroup] = {}
        self.tags_: dict[str, Tag] = {}

    async def groups(self, merchant_id: str) -> list[TagGroup]:
        return sorted((g for g in self.groups_.values() if g.merchant_id == merchant_id), key=lambda g: g.name)

    async def tags(self, merchant_id: str) -> list[Tag]:
        return sorted((t for t in self.tags_.values() if t.merchant_id == merchant_id), key=lambda t: t.name)

    async def add_group(self, group: TagGroup) -> bool:
        if any(g.merchant_id == group.merchant_id and g.name == group.name for g in self.groups_.values()):
            return False
        self.groups_[group.id] = group
        return True

    async def add_tag(self, tag: Tag) -> bool:
        if any(t.merchant_id == tag.merchant_id and t.name == tag.name for t in self.tags_.values()):
            return False
        self.tags_[tag.id] = tag
        return True

    async def remove_group(self, merchant_id: str, group_id: str) -> bool:
        return self.groups_.pop(group_id, None) is not None

    async def remove_tag(self, merchant_id: str, tag_id: str) -> bool:
        return self.tags_.pop(tag_id, None) is not None


class FakeSegments:
    def __init__(self):
        self.items: dict[str, Segment] = {}

    async def add(self, segment: Segment) -> None:
        self.items[segment.id] = segment

    async def get(self, merchant_id: str, segment_id: str) -> Segment | None:
        found = self.items.get(segment_id)
        return found if found is not None and found.merchant_id == merchant_id else None

    async def page(self, merchant_id: str, before_id: str, limit: int) -> list[Segment]:
        rows = sorted((s for s in self.items.values() if s.merchant_id == merchant_id and
                       (not before_id or s.id < before_id)), key=lambda s: s.id, reverse=True)
        return rows[:limit]

    async def count(self, merchant_id: str) -> int:
        return sum(1 for s in self.items.values() if s.merchant_id == merchant_id)

    async def remove(self, merchant_id: str, segment_id: str) -> bool:
        return self.items.pop(segment_id, None) is not None
