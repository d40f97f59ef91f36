"""In-memory stand-ins for the profile and birthday ports
(services.member.application.profile_ports)."""
from __future__ import annotations

import copy
from dataclasses import dataclass

from services.member.application.profile_ports import BirthdayReward
from services.member.domain.profile import Profile
from tests.fakes.store import VersionedStore


class FakeProfiles(VersionedStore):
    """Profiles by member id; `events` keeps the domain events each save stored."""
    items: dict[str, Profile]

    def __init__(self):
        super().__init__()
        self.events: list = []

    async def get(self, merchant_id: str, member_id: str) -> Profile | None:
        found = self.items.get(member_id)
        return copy.deepcopy(found) if found is not None and found.merchant_id == merchant_id else None

    async def save(self, profile: Profile) -> None:
        events = profile.pull_events()
        self._compare_and_set(profile)
        self.events.extend(events)


class FakeBirthdayStore:
    """Merchants' time zones, members' birthdays ("MM-DD") and the rewards, unique by key."""

    def __init__(self):
        self.zones: dict[str, str] = {}
        self.birthdays: dict[str, tuple[str, str]] = {}  # member → (merchant, "MM-DD")
        self.rewards: dict[tuple[str, str], BirthdayReward] = {}
        self.lose_claims = 0  # that many claims find another replica's claim stored first

    async def merchant_zones(self) -> list[tuple[str, str]]:
        return sorted(self.zones.items())

    async def born_on(self, merchant_id: str, month_days: list[str], after_id: str,
                      limit: int) -> list[tuple[str, str]]:
        rows = sorted((m, md) for m, (mer, md) in self.birthdays.items()
                      if mer == merchant_id and md in month_days and m > after_id)
        return rows[:limit]

    async def reward_of(self, merchant_id: str, key: str) -> BirthdayReward | None:
        return self.rewards.get((merchant_id, key))

    async def claim(self, merchant_id: str, member_id: str, key: str, template_id: str) -> BirthdayReward:
        if self.lose_claims and (merchant_id, key) not in self.rewards:
            self.lose_claims -= 1
            self.rewards[(merchant_id, key)] = BirthdayReward(key, "cpt_OTHER_REPLICAS_CHOICE", False)
        return self.rewards.setdefault((merchant_id, key), BirthdayReward(key, template_id, False))

    async def finish(self, merchant_id: str, key: str, coupon_id: str) -> None:
        reward = self.rewards[(merchant_id, key)]
        self.rewards[(merchant_id, key)] = BirthdayReward(reward.key, reward.template_id, True)


@dataclass(frozen=True)
class _Coupon:
    id: str


@dataclass(frozen=True)
class _Issued:
    coupon: _Coupon | None
    refused: str = ""
    repeated: bool = False


class FakeBirthdayCoupons:
    """The coupon use cases' reward: one coupon per claim key; `refuse` answers that reason."""

    def __init__(self):
        self.issued: dict[str, tuple[str, str, str, str]] = {}  # claim key → (merchant, member, template, cause)
        self.refuse = ""

    async def reward(self, merchant_id: str, member_id: str, template_id: str, source: str, cause_id: str):
        if self.refuse:
            return _Issued(None, self.refuse)
        key = f"{source.lower()}:{cause_id}:{template_id}:{member_id}"
        repeated = key in self.issued
        self.issued.setdefault(key, (merchant_id, member_id, template_id, cause_id))
        return _Issued(_Coupon("cpn_" + key), repeated=repeated)
