"""What the staff's member views (search and 360°) need from outside.

Tags, RFM scores and segments are the member's *facts*: one document per member kept by
the tagging feature (`member_facts`). The views only read them; a member without facts
has no tags, no RFM scores and belongs to no segment."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from services.member.domain.profile import Profile


@dataclass(frozen=True)
class SearchFilter:
    """Filters on the member document itself (each on a stored field)."""
    phone_suffix: str = ""
    growth_min: int | None = None  # a tier: growth from its threshold …
    growth_below: int | None = None  # … up to the next tier's
    registered_from: datetime | None = None
    registered_before: datetime | None = None
    channel: str = ""
    consent: bool | None = None  # None: either


@dataclass(frozen=True)
class FactsFilter:
    """Filters on the member's facts; empty: none."""
    tags: tuple[str, ...] = ()
    rfm_group: str = ""
    segment_id: str = ""

    def __bool__(self) -> bool:
        return bool(self.tags or self.rfm_group or self.segment_id)


@dataclass(frozen=True)
class MemberRow:
    member_id: str
    nickname: str = ""
    avatar_url: str = ""
    growth: int = 0
    registered_at: datetime | None = None
    channel: str = ""
    consent: bool = False


@dataclass(frozen=True)
class MemberFacts:
    member_id: str
    tags: tuple[str, ...] = ()
    recency: int = 0
    frequency: int = 0
    monetary: int = 0
    rfm_group: str = ""


@dataclass(frozen=True)
class ReferralTies:
    referrer_id: str = ""
    invitee_count: int = 0
    invitee_ids: tuple[str, ...] = ()  # the first ones, newest first


@dataclass(frozen=True)
class OrdersSummary:
    order_count: int = 0
    paid_count: int = 0
    paid_amount: int = 0
    refunded_amount: int = 0
    last_order_id: str = ""
    last_order_at: datetime | None = None
    last_order_state: str = ""
    last_order_payable: int = 0


@dataclass(frozen=True)
class CouponCounts:
    by_state: dict[str, int] = field(default_factory=dict)


class MemberSearchStore(Protocol):
    async def page(self, merchant_id: str, where: SearchFilter, after_id: str, limit: int) -> list[MemberRow]:
        """Members matching `where`, newest first (by id), ids below after_id ("" : from the top)."""

    async def among(self, merchant_id: str, where: SearchFilter, member_ids: list[str]) -> list[MemberRow]:
        """Those of member_ids that match `where`, newest first."""

    async def member(self, merchant_id: str, member_id: str) -> tuple[MemberRow, Profile] | None:
        """One member's row and profile, in one read; None when the merchant has no such member."""


class MemberFactsStore(Protocol):
    async def page(self, merchant_id: str, where: FactsFilter, after_id: str, limit: int) -> list[str]:
        """Ids of members whose facts match, descending, below after_id."""

    async def of(self, merchant_id: str, member_ids: list[str]) -> dict[str, MemberFacts]:
        """The facts kept for these members (absent: none)."""


class MemberOverviewStore(Protocol):
    async def coupon_counts(self, merchant_id: str, member_id: str) -> dict[str, int]:
        """The member's coupons by state (AVAILABLE, LOCKED, USED, EXPIRED)."""

    async def balance(self, merchant_id: str, member_id: str) -> tuple[int, int]:
        """Stored value: principal and bonus in fen (0, 0 without an account)."""

    async def referral(self, merchant_id: str, member_id: str, first: int) -> ReferralTies:
        """Who invited the member, and the members they invited."""


class OrderSummaries(Protocol):
    async def summarize(self, member_id: str) -> OrdersSummary | None:
        """The member's orders in figures (the calling merchant's); None when the order
        service cannot answer now."""
