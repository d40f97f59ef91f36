"""What the member statistics and RFM use cases need from outside. Implementations live in
services/member/adapters/segment_store.py."""
from __future__ import annotations

from typing import Any, Protocol

from services.member.domain.segments import MemberStats, RfmSettings


class StatsStore(Protocol):
    async def apply(self, merchant_id: str, member_id: str, cause: str, day: str, orders: int, amount: int,
                    paid_ms: int, channel: str, refunds: int) -> bool:
        """Adds one event's effect to the member's statistics: ONE conditional update on the
        cause not being applied yet (the member's document created first when missing).
        False on a replay."""
        ...

    async def changed(self, limit: int) -> list[MemberStats]:
        """Statistics changed since their facts were last derived (any merchant)."""
        ...

    async def stale(self, day: str, limit: int) -> list[MemberStats]:
        """Statistics whose facts were last derived before `day` (the daily recency pass)."""
        ...

    async def settle(self, stats: MemberStats, expired_days: list[str], day: str) -> bool:
        """Drops the buckets that left the window and marks the facts derived, only when
        the statistics are still at the version read (derived on `day`)."""
        ...


class FactsStore(Protocol):
    async def put_derived(self, merchant_id: str, member_id: str, stats_version: int, facts: dict[str, Any]) -> bool:
        """Writes the statistics part of the member's facts unless newer ones are stored."""
        ...

    async def count(self, query: dict) -> int: ...

    async def page(self, query: dict, after_member_id: str, limit: int) -> list[str]:
        """Member ids matching the query, in member id order, after `after_member_id`."""
        ...


class RfmSettingsStore(Protocol):
    async def get(self, merchant_id: str) -> RfmSettings: ...

    async def put(self, merchant_id: str, settings: RfmSettings) -> None: ...

