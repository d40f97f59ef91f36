"""A member's profile: nickname, avatar, birthday, gender, region, marketing consent (with
the time it was last given or withdrawn) and the personalised recommendations switch
(PIPL Art. 24: off means recommendations must not use the member's profile or history).

The birthday decides the birthday coupon, so a member sets it once; after that only staff
change it (brands do this so that a birthday cannot be moved around the calendar to
collect the coupon again and again). The phone is not part of the profile's changes: it is
bound by a verification (WeChat or SMS) and only ever shown masked here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from siyu_kit.aggregate import Aggregate
from siyu_kit.errors import FailedPrecondition, Violations

from services.member.domain import regions
from services.member.domain.birthday import Birthday, check_birthday

NICKNAME_MAX = 64
AVATAR_MAX = 512
GENDERS = ("", "FEMALE", "MALE", "OTHER")  # "": not told
_AVATAR = re.compile(r"^https://\S+$")

MEMBER = "member"
STAFF = "staff"


@dataclass(frozen=True)
class ProfileChanges:
    """What a member asks to change; None leaves a field as it is."""
    nickname: str | None = None
    avatar_url: str | None = None
    birthday: Birthday | None = None
    gender: str | None = None
    region_code: str | None = None
    personalised_recommendations: bool | None = None


@dataclass(frozen=True)
class MemberProfileUpdated:
    member_id: str
    changed: tuple[str, ...]
    at: datetime


@dataclass(frozen=True)
class MarketingConsentChanged:
    member_id: str
    consent: bool
    at: datetime


def check_changes(changes: ProfileChanges, today: date) -> None:
    """INVALID_ARGUMENT naming every offending field."""
    v = Violations()
    if changes.nickname is not None:
        v.check(0 < len(changes.nickname.strip()) <= NICKNAME_MAX, "nickname", f"1 to {NICKNAME_MAX} characters")
    if changes.avatar_url:
        v.check(len(changes.avatar_url) <= AVATAR_MAX and bool(_AVATAR.match(changes.avatar_url)), "avatar_url",
                f"an https URL of at most {AVATAR_MAX} characters")
    if changes.birthday is not None:
        check_birthday(v, "birthday", changes.birthday, today)
    if changes.gender is not None:
        v.check(changes.gender in GENDERS, "gender", "FEMALE, MALE, OTHER or unspecified")
    if changes.region_code:
        v.check(regions.name_of(changes.region_code) is not None, "region_code",
                "a known GB/T 2260 region code")
    v.raise_if_any()


@dataclass
class Profile(Aggregate):
    member_id: str
    merchant_id: str
    version: int
    nickname: str = ""
    avatar_url: str = ""
    birthday: Birthday | None = None
    birthday_set_by: str = ""  # MEMBER or STAFF; "" while unset
    gender: str = ""
    region_code: str = ""
    marketing_consent: bool = False
    consent_changed_at: datetime | None = None
    personalised_recommendations: bool = True
    phone_masked: str = ""
    changed: tuple[str, ...] = field(default=())

    @property
    def id(self) -> str:
        return self.member_id

    @property
    def birthday_locked(self) -> bool:
        return self.birthday is not None

    @property
    def region_name(self) -> str:
        return regions.name_of(self.region_code) or "" if self.region_code else ""

    def update(self, changes: ProfileChanges, now: datetime, today: date) -> bool:
        """Applies the member's changes; False (and nothing recorded) when nothing differs.
        A birthday already set may be sent again unchanged, never changed."""
        check_changes(changes, today)
        new = {"nickname": changes.nickname.strip() if changes.nickname is not None else None,
               "avatar_url": changes.avatar_url, "gender": changes.gender, "region_code": changes.region_code,
               "personalised_recommendations": changes.personalised_recommendations}
        if changes.birthday is not None and changes.birthday != self.birthday:
            if self.birthday_locked:
                raise FailedPrecondition("the birthday was set already; ask the shop to correct it",
                                         reason="PROFILE_BIRTHDAY_LOCKED")
            new["birthday"] = changes.birthday
            self.birthday_set_by = MEMBER
        changed = tuple(name for name, value in new.items() if value is not None and getattr(self, name) != value)
        for name in changed:
            setattr(self, name, new[name])
        return self._changed(changed, now)

    def correct_birthday(self, birthday: Birthday, now: datetime, today: date) -> bool:
        """Staff's correction: allowed whether or not the member set one."""
        v = Violations()
        check_birthday(v, "birthday", birthday, today)
        v.raise_if_any()
        if birthday == self.birthday:
            return False
        self.birthday, self.birthday_set_by = birthday, STAFF
        return self._changed(("birthday",), now)

    def set_consent(self, consent: bool, now: datetime) -> bool:
        """Gives or withdraws marketing consent; the time of the change is kept. The same
        answer again changes nothing, so the time stays that of the real change."""
        if consent == self.marketing_consent and self.consent_changed_at is not None:
            return False
        self.marketing_consent, self.consent_changed_at = consent, now
        self.changed = ("marketing_consent",)
        self.record(MarketingConsentChanged(self.member_id, consent, now))
        return True

    def _changed(self, changed: tuple[str, ...], now: datetime) -> bool:
        if not changed:
            return False
        self.changed = changed
        self.record(MemberProfileUpdated(self.member_id, changed, now))
        return True
