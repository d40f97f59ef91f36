"""In-memory stand-ins for the member statistics, facts and RFM settings ports
(services.member.application.segment_ports)."""
from __future__ import annotations

import copy
from typing import Any

from services.member.domain.segments import MemberStats, RfmSettings


class FakeStats:
    def __init__(self):
        self.items: dict[tuple[str, str], MemberStats] = {}
        self.causes: set[tuple[str, str, str]] = set()
        self.dirty: set[tuple[str, str]] = set()
        self.derived_day: dict[tuple[str, str], str] = {}

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

    async def changed(self, limit: int) -> list[MemberStats]:
        return [copy.deepcopy(self.items[k]) for k in sorted(self.dirty)][:limit]

    async def stale(self, day: str, limit: int) -> list[MemberStats]:
        return [copy.deepcopy(s) for k, s in sorted(self.items.items()) if self.derived_day.get(k, "") < day][:limit]

    async def settle(self, stats: MemberStats, expired_days: list[str], day: str) -> bool:
        key = (stats.merchant_id, stats.member_id)
        current = self.items[key]
        if current.version != stats.version:
            return False
        for d in expired_days:
            current.days.pop(d, None)
        self.dirty.discard(key)
        self.derived_day[key] = day
        return True


class FakeFacts:
    def __init__(self):
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    async def put_derived(self, merchant_id: str, member_id: str, stats_version: int, facts: dict[str, Any]) -> bool:
        current = self.items.setdefault((merchant_id, member_id), {"stats_version": 0, "manual_tags": []})
        if current["stats_version"] > stats_version:
            return False
        current.update(facts, stats_version=stats_version,
                       tags=sorted(set(current["manual_tags"]) | set(facts.get("auto_tags") or [])))
        return True

    async def count(self, query: dict) -> int:
        raise NotImplementedError  # segment queries are checked against MongoDB (tests/conformance)

    async def page(self, query: dict, after_member_id: str, limit: int) -> list[str]:
        raise NotImplementedError


class FakeRfmSettings:
    def __init__(self):
        self.items: dict[str, RfmSettings] = {}

    async def get(self, merchant_id: str) -> RfmSettings:
        return self.items.get(merchant_id, RfmSettings())

    async def put(self, merchant_id: str, settings: RfmSettings) -> None:
        self.items[merchant_id] = settings


