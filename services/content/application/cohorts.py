"""Keeping per-member order facts from order events, and the repeat-purchase, cohort
retention and lifetime-value report built from them."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from siyu_kit import context
from siyu_kit.errors import Violations
from siyu_kit.money import DEFAULT_CURRENCY

from services.content.application.clock import Clock, from_ms, now_ms
from services.content.application.ports import PurchaseRepository
from services.content.domain import cohorts
from services.content.domain.cohorts import FirstPurchase, Group
from services.content.domain.funnels import DEFAULT_TIME_ZONE


@dataclass(frozen=True)
class PaidFact:
    merchant_id: str
    member_id: str
    order_id: str
    paid_at: datetime
    amount: int  # minor units
    channel: str = ""
    persona_id: str = ""


@dataclass(frozen=True)
class RefundFact:
    merchant_id: str
    member_id: str
    order_id: str
    refund_id: str
    amount: int


class CohortUseCases:
    def __init__(self, repo: PurchaseRepository, clock: Clock = now_ms, time_zone: str = DEFAULT_TIME_ZONE):
        self.repo = repo
        self.clock = clock
        self.time_zone = time_zone

    async def record_paid(self, fact: PaidFact) -> None:
        """Idempotent: the same order paid again sets the same facts."""
        paid_ms = int(fact.paid_at.astimezone(timezone.utc).timestamp() * 1000)
        month = cohorts.month_of(fact.paid_at, self.time_zone)
        await self.repo.paid(fact.merchant_id, fact.order_id, paid_ms, fact.amount,
                             FirstPurchase(member_id=fact.member_id, month=month, channel=fact.channel,
                                           persona_id=fact.persona_id))

    async def record_refund(self, fact: RefundFact) -> bool:
        """Once per refund id; False for a refund counted already."""
        return await self.repo.refunded(fact.merchant_id, fact.member_id, fact.order_id, fact.refund_id, fact.amount)

    async def forget_member(self, merchant_id: str, member_id: str) -> int:
        """For an erased member (PIPL): their purchase facts go, and the reports count them no
        more. Idempotent; the content service's erasure handler calls it."""
        return await self.repo.forget_member(merchant_id, member_id)

    async def report(self, from_month: str, to_month: str, grouping: str) -> tuple[list[Group], str, str]:
        """Cohorts first buying in [from_month, to_month], their retention up to this month,
        repeat-purchase rate and lifetime value; the groups, the current month, the currency."""
        ctx = context.current()
        merchant_id = ctx.require_merchant()
        ctx.require_staff("OPERATOR")
        v = Violations()
        start, end = cohorts.parse_month(from_month), cohorts.parse_month(to_month)
        v.check(start is not None, "from_month", "a month, yyyy-mm")
        v.check(end is not None, "to_month", "a month, yyyy-mm")
        v.check(grouping in cohorts.GROUPINGS, "group_by", "ALL, CHANNEL or PERSONA")
        if start is not None and end is not None and v.check(to_month >= from_month, "to_month",
                                                             "on or after from_month"):
            v.check(cohorts.month_index(to_month) - cohorts.month_index(from_month) < cohorts.MAX_COHORT_MONTHS,
                    "to_month", f"at most {cohorts.MAX_COHORT_MONTHS} months from from_month")
        v.raise_if_any()
        through = cohorts.month_of(from_ms(self.clock()), self.time_zone)
        firsts = await self.repo.firsts(merchant_id, from_month, to_month)
        since = cohorts.month_start(from_month, self.time_zone)
        orders = await self.repo.orders(merchant_id, int(since.timestamp() * 1000)) if firsts else []
        return cohorts.report(firsts, orders, from_month, to_month, through, grouping), through, DEFAULT_CURRENCY
