"""What the profile and birthday use cases need from outside, besides the member service's
shared ports (members, phones, merchants, ledger, audit log). Every method is async;
implementations live in services/member/adapters/profile_store.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.member.domain.profile import Profile


class ProfileRepository(Protocol):
    async def get(self, merchant_id: str, member_id: str) -> Profile | None:
        """The member's profile (None: no such member of the merchant); phone_masked empty."""

    async def save(self, profile: Profile) -> None:
        """Writes the changed fields and their events on the version read; StaleVersion when
        another writer came first."""


@dataclass(frozen=True)
class BirthdayReward:
    """A member's birthday reward of one year: the template chosen when it was first
    claimed (their tier's then), and whether the coupon was issued."""
    key: str
    template_id: str
    done: bool


class BirthdayStore(Protocol):
    async def merchant_zones(self) -> list[tuple[str, str]]:
        """(merchant id, IANA time zone) of every merchant whose tiers name a birthday coupon."""

    async def born_on(self, merchant_id: str, month_days: list[str], after_id: str,
                      limit: int) -> list[tuple[str, str]]:
        """(member id, "MM-DD") of the merchant's members whose birthday is one of
        `month_days`, in id order after `after_id`."""

    async def reward_of(self, merchant_id: str, key: str) -> BirthdayReward | None: ...

    async def claim(self, merchant_id: str, member_id: str, key: str, template_id: str) -> BirthdayReward:
        """The member's reward of this key: inserted with `template_id` when there is none
        yet (a unique key), else the one stored first, whoever stored it."""

    async def finish(self, merchant_id: str, key: str, coupon_id: str) -> None:
        """Marks the reward issued (repeats change nothing)."""


class CouponTemplateLookup(Protocol):
    async def get(self, merchant_id: str, template_id: str):
        """The merchant's coupon template, None when it has none of this id."""


class BirthdayCoupons(Protocol):
    async def reward(self, merchant_id: str, member_id: str, template_id: str, source: str, cause_id: str):
        """Issues one coupon for a cause, once per cause and template (the coupon use cases)."""
