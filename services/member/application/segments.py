"""Member statistics from order events, the facts job, manual tags, RFM settings and
segments (标签 / 用户分层).

The statistics consumer applies each order event once per cause (the order id and the
kind, a refund's id too): a paid order adds one order and its payable to the day it was
paid, a refund takes its amount off that same day. Replays and redeliveries change nothing.
The content service's follow events keep the member's followed personas: per persona the
newest event wins (rules.follow_mark), whatever order they arrive in.

A member's facts document is what segments query: RFM scores and group, tags (manual and
automatic), 365-day figures, last order, channel, tier, registration, birthday month and
marketing consent. The facts job keeps it: members whose statistics changed at once, and a
sweep over every member in id order (new members as they come, all of them again each
day, since recency and the window move with time). Several replicas may run it: the sweep
is leased, facts are written only when not older than what is stored, and statistics are
marked done (expired day buckets dropped) by one update conditional on the version read, so
a member changed meanwhile is recomputed next time. Member events (registration, profile,
consent) refresh one member's facts at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from services.member.application.ports import MemberRepository, MerchantRepository
from services.member.application.segment_ports import (FactsStore, GrantTargets, MemberSide, RfmSettingsStore,
                                                       SegmentStore, StatsStore, SweepProgress, TagStore)
from services.member.domain import segments as rules
from services.member.domain.coupons import GrantJob, audience_marketing, audience_segment
from services.member.domain.segments import MemberStats, RfmSettings, Rule, Segment, Tag, TagGroup
from services.member.domain.tiers import tier_for
from siyu_kit import context, paging
from siyu_kit import logging as slog
from siyu_kit.errors import Conflict, FailedPrecondition, FieldViolation, InvalidArgument, NotFound, Violations
from siyu_kit.ids import new_id
from siyu_kit.protos import utcnow

log = slog.get("siyu.member.segments")

BATCH = 500
SWEEP_PAGES = 20          # pages of the sweep per run
SWEEP_LEASE_MS = 30_000     # renewed at every page, so a restarted replica waits at most this long


@dataclass(frozen=True)
class OrderFact:
    """A paid order or a refund, as the statistics see it."""
    merchant_id: str
    member_id: str
    order_id: str
    paid_at: datetime
    amount: int                 # payable when paid, the refund's amount when refunded
    channel: str = ""
    refund_id: str = ""         # set for a refund


@dataclass(frozen=True)
class FollowFact:
    """A member following or unfollowing a persona, as the statistics see it."""
    merchant_id: str
    member_id: str
    persona_id: str
    at_ms: int
    follows: bool


def _invalid(problems: list[tuple[str, str]], prefix: str = "") -> None:
    if problems:
        raise InvalidArgument("the request has invalid fields", reason="INVALID_FIELDS",
                              violations=[FieldViolation(prefix + f, d) for f, d in problems])


class MemberStatistics:
    def __init__(self, stats: StatsStore, facts: FactsStore, settings: RfmSettingsStore, side: MemberSide,
                 progress: SweepProgress, merchants: MerchantRepository, clock: Callable[[], datetime] = utcnow,
                 holder: str = ""):
        self.stats = stats
        self.facts = facts
        self.settings = settings
        self.side = side
        self.progress = progress
        self.merchants = merchants
        self.clock = clock
        self.holder = holder or new_id("fsw")

    # ---- consumers ------------------------------------------------------------------------
    async def on_paid(self, order: OrderFact) -> bool:
        return await self.stats.apply(order.merchant_id, order.member_id, f"{order.order_id}:paid",
                                      rules.day_key(order.paid_at), 1, max(order.amount, 0),
                                      int(order.paid_at.timestamp() * 1000), order.channel, 0)

    async def on_refunded(self, order: OrderFact) -> bool:
        if order.amount <= 0:
            return False
        return await self.stats.apply(order.merchant_id, order.member_id,
                                      f"{order.order_id}:refund:{order.refund_id}", rules.day_key(order.paid_at),
                                      0, -order.amount, 0, "", 1)

    async def on_follow(self, follow: FollowFact) -> bool:
        """Applied only when newer than the persona's last event for the member; the job
        derives the facts."""
        return await self.stats.follow(follow.merchant_id, follow.member_id, follow.persona_id,
                                       rules.follow_mark(follow.at_ms, follow.follows))

    async def refresh(self, merchant_id: str, member_id: str) -> bool:
        """Derives one member's facts now (after a member event or before tagging)."""
        side = (await self.side.of(merchant_id, [member_id])).get(member_id)
        if side is None:
            return False
        stats = (await self.stats.of(merchant_id, [member_id])).get(member_id) or MemberStats(merchant_id, member_id)
        # The job settles changed statistics.
        await self.facts.put(merchant_id, member_id, stats.version, await self._facts(stats, side, self.clock(), {}))
        return True

    # ---- the facts job ----------------------------------------------------------------------
    async def recompute(self) -> int:
        """Members whose statistics changed, then a slice of the sweep; how many were done.
        A batch is one read of statistics, one of the member side, one bulk write of facts
        and one of the settled statistics."""
        now = self.clock()
        done = 0
        cache: dict[str, Any] = {}
        while True:
            rows = await self.stats.changed(BATCH)
            for merchant_id, batch in _by_merchant(rows, lambda s: s.merchant_id).items():
                sides = await self.side.of(merchant_id, [s.member_id for s in batch])
                await self._write_many(merchant_id, [(s, sides.get(s.member_id) or {}) for s in batch], now, cache)
            # Settled only where the statistics are still as read: a member changed meanwhile comes again.
            progressed = await self.stats.settle_many([(s, s.expired_days(now)) for s in rows])
            done += progressed
            if progressed == 0 or len(rows) < BATCH:
                break
        done += await self.sweep(now, cache)
        if done:
            log.info("segments.recomputed", members=done)
        return done

    async def sweep(self, now: datetime, cache: dict[str, Any]) -> int:
        now_ms = int(now.timestamp() * 1000)
        claimed = await self.progress.claim(self.holder, now_ms, now_ms + SWEEP_LEASE_MS)
        if claimed is None:
            return 0
        day, after_id = claimed
        today = rules.day_key(now)
        if day != today:
            day, after_id = today, ""          # a new day: every member again
        done = 0
        for _ in range(SWEEP_PAGES):
            rows = await self.side.page(after_id, BATCH)
            if not rows:
                break
            for merchant_id, batch in _by_merchant(rows, lambda r: r[0]).items():
                found = await self.stats.of(merchant_id, [member_id for _, member_id, _ in batch])
                await self._write_many(merchant_id, [(found.get(member_id) or MemberStats(merchant_id, member_id), side)
                                                     for _, member_id, side in batch], now, cache)
                done += len(batch)
            after_id = rows[-1][1]
            if not await self.progress.advance(self.holder, day, after_id, now_ms + SWEEP_LEASE_MS):
                break                          # the lease went to another replica
        return done

    async def _settings(self, merchant_id: str, cache: dict[str, Any]) -> tuple[RfmSettings, Any]:
        if merchant_id not in cache:
            merchant = await self.merchants.get(merchant_id)
            cache[merchant_id] = (await self.settings.get(merchant_id), merchant.config if merchant else None)
        return cache[merchant_id]

    async def _facts(self, stats: MemberStats, side: dict[str, Any], now: datetime,
                     cache: dict[str, Any]) -> dict[str, Any]:
        settings, config = await self._settings(stats.merchant_id, cache)
        facts = rules.derived_facts(stats, settings, now)
        if side:
            facts |= {"registered_ms": int(side.get("registered_ms") or 0),
                      "birthday_month": int(side.get("birthday_month") or 0),
                      "consent": int(bool(side.get("consent"))),
                      "tier": tier_for(int(side.get("growth") or 0), config) if config is not None else ""}
        return facts

    async def _write_many(self, merchant_id: str, rows: list[tuple[MemberStats, dict[str, Any]]], now: datetime,
                          cache: dict[str, Any]) -> int:
        items = [(stats.member_id, stats.version, await self._facts(stats, side, now, cache)) for stats, side in rows]
        return await self.facts.put_many(merchant_id, items)


def _by_merchant(rows: list, merchant_of: Callable[[Any], str]) -> dict[str, list]:
    out: dict[str, list] = {}
    for row in rows:
        out.setdefault(merchant_of(row), []).append(row)
    return out


class Segments:
    """The staff's RFM settings, manual tags and saved segments (OPERATOR)."""

    def __init__(self, statistics: MemberStatistics, tags: TagStore, segments: SegmentStore,
                 members: MemberRepository, clock: Callable[[], datetime] = utcnow):
        self.statistics = statistics
        self.tags = tags
        self.segments = segments
        self.members = members
        self.clock = clock

    @staticmethod
    def _operator() -> str:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        return ctx.merchant_id

    # ---- RFM settings ----------------------------------------------------------------------
    async def get_settings(self) -> RfmSettings:
        return await self.statistics.settings.get(self._operator())

    async def update_settings(self, settings: RfmSettings) -> RfmSettings:
        merchant_id = self._operator()
        _invalid(settings.violations(), "settings.")
        await self.statistics.settings.put(merchant_id, settings)
        return settings

    # ---- tags ------------------------------------------------------------------------------
    async def tag_groups(self) -> tuple[list[TagGroup], list[Tag]]:
        merchant_id = self._operator()
        return await self.tags.groups(merchant_id), await self.tags.tags(merchant_id)

    async def create_group(self, name: str) -> TagGroup:
        merchant_id = self._operator()
        if len(await self.tags.groups(merchant_id)) >= rules.MAX_TAG_GROUPS:
            raise FailedPrecondition("the merchant has as many tag groups as allowed", reason="SEGMENT_LIMIT_REACHED")
        group = TagGroup(new_id("tgg"), merchant_id, name.strip())
        if not await self.tags.add_group(group):
            raise Conflict("a tag group of this name exists", reason="TAG_NAME_TAKEN")
        return group

    async def delete_group(self, group_id: str) -> None:
        merchant_id = self._operator()
        if group_id not in {g.id for g in await self.tags.groups(merchant_id)}:
            raise NotFound("no such tag group")
        if any(t.group_id == group_id for t in await self.tags.tags(merchant_id)):
            raise FailedPrecondition("the tag group still holds tags", reason="TAG_GROUP_NOT_EMPTY")
        await self.tags.remove_group(merchant_id, group_id)

    async def create_tag(self, group_id: str, name: str) -> Tag:
        merchant_id = self._operator()
        if group_id not in {g.id for g in await self.tags.groups(merchant_id)}:
            raise NotFound("no such tag group")
        if len(await self.tags.tags(merchant_id)) >= rules.MAX_TAGS:
            raise FailedPrecondition("the merchant has as many tags as allowed", reason="SEGMENT_LIMIT_REACHED")
        tag = Tag(new_id("tag"), merchant_id, group_id, name.strip())
        if not await self.tags.add_tag(tag):
            raise Conflict("a tag of this name exists", reason="TAG_NAME_TAKEN")
        return tag

    async def _tag(self, merchant_id: str, tag_id: str) -> Tag:
        for tag in await self.tags.tags(merchant_id):
            if tag.id == tag_id:
                return tag
        raise NotFound("no such tag")

    async def delete_tag(self, tag_id: str) -> None:
        merchant_id = self._operator()
        await self._tag(merchant_id, tag_id)
        if await self.statistics.facts.carrying(merchant_id, tag_id):
            raise FailedPrecondition("members still carry the tag", reason="TAG_IN_USE")
        await self.tags.remove_tag(merchant_id, tag_id)

    async def retag(self, tag_id: str, member_ids: list[str], add: bool) -> tuple[int, list[str]]:
        """Tags or untags members: (how many changed, ids that are not the merchant's members)."""
        merchant_id = self._operator()
        await self._tag(merchant_id, tag_id)
        ids = list(dict.fromkeys(member_ids))
        known = set((await self.statistics.side.of(merchant_id, ids)).keys())
        unknown = [i for i in ids if i not in known]
        targets = [i for i in ids if i in known]
        have = await self.statistics.facts.existing(merchant_id, targets)
        for member_id in targets:
            if member_id not in have:
                await self.statistics.refresh(merchant_id, member_id)
        changed = await self.statistics.facts.retag(merchant_id, targets, [tag_id] if add else [],
                                                    [] if add else [tag_id])
        return changed, unknown

    # ---- segments ----------------------------------------------------------------------------
    def _query(self, merchant_id: str, rule: Rule) -> dict:
        return rules.to_query(rule, merchant_id, self.clock())

    async def preview(self, rule: Rule) -> int:
        merchant_id = self._operator()
        _invalid(rules.rule_violations(rule))
        return await self.statistics.facts.count(self._query(merchant_id, rule))

    async def create(self, name: str, rule: Rule) -> Segment:
        merchant_id = self._operator()
        _invalid(rules.rule_violations(rule))
        if await self.segments.count(merchant_id) >= rules.MAX_SEGMENTS:
            raise FailedPrecondition("the merchant has as many segments as allowed", reason="SEGMENT_LIMIT_REACHED")
        segment = Segment(new_id("seg"), merchant_id, name.strip(), rule, self.clock())
        await self.segments.add(segment)
        return segment

    async def get(self, segment_id: str) -> tuple[Segment, int]:
        merchant_id = self._operator()
        segment = await self.of(merchant_id, segment_id)
        return segment, await self.statistics.facts.count(self._query(merchant_id, segment.rule))

    async def of(self, merchant_id: str, segment_id: str) -> Segment:
        segment = await self.segments.get(merchant_id, segment_id)
        if segment is None:
            raise NotFound("no such segment")
        return segment

    async def list(self, page_size: int, page_token: str) -> tuple[list[Segment], str]:
        merchant_id = self._operator()
        v = Violations()
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(listing="segments")
        before = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        return paging.next_page(await self.segments.page(merchant_id, before, size + 1), size, fp)

    async def members_of(self, segment_id: str, page_size: int, page_token: str) -> tuple[list[str], str]:
        merchant_id = self._operator()
        v = Violations()
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(listing="segment-members", segment=segment_id)
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        segment = await self.of(merchant_id, segment_id)
        return await self.page_members(segment, after, size)

    async def page_members(self, segment: Segment, after: str, size: int,
                           fp: str = "") -> tuple[list[str], str]:
        fp = fp or paging.fingerprint(listing="segment-members", segment=segment.id)
        ids = await self.statistics.facts.page(self._query(segment.merchant_id, segment.rule), after, size + 1)
        return paging.next_page(ids, size, fp, position=lambda member_id: member_id)

    async def delete(self, segment_id: str) -> None:
        merchant_id = self._operator()
        await self.of(merchant_id, segment_id)
        await self.segments.remove(merchant_id, segment_id)


TAKEN = "T:"           # a grant's cursor once its audience is taken: "T:<last member id given>"
TAKE_BATCH = 1_000


class SegmentAudience:
    """A coupon grant's audience over a segment (services.member.application.coupon_ports.
    GrantAudience): the members in the segment when the grant started. The job's first
    chunk takes them (one read of the matching ids, stored as the grant's targets), later
    chunks page the targets in member id order, the cursor the last member id given; a
    member who enters the segment afterwards is not in this grant, one who leaves still
    is. For a marketing template only members consenting when their chunk runs are given
    one. Each member's coupon is issued under the job's key, so a chunk run again after a
    restart gives nobody a second one (and a restart while the audience is taken takes it
    again, before any coupon is issued)."""

    def __init__(self, segments: Segments, targets: GrantTargets):
        self.segments = segments
        self.targets = targets

    async def exists(self, merchant_id: str, segment_id: str) -> bool:
        return await self.segments.segments.get(merchant_id, segment_id) is not None

    def _query(self, merchant_id: str, rule: Rule) -> dict:
        return rules.to_query(rule, merchant_id, self.segments.clock())

    async def page(self, job: GrantJob, cursor: str, limit: int) -> tuple[list[str], str, bool]:
        facts = self.segments.statistics.facts
        if cursor.startswith(TAKEN):
            ids = await self.targets.page(job.merchant_id, job.id, cursor[len(TAKEN):], limit + 1)
            finished = len(ids) <= limit
            ids = ids[:limit]
            if ids and audience_marketing(job.audience):
                consenting = await facts.consenting(job.merchant_id, ids)
                given = [m for m in ids if m in consenting]
            else:
                given = ids
            return given, (TAKEN + ids[-1] if ids else cursor), finished
        segment = await self.segments.segments.get(job.merchant_id, audience_segment(job.audience))
        if segment is None:
            return [], cursor, True          # deleted meanwhile: the grant ends
        rule = segment.rule
        if audience_marketing(job.audience):
            rule = Rule(conditions=(rules.Condition("marketing_consent", "in", (1,)),), rules=(rule,))
        if cursor:                           # a grant started before audiences were taken: the live segment
            ids = await facts.page(self._query(job.merchant_id, rule), cursor, limit + 1)
            finished = len(ids) <= limit
            ids = ids[:limit]
            return ids, (ids[-1] if ids else cursor), finished
        members = sorted(await facts.matching(self._query(job.merchant_id, rule)))
        for start in range(0, len(members), TAKE_BATCH):
            await self.targets.add(job.merchant_id, job.id, members[start:start + TAKE_BATCH])
        return [], TAKEN, not members

