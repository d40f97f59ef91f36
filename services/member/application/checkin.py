"""Daily check-in (签到): the member checks in once per calendar day of the merchant, the
calendar page reads the month, and staff set the cycle.

A check-in is two writes and no transaction: the check-in itself (unique per member and
day, with its event), then its points as a movement of the points account whose cause is
the same member and day. The check-in is written first and says what it pays, so the
movement can be written again and again and applies once: a repeat that finds the
check-in unpaid pays it, and `repair` pays what a process that died in between left
unpaid. Neither a double tap nor a retry nor two devices pay twice.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from services.member.application.checkin_ports import CheckInSettingsStore, CheckInStore
from services.member.application.points import PointsMoves, Terms
from services.member.application.ports import AuditLog, MemberRepository, MerchantRepository, PointsLedger
from services.member.domain import admin as audit_rules
from services.member.domain import checkin as rules
from services.member.domain.admin import AuditEntry
from services.member.domain.checkin import Calendar, CheckIn, CheckInSettings
from services.member.domain.points_account import CHECK_IN, Cause, check_in_movement, lot_key
from siyu_kit import context
from siyu_kit import logging as slog
from siyu_kit.errors import Conflict, NotFound, Violations
from siyu_kit.ids import new_id
from siyu_kit.protos import epoch_ms, utcnow

log = slog.get("siyu.member.checkin")

# A check-in still unpaid this long after it was made lost its payment to a crash.
REPAIR_AFTER = timedelta(seconds=30)
REPAIR_BATCH = 100
MAX_VERSION = 1_000_000_000


class CheckIns:
    def __init__(self, check_ins: CheckInStore, settings: CheckInSettingsStore, members: MemberRepository,
                 merchants: MerchantRepository, ledger: PointsLedger, audit: AuditLog | None = None,
                 clock: Callable[[], datetime] = utcnow):
        self.check_ins = check_ins
        self.settings_store = settings
        self.members = members
        self.audit = audit
        self.clock = clock
        # The points economy's terms (time zone, lot expiry) and its move loop.
        self.points = PointsMoves(merchants, ledger, clock)

    # ---- the member ------------------------------------------------------------------------
    async def check_in(self) -> tuple[CheckIn, bool]:
        """Today's check-in and whether it had been made already (a repeat pays nothing)."""
        ctx = context.current()
        member_id = ctx.require_member()
        merchant_id = ctx.merchant_id
        await self._require_member(merchant_id, member_id)
        terms = await self.points.terms(merchant_id)
        now = self.clock()
        today = rules.business_day(now, terms.time_zone)
        found = await self.check_ins.get(merchant_id, member_id, today)
        repeat = found is not None
        if found is None:
            previous = await self.check_ins.get(merchant_id, member_id, today - timedelta(days=1))
            settings, _ = await self.settings_store.get(merchant_id)
            made = CheckIn.make(merchant_id, member_id, today, previous, settings, now, ctx.channel)
            if await self.check_ins.add(made):
                found = made
                log.info("checkin.made", member_id=member_id, day=rules.day_key(today), streak=made.streak,
                         points=made.points)
            else:
                # Another tap or device stored today's first: answer that one.
                found, repeat = await self.check_ins.get(merchant_id, member_id, today), True
                if found is None:
                    raise Conflict("the check-in changed while it was made; try again", reason="CONCURRENT_UPDATE")
        if not found.paid:
            await self._pay(found, terms)
        return found, repeat

    async def calendar(self, month: str) -> Calendar:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(not month or bool(rules.MONTH.match(month)), "month", "a month as YYYY-MM")
        v.raise_if_any()
        merchant_id = ctx.merchant_id
        await self._require_member(merchant_id, member_id)
        terms = await self.points.terms(merchant_id)
        today = rules.business_day(self.clock(), terms.time_zone)
        month = month or rules.month_of(today)
        first, last = rules.month_days(month)
        in_month = await self.check_ins.between(merchant_id, member_id, first, last)
        today_check_in = await self.check_ins.get(merchant_id, member_id, today)
        yesterday = await self.check_ins.get(merchant_id, member_id, today - timedelta(days=1))
        settings, _ = await self.settings_store.get(merchant_id)
        return rules.calendar(month, in_month, today, today_check_in, yesterday, settings)

    # ---- paying ------------------------------------------------------------------------------
    async def _pay(self, check_in: CheckIn, terms: Terms) -> None:
        """The check-in's points and growth, once: the movement's cause is its member and
        day, so paying again finds it applied."""
        day_id = rules.cause_id(check_in.member_id, check_in.day)
        key = lot_key(check_in.checked_in_at, terms.time_zone, terms.settings.expiry_years)
        await self.points.apply(
            check_in.merchant_id, check_in.member_id, Cause("CHECK_IN", day_id, CHECK_IN),
            lambda book: check_in_movement(book, day_id, check_in.points, check_in.growth, key), terms,
            check_in.channel)
        await self.check_ins.mark_paid(check_in)
        check_in.paid = True

    async def repair(self) -> int:
        """Pays the check-ins a crash left unpaid; how many. Safe on every replica at once:
        each payment applies once whoever makes it."""
        before = epoch_ms(self.clock() - REPAIR_AFTER)
        paid = 0
        for check_in in await self.check_ins.unpaid(before, REPAIR_BATCH):
            token = context.use(context.RequestContext(request_id=new_id("req"), merchant_id=check_in.merchant_id))
            try:
                await self._pay(check_in, await self.points.terms(check_in.merchant_id))
                paid += 1
            finally:
                context.reset(token)
        return paid

    # ---- staff -------------------------------------------------------------------------------
    async def settings(self) -> tuple[CheckInSettings, int]:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        return await self.settings_store.get(ctx.merchant_id)

    async def update_settings(self, settings: CheckInSettings, expected_version: int) -> tuple[CheckInSettings, int]:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        settings.check(v)
        v.check(0 <= expected_version <= MAX_VERSION, "expected_version",
                "the version read with GetCheckInSettings")
        v.raise_if_any()
        before, version = await self.settings_store.get(ctx.merchant_id)
        stale = Conflict("the check-in settings changed since they were read; read them again",
                         reason="VERSION_CONFLICT")
        if version != expected_version:
            raise stale
        new_version = await self.settings_store.put(ctx.merchant_id, settings, expected_version)
        if new_version is None:
            raise stale
        if self.audit is not None:
            await self.audit.add(AuditEntry(
                new_id("aud"), ctx.merchant_id, ctx.caller_kind, ctx.caller_id, audit_rules.CHECKIN_SETTINGS_UPDATED,
                audit_rules.CHECKIN_SETTINGS_TARGET, before.summary(), settings.summary(), self.clock()))
        return settings, new_version

    async def _require_member(self, merchant_id: str, member_id: str) -> None:
        if await self.members.get(merchant_id, member_id) is None:
            raise NotFound("no such member")
