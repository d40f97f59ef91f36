"""The staff's views of members: search, and one member at a glance (360°).

Both only read. What staff see is masked: phones always (a full phone is the OWNER's
audited RevealMemberPhone), and a GUIDE — a shop assistant who serves members but does not
run the shop — sees no birthday year, region or stored-value balance. OWNER and OPERATOR
see the rest.

Search runs on the member document's own fields; tag, RFM-group and segment filters run
on the member's facts (`member_facts`, kept by the tagging feature), whose matching ids are
then checked against the other filters a batch at a time. Such a page may hold fewer
members than asked (the next token continues where the scan stopped), never a wrong one.

The 360° view reads its parts concurrently: the member, the merchant, the points account,
coupons, balance, facts, referral ties, the phone and the order service's summary."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.member.application.member_view_ports import (FactsFilter, MemberFacts, MemberFactsStore, MemberOverviewStore,
                                                           MemberRow, MemberSearchStore, OrdersSummary,
                                                           OrderSummaries, ReferralTies, SearchFilter)
from services.member.application.ports import MerchantRepository, PhoneBook, PointsLedger
from services.member.domain import admin as rules
from services.member.domain import tiers
from services.member.domain.config import DEFAULT_TIME_ZONE, TIERS, MerchantConfig
from services.member.domain.points_account import Expiring, expiring
from services.member.domain.profile import Profile
from services.member.domain.referral import mask_nickname
from siyu_kit import context, paging
from siyu_kit.context import CHANNELS
from siyu_kit.errors import NotFound, Violations
from siyu_kit.field_rules import compile_pattern
from siyu_kit.ids import is_id
from siyu_kit.logging import mask_phone

MAX_TAGS = 10
MAX_TEXT = 64
# A facts-filtered page scans at most ROUNDS batches of FACTS_BATCH ids.
FACTS_BATCH = 200
ROUNDS = 5
# Invitees shown in the 360° view (the count covers all of them).
FIRST_INVITEES = 10
FULL_VIEW_ROLES = frozenset({"OWNER", "OPERATOR"})


@dataclass(frozen=True)
class SearchQuery:
    phone_suffix: str = ""
    tier: str = ""
    registered_from: datetime | None = None
    registered_before: datetime | None = None
    channel: str = ""
    consent: bool | None = None
    tags: tuple[str, ...] = ()
    rfm_group: str = ""
    segment_id: str = ""
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True)
class MemberCard:
    member_id: str
    nickname: str
    avatar_url: str
    phone_masked: str
    tier: str
    growth: int
    registered_at: datetime | None
    channel: str
    consent: bool
    tags: tuple[str, ...] = ()
    rfm_group: str = ""


@dataclass(frozen=True)
class PointsOverview:
    balance: int = 0
    available: int = 0
    frozen: int = 0
    expiring: tuple[Expiring, ...] = ()


@dataclass(frozen=True)
class ReferralOverview:
    referrer: MemberCard | None = None
    invitee_count: int = 0
    invitees: tuple[MemberCard, ...] = ()


@dataclass(frozen=True)
class Member360:
    card: MemberCard
    profile: Profile
    standing: rules.TierStanding
    points: PointsOverview
    coupons: dict[str, int]
    balance: tuple[int, int] | None  # principal, bonus; None: not shown to this role
    facts: MemberFacts | None
    orders: OrdersSummary | None  # None: the order service did not answer
    referral: ReferralOverview = field(default_factory=ReferralOverview)


def full_view(roles) -> bool:
    """OWNER and OPERATOR see the whole view; a GUIDE the reduced one."""
    return bool(FULL_VIEW_ROLES & set(roles))


# The proto's rule on SearchMembersRequest.tags, read as JSON Schema reads it (ECMAScript's
# white space: Python's \s also takes \x1c-\x1f, which the API document allows).
TAG = compile_pattern(r"^[^\s]{1,64}$")


def _check_tag(tag: str) -> bool:
    return bool(TAG.search(tag))


class MemberViews:
    def __init__(self, search: MemberSearchStore, facts: MemberFactsStore, overview: MemberOverviewStore,
                 merchants: MerchantRepository, ledger: PointsLedger, phones: PhoneBook | None,
                 orders: OrderSummaries | None):
        self.search_store = search
        self.facts = facts
        self.overview = overview
        self.merchants = merchants
        self.ledger = ledger
        self.phones = phones
        self.orders = orders

    async def _config(self, merchant_id: str) -> tuple[MerchantConfig, str]:
        merchant = await self.merchants.get(merchant_id)
        if merchant is None:
            return MerchantConfig(), DEFAULT_TIME_ZONE
        return merchant.config, merchant.time_zone or DEFAULT_TIME_ZONE

    async def _phones(self, merchant_id: str, member_ids: list[str]) -> dict[str, str]:
        if not self.phones or not member_ids:
            return {}
        return await self.phones.phones_of(merchant_id, member_ids)

    @staticmethod
    def _card(row: MemberRow, config: MerchantConfig, phone: str, facts: MemberFacts | None) -> MemberCard:
        return MemberCard(member_id=row.member_id, nickname=row.nickname, avatar_url=row.avatar_url,
                          phone_masked=mask_phone(phone) if phone else "", tier=tiers.tier_for(row.growth, config),
                          growth=row.growth, registered_at=row.registered_at, channel=row.channel,
                          consent=row.consent, tags=facts.tags if facts else (),
                          rfm_group=facts.rfm_group if facts else "")

    # ---- search ------------------------------------------------------------------------------
    async def search(self, q: SearchQuery) -> tuple[list[MemberCard], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "GUIDE")
        v = Violations()
        v.check(not q.phone_suffix or bool(rules.PHONE_SUFFIX.match(q.phone_suffix)), "phone_suffix", "four digits")
        v.check(not q.tier or q.tier in TIERS, "tier", "one of " + ", ".join(TIERS))
        v.check(not q.channel or q.channel in CHANNELS, "channel", "one of " + ", ".join(sorted(CHANNELS)))
        if q.registered_from and q.registered_before:
            v.check(q.registered_from < q.registered_before, "registered_before", "after registered_from")
        v.check(len(q.tags) <= MAX_TAGS, "tags", f"at most {MAX_TAGS}")
        v.check(all(_check_tag(t) for t in q.tags), "tags", "a tag of 1-64 characters")
        v.check(len(q.rfm_group) <= MAX_TEXT, "rfm_group", f"at most {MAX_TEXT} characters")
        v.check(not q.segment_id or is_id(q.segment_id, "seg"), "segment_id", "a seg_ id")
        size = paging.page_size(v, q.page_size)
        fp = paging.fingerprint(kind="member-search", phone=q.phone_suffix, tier=q.tier, since=q.registered_from,
                               until=q.registered_before, channel=q.channel, consent=q.consent,
                               tags=",".join(sorted(q.tags)), rfm=q.rfm_group, seg=q.segment_id)
        after = paging.decode_cursor(v, q.page_token, fp)
        v.raise_if_any()
        merchant_id = ctx.merchant_id
        config, _ = await self._config(merchant_id)
        low, high = rules.growth_range(q.tier, config) if q.tier else (None, None)
        where = SearchFilter(q.phone_suffix, low, high, q.registered_from, q.registered_before, q.channel, q.consent)
        wanted = FactsFilter(tuple(sorted(set(q.tags))), q.rfm_group, q.segment_id)
        if wanted:
            rows, cursor = await self._scan_facts(merchant_id, where, wanted, after, size)
        else:
            rows = await self.search_store.page(merchant_id, where, after, size + 1)
            cursor = rows[size - 1].member_id if len(rows) > size else ""
            rows = rows[:size]
        ids = [r.member_id for r in rows]
        phones, facts = await asyncio.gather(self._phones(merchant_id, ids),
                                             self.facts.of(merchant_id, ids) if ids else _empty())
        cards = [self._card(r, config, phones.get(r.member_id, ""), facts.get(r.member_id)) for r in rows]
        return cards, paging.encode_cursor(fp, cursor) if cursor else ""

    async def _scan_facts(self, merchant_id: str, where: SearchFilter, wanted: FactsFilter, after: str,
                          size: int) -> tuple[list[MemberRow], str]:
        """Members whose facts match, checked against `where` a batch at a time. Returns the
        rows and where the next page starts ("" : nothing more)."""
        rows: list[MemberRow] = []
        cursor = after
        for _ in range(ROUNDS):
            ids = await self.facts.page(merchant_id, wanted, cursor, FACTS_BATCH)
            if not ids:
                return rows, ""
            matched = {r.member_id: r for r in await self.search_store.among(merchant_id, where, ids)}
            for member_id in ids:  # descending, as the facts gave them
                row = matched.get(member_id)
                if row is None:
                    continue
                rows.append(row)
                if len(rows) == size:
                    return rows, member_id
            if len(ids) < FACTS_BATCH:
                return rows, ""
            cursor = ids[-1]
        return rows, cursor

    # ---- one member at a glance ---------------------------------------------------------------
    async def member_360(self, member_id: str) -> Member360:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "GUIDE")
        v = Violations()
        v.check(is_id(member_id, "mem"), "member_id", "a mem_ id")
        v.raise_if_any()
        merchant_id = ctx.merchant_id
        full = full_view(ctx.roles)
        (found, (config, time_zone), book, coupons, balance, facts, ties, orders, phones) = await asyncio.gather(
            self.search_store.member(merchant_id, member_id), self._config(merchant_id),
            self.ledger.book(merchant_id, member_id), self.overview.coupon_counts(merchant_id, member_id),
            self.overview.balance(merchant_id, member_id) if full else _none(),
            self.facts.of(merchant_id, [member_id]), self.overview.referral(merchant_id, member_id, FIRST_INVITEES),
            self.orders.summarize(member_id) if self.orders else _none(),
            self._phones(merchant_id, [member_id]))
        if found is None:
            raise NotFound("no such member")
        row, profile = found
        phone = phones.get(member_id, "")
        profile = replace(profile, phone_masked=mask_phone(phone) if phone else "")
        if not full:
            profile = _reduced(profile)
        mine = facts.get(member_id)
        points = PointsOverview(book.balance, book.available, book.frozen,
                                tuple(expiring(book.lots, time_zone))) if book else PointsOverview()
        return Member360(card=self._card(row, config, phone, mine), profile=profile,
                         standing=rules.standing(row.growth, config), points=points, coupons=coupons,
                         balance=balance, facts=mine, orders=orders,
                         referral=await self._referral(merchant_id, ties, config))

    async def _referral(self, merchant_id: str, ties: ReferralTies, config: MerchantConfig) -> ReferralOverview:
        """The referrer and the first invitees as cards, nicknames masked: they are other
        members than the one looked at."""
        ids = ([ties.referrer_id] if ties.referrer_id else []) + list(ties.invitee_ids)
        if not ids:
            return ReferralOverview(invitee_count=ties.invitee_count)
        rows, phones = await asyncio.gather(self.search_store.among(merchant_id, SearchFilter(), ids),
                                            self._phones(merchant_id, ids))
        by_id = {r.member_id: r for r in rows}

        def card(member_id: str) -> MemberCard | None:
            row = by_id.get(member_id)
            if row is None:
                return None
            shown = replace(row, nickname=mask_nickname(row.nickname))
            return self._card(shown, config, phones.get(member_id, ""), None)

        invitees = tuple(c for c in (card(i) for i in ties.invitee_ids) if c is not None)
        return ReferralOverview(referrer=card(ties.referrer_id) if ties.referrer_id else None,
                                invitee_count=ties.invitee_count, invitees=invitees)


def _reduced(profile: Profile) -> Profile:
    """A GUIDE's profile: the birthday's month and day (to wish them well), not its year;
    no region."""
    birthday = replace(profile.birthday, year=0) if profile.birthday else None
    return replace(profile, birthday=birthday, region_code="")


async def _none():
    return None


async def _empty() -> dict:
    return {}
