"""The birthday benefit: a job, run often on every replica, that gives each member whose
birthday is due (services/member/domain/birthday.py: today in the merchant's time zone or
up to CATCH_UP_DAYS back) the birthday coupon of their tier, once per member and year.

The reward of a member and year is claimed first (a unique key) together with the template
of the member's tier at that moment; the coupon is then issued for the cause BIRTHDAY and
the year, idempotent by its claim key. Two runs, a late run or three replicas at once
therefore find the same claim and the same template and issue nothing more, and a run
that stopped between the claim and the coupon is finished by the next one. A refused
issue (the template paused or sold out) leaves the claim open: later runs try again while
the birthday is in the window."""
from __future__ import annotations

from datetime import datetime
from typing import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.member.application.ports import MerchantRepository, PointsLedger
from services.member.application.profile_ports import BirthdayCoupons, BirthdayStore
from services.member.domain import birthday as rules
from services.member.domain import tiers
from services.member.domain.config import TIERS
from services.member.domain.coupons import BIRTHDAY
from siyu_kit import logging as slog
from siyu_kit.errors import NotFound
from siyu_kit.protos import utcnow

log = slog.get("siyu.member.birthday")

PAGE = 200


class BirthdayBenefit:
    def __init__(self, store: BirthdayStore, merchants: MerchantRepository, ledger: PointsLedger,
                 coupons: BirthdayCoupons, clock: Callable[[], datetime] = utcnow,
                 catch_up_days: int = rules.CATCH_UP_DAYS):
        self.store = store
        self.merchants = merchants
        self.ledger = ledger
        self.coupons = coupons
        self.clock = clock
        self.catch_up_days = catch_up_days

    async def run(self) -> int:
        """One pass over every merchant: the coupons issued."""
        issued = 0
        for merchant_id, zone in await self.store.merchant_zones():
            issued += await self.run_merchant(merchant_id, zone)
        return issued

    async def run_merchant(self, merchant_id: str, zone: str) -> int:
        try:
            today = self.clock().astimezone(ZoneInfo(zone)).date()
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("birthday.bad_time_zone", merchant_id=merchant_id, time_zone=zone)
            return 0
        month_days = rules.month_days_due(today, self.catch_up_days)
        issued, after = 0, ""
        while True:
            page = await self.store.born_on(merchant_id, month_days, after, PAGE)
            for member_id, month_day in page:
                year = rules.due_year(month_day, today, self.catch_up_days)
                if year is not None and await self._reward(merchant_id, member_id, year):
                    issued += 1
            if len(page) < PAGE:
                return issued
            after = page[-1][0]

    async def _template_of(self, merchant_id: str, member_id: str) -> str:
        merchant = await self.merchants.get(merchant_id)
        if merchant is None:
            return ""
        growth = (await self.ledger.account(merchant_id, member_id)).growth
        tier = tiers.tier_for(growth, merchant.config)
        return merchant.config.birthday_coupon_template_ids[TIERS.index(tier)]

    async def _reward(self, merchant_id: str, member_id: str, year: int) -> bool:
        key = rules.reward_key(member_id, year)
        claim = await self.store.reward_of(merchant_id, key)
        if claim is None:
            template_id = await self._template_of(merchant_id, member_id)
            if not template_id:
                return False  # the member's tier has no birthday coupon
            claim = await self.store.claim(merchant_id, member_id, key, template_id)
        if claim.done:
            return False
        try:
            outcome = await self.coupons.reward(merchant_id, member_id, claim.template_id, BIRTHDAY, str(year))
        except NotFound:
            log.warning("birthday.template_gone", merchant_id=merchant_id, template_id=claim.template_id)
            return False
        if outcome.coupon is None:
            log.info("birthday.refused", merchant_id=merchant_id, member_id=member_id, reason=outcome.refused)
            return False
        await self.store.finish(merchant_id, key, outcome.coupon.id)
        return not outcome.repeated
