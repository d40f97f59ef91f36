"""Member statistics from order events and the RFM recompute job.

The statistics consumer applies each order event once per cause (the order id and the
kind, a refund's id too): a paid order adds one order and its payable to the day it was
paid, a refund takes its amount off that same day. Replays and redeliveries change nothing.

The recompute job derives RFM scores, the automatic tags and the 365-day figures into the
member's facts document, for members whose statistics changed and, once a day, for every
member (recency moves with time). Several replicas may run it: facts are written only when
not older than what is stored, and a member's statistics are marked done (and expired day
buckets dropped) by one update conditional on the version read, so a member changed
meanwhile is recomputed next time.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from services.member.application.segment_ports import FactsStore, RfmSettingsStore, StatsStore
from services.member.domain import segments as rules
from services.member.domain.segments import MemberStats
from siyu_kit import logging as slog
from siyu_kit.protos import utcnow

log = slog.get("siyu.member.segments")

BATCH = 500


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


class MemberStatistics:
    def __init__(self, stats: StatsStore, facts: FactsStore, settings: RfmSettingsStore,
                 clock: Callable[[], datetime] = utcnow):
        self.stats = stats
        self.facts = facts
        self.settings = settings
        self.clock = clock

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

    # ---- the recompute job ------------------------------------------------------------------
    async def recompute(self) -> int:
        """Derives the facts of changed members, then the daily pass; how many were done."""
        done = 0
        now = self.clock()
        for batch in (lambda: self.stats.changed(BATCH), lambda: self.stats.stale(rules.day_key(now), BATCH)):
            while True:
                rows = await batch()
                if not rows:
                    break
                progressed = 0
                for stats in rows:
                    progressed += await self.derive(stats, now)
                done += progressed
                if progressed == 0 or len(rows) < BATCH:
                    break
        if done:
            log.info("segments.recomputed", members=done)
        return done

    async def derive(self, stats: MemberStats, now: datetime) -> int:
        settings = await self.settings.get(stats.merchant_id)
        facts = rules.derived_facts(stats, settings, now)
        await self.facts.put_derived(stats.merchant_id, stats.member_id, stats.version, facts)
        return int(await self.stats.settle(stats, stats.expired_days(now), rules.day_key(now)))
