"""The profile part of the member service's wiring: profiles over the member documents,
the staff's phone reveal, and the birthday benefit job.

The birthday job runs every SIYU_MEMBER_BIRTHDAY_JOB_INTERVAL_S (an hour by default) on
every replica: each run works out today in each merchant's time zone, so the benefit is
daily in local time however often it runs, and its rewards are unique per member and year,
so replicas and repeats issue nothing extra."""
from __future__ import annotations

from services.member.adapters import profile_store
from services.member.application.birthday import BirthdayBenefit
from services.member.application.coupons import CouponUseCases
from services.member.application.ports import (AuditLog, MemberRepository, MerchantRepository, PhoneBook,
                                               PointsLedger)
from services.member.application.profile import Profiles
from siyu_kit import service
from siyu_kit.config import env_seconds


def interval_s() -> float:
    return env_seconds("MEMBER_BIRTHDAY_JOB_INTERVAL_S", 3600)


def use_cases(members: MemberRepository, phones: PhoneBook, merchants: MerchantRepository,
              audit: AuditLog) -> Profiles:
    profile_store.ensure_indexes()
    return Profiles(profile_store.ProfileRepository(), members, phones, merchants, audit)


def jobs(merchants: MerchantRepository, ledger: PointsLedger, coupons: CouponUseCases) -> list[service.Job]:
    benefit = BirthdayBenefit(profile_store.BirthdayStore(), merchants, ledger, coupons)
    return [service.Job("member-birthday-benefit", interval_s(), benefit.run)]
