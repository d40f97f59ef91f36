"""The member's profile (PIPL: what is kept about them, and their consent), the staff's
view of a member's full phone and their correction of a birthday.

A phone is verified and bound elsewhere (WeChat, SMS); here it is only shown: masked to the
member and to staff, in full only to an OWNER who gives a reason, and each such view is
in the audit log (written before the phone is returned)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Callable
from zoneinfo import ZoneInfo

from services.member.application.ports import AuditLog, MemberRepository, MerchantRepository, PhoneBook
from services.member.application.profile_ports import ProfileRepository
from services.member.domain import admin as audit_rules
from services.member.domain.admin import AuditEntry
from services.member.domain.birthday import Birthday, check_birthday
from services.member.domain.config import DEFAULT_TIME_ZONE
from services.member.domain.profile import Profile, ProfileChanges, check_changes
from siyu_kit import context, retry
from siyu_kit.errors import Conflict, FailedPrecondition, NotFound, Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.logging import mask_phone
from siyu_kit.protos import utcnow

REASON_MIN, REASON_MAX = 2, 200


class Profiles:
    def __init__(self, profiles: ProfileRepository, members: MemberRepository, phones: PhoneBook | None,
                 merchants: MerchantRepository, audit: AuditLog, clock: Callable[[], datetime] = utcnow):
        self.profiles = profiles
        self.members = members
        self.phones = phones
        self.merchants = merchants
        self.audit = audit
        self.clock = clock

    async def _today(self, merchant_id: str, now: datetime) -> date:
        merchant = await self.merchants.get(merchant_id)
        return now.astimezone(ZoneInfo(merchant.time_zone if merchant else DEFAULT_TIME_ZONE)).date()

    async def _phone(self, merchant_id: str, member_id: str) -> str:
        """The verified phone, opened: sealed in the phone book, or, for a member stored
        before phones were sealed, the clear value the backfill has not sealed yet."""
        phone = await self.phones.phone_of(merchant_id, member_id) if self.phones else ""
        if not phone:
            member = await self.members.get(merchant_id, member_id)
            phone = member.phone if member else ""
        return phone

    async def _load(self, merchant_id: str, member_id: str) -> Profile:
        profile = await self.profiles.get(merchant_id, member_id)
        if profile is None:
            raise NotFound("no such member")
        return profile

    async def _shown(self, profile: Profile) -> Profile:
        phone = await self._phone(profile.merchant_id, profile.member_id)
        profile.phone_masked = mask_phone(phone) if phone else ""
        return profile

    # ---- the member ------------------------------------------------------------------------
    async def my_profile(self) -> Profile:
        ctx = context.current()
        member_id = ctx.require_member()
        return await self._shown(await self._load(ctx.merchant_id, member_id))

    async def update_my_profile(self, changes: ProfileChanges, expected_version: int) -> Profile:
        ctx = context.current()
        member_id = ctx.require_member()
        now = self.clock()
        today = await self._today(ctx.merchant_id, now)
        v = Violations()
        v.check(expected_version >= 1, "expected_version", "the version read with GetMyProfile")
        v.raise_if_any()
        check_changes(changes, today)

        async def attempt() -> Profile:
            profile = await self._load(ctx.merchant_id, member_id)
            if profile.version != expected_version:
                raise Conflict("the profile changed since it was read; read it again", reason="VERSION_CONFLICT")
            if profile.update(changes, now, today):
                await self.profiles.save(profile)
            return profile

        profile = await retry.on_conflict(attempt, gave_up="the profile changed; try again")
        return await self._shown(profile)

    async def set_marketing_consent(self, consent: bool) -> Profile:
        ctx = context.current()
        member_id = ctx.require_member()

        async def attempt() -> Profile:
            profile = await self._load(ctx.merchant_id, member_id)
            if profile.set_consent(consent, self.clock()):
                await self.profiles.save(profile)
            return profile

        return await self._shown(await retry.on_conflict(attempt, gave_up="the profile changed; try again"))

    # ---- staff -----------------------------------------------------------------------------------
    async def reveal_phone(self, member_id: str, reason: str) -> str:
        """The full phone, for an OWNER only; audited before it is returned."""
        ctx = context.current()
        ctx.require_staff("OWNER")
        reason = reason.strip()
        v = Violations()
        v.check(is_id(member_id, "mem"), "member_id", "a mem_ id")
        v.check(REASON_MIN <= len(reason) <= REASON_MAX, "reason", f"{REASON_MIN} to {REASON_MAX} characters")
        v.raise_if_any()
        await self._load(ctx.merchant_id, member_id)
        phone = await self._phone(ctx.merchant_id, member_id)
        if not phone:
            raise FailedPrecondition("the member has no verified phone", reason="MEMBER_PHONE_NOT_SET")
        await self.audit.add(AuditEntry(new_id("aud"), ctx.merchant_id, ctx.caller_kind, ctx.caller_id,
                                        audit_rules.MEMBER_PHONE_REVEALED, member_id, {},
                                        {"reason": reason, "phone": mask_phone(phone)}, self.clock()))
        return phone

    async def correct_birthday(self, member_id: str, birthday: Birthday, reason: str) -> Profile:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        reason = reason.strip()
        now = self.clock()
        v = Violations()
        v.check(is_id(member_id, "mem"), "member_id", "a mem_ id")
        v.check(REASON_MIN <= len(reason) <= REASON_MAX, "reason", f"{REASON_MIN} to {REASON_MAX} characters")
        today = await self._today(ctx.merchant_id, now)
        check_birthday(v, "birthday", birthday, today)
        v.raise_if_any()
        before: list[str] = []

        async def attempt() -> Profile:
            profile = await self._load(ctx.merchant_id, member_id)
            before[:] = [profile.birthday.month_day if profile.birthday else ""]
            if profile.correct_birthday(birthday, now, today):
                await self.profiles.save(profile)
                return profile
            before.clear()  # unchanged: nothing to audit
            return profile

        profile = await retry.on_conflict(attempt, gave_up="the profile changed; try again")
        if before:
            await self.audit.add(AuditEntry(new_id("aud"), ctx.merchant_id, ctx.caller_kind, ctx.caller_id,
                                            audit_rules.MEMBER_BIRTHDAY_CORRECTED, member_id,
                                            {"birthday": before[0]},
                                            {"birthday": birthday.month_day, "reason": reason}, now))
        return await self._shown(profile)
