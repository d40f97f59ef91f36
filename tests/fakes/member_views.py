"""In-memory stand-ins for the staff member views' ports
(services.member.application.member_view_ports). Each read counts one call in `reads`, as
the stores send one command per read."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from services.member.application.member_view_ports import (FactsFilter, MemberFacts, MemberRow, OrdersSummary,
                                                           ReferralTies, SearchFilter)
from services.member.domain.profile import Profile


@dataclass
class StoredMember:
    merchant_id: str
    row: MemberRow
    profile: Profile
    phone_suffix: str = ""


@dataclass
class StoredFacts:
    merchant_id: str
    facts: MemberFacts
    segment_ids: tuple[str, ...] = ()


def _matches(m: StoredMember, merchant_id: str, w: SearchFilter) -> bool:
    r = m.row
    return (m.merchant_id == merchant_id
            and (not w.phone_suffix or m.phone_suffix == w.phone_suffix)
            and (w.growth_min is None or r.growth >= w.growth_min)
            and (w.growth_below is None or r.growth < w.growth_below)
            and (w.registered_from is None or r.registered_at >= w.registered_from)
            and (w.registered_before is None or r.registered_at < w.registered_before)
            and (not w.channel or r.channel == w.channel)
            and (w.consent is None or r.consent == w.consent))


@dataclass
class FakeMemberViewStores:
    """Members, their facts, coupons, balances and referrals of every merchant."""
    members: dict[str, StoredMember] = field(default_factory=dict)
    facts: dict[str, StoredFacts] = field(default_factory=dict)
    coupons: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    balances: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    referrals: list[tuple[str, str, str]] = field(default_factory=list)  # (merchant, inviter, invitee), in order
    reads: Counter = field(default_factory=Counter)

    # ---- MemberSearchStore -------------------------------------------------------------------
    async def page(self, merchant_id: str, where: SearchFilter, after_id: str, limit: int) -> list[MemberRow]:
        self.reads["members.page"] += 1
        found = sorted((m.row for m in self.members.values() if _matches(m, merchant_id, where)
                        and (not after_id or m.row.member_id < after_id)), key=lambda r: r.member_id, reverse=True)
        return found[:limit]

    async def among(self, merchant_id: str, where: SearchFilter, member_ids: list[str]) -> list[MemberRow]:
        self.reads["members.among"] += 1
        return sorted((m.row for m in self.members.values() if m.row.member_id in member_ids
                       and _matches(m, merchant_id, where)), key=lambda r: r.member_id, reverse=True)

    async def member(self, merchant_id: str, member_id: str) -> tuple[MemberRow, Profile] | None:
        self.reads["members.one"] += 1
        m = self.members.get(member_id)
        return (m.row, m.profile) if m and m.merchant_id == merchant_id else None


class FakeFacts:
    def __init__(self, stores: FakeMemberViewStores):
        self.stores = stores

    async def page(self, merchant_id: str, where: FactsFilter, after_id: str, limit: int) -> list[str]:
        self.stores.reads["facts.page"] += 1
        ids = [member_id for member_id, f in self.stores.facts.items()
               if f.merchant_id == merchant_id and set(where.tags) <= set(f.facts.tags)
               and (not where.rfm_group or f.facts.rfm_group == where.rfm_group)
               and (not where.segment_id or where.segment_id in f.segment_ids)
               and (not after_id or member_id < after_id)]
        return sorted(ids, reverse=True)[:limit]

    async def of(self, merchant_id: str, member_ids: list[str]) -> dict[str, MemberFacts]:
        self.stores.reads["facts.of"] += 1
        return {i: f.facts for i, f in self.stores.facts.items() if f.merchant_id == merchant_id and i in member_ids}


class FakeOverview:
    def __init__(self, stores: FakeMemberViewStores):
        self.stores = stores

    async def coupon_counts(self, merchant_id: str, member_id: str) -> dict[str, int]:
        self.stores.reads["coupons"] += 1
        return {"AVAILABLE": 0, "LOCKED": 0, "USED": 0, "EXPIRED": 0,
                **self.stores.coupons.get((merchant_id, member_id), {})}

    async def balance(self, merchant_id: str, member_id: str) -> tuple[int, int]:
        self.stores.reads["balance"] += 1
        return self.stores.balances.get((merchant_id, member_id), (0, 0))

    async def referral(self, merchant_id: str, member_id: str, first: int) -> ReferralTies:
        self.stores.reads["referral"] += 1
        mine = [r for r in self.stores.referrals if r[0] == merchant_id]
        inviter = next((r[1] for r in mine if r[2] == member_id), "")
        invited = [r[2] for r in mine if r[1] == member_id][::-1]
        return ReferralTies(inviter, len(invited), tuple(invited[:first]))


class FakeOrderSummaries:
    """Summaries by (merchant, member) as the order service would answer; `down` makes it not answer."""

    def __init__(self):
        self.items: dict[str, OrdersSummary] = {}
        self.down = False
        self.asked: list[str] = []

    async def summarize(self, member_id: str) -> OrdersSummary | None:
        self.asked.append(member_id)
        if self.down:
            return None
        return self.items.get(member_id, OrdersSummary())
