"""What the member statistics and RFM use cases need from outside. Implementations live in
services/member/adapters/segment_store.py."""
from __future__ import annotations

from typing import Any, Protocol

from services.member.domain.segments import MemberStats, RfmSettings, Segment, Tag, TagGroup


class StatsStore(Protocol):
    async def apply(self, merchant_id: str, member_id: str, cause: str, day: str, orders: int, amount: int,
                    paid_ms: int, channel: str, refunds: int) -> bool:
        """Adds one event's effect to the member's statistics: ONE conditional update on the
        cause not being applied yet (the member's document created first when missing).
        False on a replay."""
        ...

    async def follow(self, merchant_id: str, member_id: str, persona_id: str, mark: int) -> bool:
        """Stores a persona's follow mark (domain.segments.follow_mark) unless the stored one
        is as large: ONE conditional update, marking the facts due. False when not newer."""
        ...

    async def of(self, merchant_id: str, member_ids: list[str]) -> dict[str, MemberStats]: ...

    async def changed(self, limit: int) -> list[MemberStats]:
        """Statistics changed since their facts were last derived (any merchant)."""
        ...

    async def settle(self, stats: MemberStats, expired_days: list[str]) -> bool:
        """Drops the buckets that left the window and marks the facts derived, only when
        the statistics are still at the version read."""
        ...

    async def settle_many(self, items: list[tuple[MemberStats, list[str]]]) -> int:
        """`settle` for a batch (statistics and their expired days) in one write; how many
        were still at the version read."""
        ...


class FactsStore(Protocol):
    async def put(self, merchant_id: str, member_id: str, stats_version: int, facts: dict[str, Any]) -> bool:
        """Writes the member's facts (all but the manual tags) unless facts of newer
        statistics are stored; the tags become the manual ones and `auto_tags`."""
        ...

    async def put_many(self, merchant_id: str, items: list[tuple[str, int, dict[str, Any]]]) -> int:
        """`put` for a batch of the merchant's members (member id, statistics version,
        facts) in one read and one write; facts stored as they are computed are left alone;
        how many members hold facts at least as new afterwards."""
        ...

    async def retag(self, merchant_id: str, member_ids: list[str], add: list[str], remove: list[str]) -> int:
        """Adds and removes manual tags of members whose facts exist (replacing the arrays
        under the facts' version); how many changed."""
        ...

    async def existing(self, merchant_id: str, member_ids: list[str]) -> set[str]: ...

    async def carrying(self, merchant_id: str, tag_id: str) -> int: ...

    async def count(self, query: dict) -> int: ...

    async def page(self, query: dict, after_member_id: str, limit: int) -> list[str]:
        """Member ids matching the query, in member id order, after `after_member_id`."""
        ...

    async def matching(self, query: dict) -> list[str]:
        """Every member id matching the query, in one read."""
        ...

    async def consenting(self, merchant_id: str, member_ids: list[str]) -> set[str]:
        """Those of the members whose facts say they consent to marketing now."""
        ...


class RfmSettingsStore(Protocol):
    async def get(self, merchant_id: str) -> RfmSettings: ...

    async def put(self, merchant_id: str, settings: RfmSettings) -> None: ...


class MemberSide(Protocol):
    async def of(self, merchant_id: str, member_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The merchant's members among the ids → {growth, registered_ms, birthday_month,
        consent}; ids that are not the merchant's members are absent."""
        ...

    async def page(self, after_id: str, limit: int) -> list[tuple[str, str, dict[str, Any]]]:
        """Members of every merchant after `after_id` in id order: (merchant, member, side)."""
        ...


class SweepProgress(Protocol):
    async def claim(self, holder: str, now_ms: int, until_ms: int) -> tuple[str, str] | None:
        """(day, after_id) of the facts sweep when this holder has (or took over) its lease."""
        ...

    async def advance(self, holder: str, day: str, after_id: str, until_ms: int) -> bool: ...


class TagStore(Protocol):
    async def groups(self, merchant_id: str) -> list[TagGroup]: ...

    async def tags(self, merchant_id: str) -> list[Tag]: ...

    async def add_group(self, group: TagGroup) -> bool:
        """False when the merchant has a group of that name."""
        ...

    async def add_tag(self, tag: Tag) -> bool:
        """False when the merchant has a tag of that name."""
        ...

    async def remove_group(self, merchant_id: str, group_id: str) -> bool: ...

    async def remove_tag(self, merchant_id: str, tag_id: str) -> bool: ...


class SegmentStore(Protocol):
    async def add(self, segment: Segment) -> None: ...

    async def get(self, merchant_id: str, segment_id: str) -> Segment | None: ...

    async def page(self, merchant_id: str, before_id: str, limit: int) -> list[Segment]:
        """Newest first, older than `before_id` when given."""
        ...

    async def count(self, merchant_id: str) -> int: ...

    async def remove(self, merchant_id: str, segment_id: str) -> bool: ...


class GrantTargets(Protocol):
    """A coupon grant's audience as taken when it started (a segment's members then)."""

    async def add(self, merchant_id: str, grant_id: str, member_ids: list[str]) -> int:
        """Adds members (once each, whatever the repeats); how many were new."""
        ...

    async def page(self, merchant_id: str, grant_id: str, after_member_id: str, limit: int) -> list[str]:
        """The grant's members after `after_member_id` (empty: from the start), in member id order."""
        ...
