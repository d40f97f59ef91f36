"""Member profiles over in-memory ports: validation naming each field with nothing
written, the version, the birthday set once by the member then corrected by staff only,
consent with the time of the change, the personalised recommendations switch, masking, and
the OWNER's audited phone reveal."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.member.application.profile import Profiles
from services.member.domain import admin as audit_rules
from services.member.domain.birthday import Birthday
from services.member.domain.members import Member
from services.member.domain.merchants import Merchant
from services.member.domain.profile import MarketingConsentChanged, MemberProfileUpdated, Profile, ProfileChanges
from siyu_kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from siyu_kit.ids import new_id
from tests.fakes.member import FakeAuditLog, FakeMembers, FakeMerchants, caller
from tests.fakes.profile import FakeProfiles
from tests.fakes.wechat import FakePhoneBook

NOW = datetime(2026, 6, 1, 4, tzinfo=timezone.utc)


class World:
    def __init__(self):
        self.now = NOW
        self.profiles, self.members, self.phones = FakeProfiles(), FakeMembers(), FakePhoneBook()
        self.merchants, self.audit = FakeMerchants(), FakeAuditLog()
        self.use = Profiles(self.profiles, self.members, self.phones, self.merchants, self.audit,
                            clock=lambda: self.now)
        self.shop = Merchant.create(new_id("mch"), "shop", "shop", "Asia/Shanghai", NOW)
        self.other = Merchant.create(new_id("mch"), "other", "other", "Asia/Shanghai", NOW)
        for m in (self.shop, self.other):
            self.merchants.items[m.id] = m
        self.member = self.add_member(self.shop.id)

    def add_member(self, merchant_id: str, phone: str = "") -> str:
        member_id = new_id("mem")
        self.members.items[member_id] = Member(member_id, merchant_id, 1, nickname="n", phone=phone)
        self.profiles.items[member_id] = Profile(member_id, merchant_id, 1, nickname="n")
        return member_id

    def me(self, member_id: str = ""):
        return caller(self.shop.id, channel="MINI_PROGRAM", member_id=member_id or self.member)

    def staff(self, *roles: str, merchant=None):
        return caller((merchant or self.shop).id, staff_id=new_id("stf"), roles=roles)


@pytest.fixture
def w():
    return World()


async def test_a_member_updates_only_the_fields_sent_on_the_version_read(w):
    with w.me():
        profile = await w.use.update_my_profile(ProfileChanges(nickname=" 小美 ", gender="FEMALE",
                                                               region_code="310000",
                                                               personalised_recommendations=False), 1)
        assert (profile.nickname, profile.gender, profile.region_code, profile.region_name) == \
            ("小美", "FEMALE", "310000", "上海市")
        assert profile.personalised_recommendations is False and profile.version == 2
        again = await w.use.update_my_profile(ProfileChanges(avatar_url="https://img.example/a.png"), 2)
        assert again.nickname == "小美" and again.avatar_url == "https://img.example/a.png" and again.version == 3
        with pytest.raises(Conflict) as stale:
            await w.use.update_my_profile(ProfileChanges(nickname="x"), 2)
        assert stale.value.reason == "VERSION_CONFLICT"
        same = await w.use.update_my_profile(ProfileChanges(nickname="小美"), 3)  # nothing differs
        assert same.version == 3
    changed = [e.changed for e in w.profiles.events if isinstance(e, MemberProfileUpdated)]
    assert changed == [("nickname", "gender", "region_code", "personalised_recommendations"), ("avatar_url",)]


@pytest.mark.parametrize("changes, field", [
    (ProfileChanges(nickname="  "), "nickname"),
    (ProfileChanges(nickname="x" * 65), "nickname"),
    (ProfileChanges(avatar_url="http://img.example/a.png"), "avatar_url"),
    (ProfileChanges(gender="ROBOT"), "gender"),
    (ProfileChanges(region_code="999999"), "region_code"),
    (ProfileChanges(birthday=Birthday(2, 30)), "birthday.day"),
    (ProfileChanges(birthday=Birthday(6, 2, 2026)), "birthday.year"),  # tomorrow in Shanghai
])
async def test_bad_fields_are_named_and_nothing_is_written(w, changes, field):
    with w.me(), pytest.raises(InvalidArgument) as bad:
        await w.use.update_my_profile(changes, 1)
    assert [v.field for v in bad.value.violations] == [field]
    assert w.profiles.saves == 0 and w.profiles.events == []


async def test_the_birthday_is_set_once_by_the_member_then_only_by_staff(w):
    with w.me():
        profile = await w.use.update_my_profile(ProfileChanges(birthday=Birthday(2, 29, 2000)), 1)
        assert profile.birthday == Birthday(2, 29, 2000) and profile.birthday_locked
        # The same birthday again is no change; another one is refused.
        assert (await w.use.update_my_profile(ProfileChanges(birthday=Birthday(2, 29, 2000)), 2)).version == 2
        with pytest.raises(FailedPrecondition) as locked:
            await w.use.update_my_profile(ProfileChanges(birthday=Birthday(3, 1), nickname="y"), 2)
        assert locked.value.reason == "PROFILE_BIRTHDAY_LOCKED"
        assert (await w.use.my_profile()).nickname == "n"  # nothing of the refused change
    with w.staff("GUIDE"), pytest.raises(PermissionDenied):
        await w.use.correct_birthday(w.member, Birthday(3, 1), "ID card shows 1 March")
    with w.staff("OPERATOR"):
        with pytest.raises(InvalidArgument) as bad:
            await w.use.correct_birthday(w.member, Birthday(2, 30), "")
        assert {v.field for v in bad.value.violations} == {"reason", "birthday.day"}
        corrected = await w.use.correct_birthday(w.member, Birthday(3, 1), "ID card shows 1 March")
    assert corrected.birthday == Birthday(3, 1) and corrected.birthday_set_by == "staff"
    entry = w.audit.entries[-1]
    assert (entry.action, entry.target_id, entry.before, entry.after) == (
        audit_rules.MEMBER_BIRTHDAY_CORRECTED, w.member, {"birthday": "02-29"},
        {"birthday": "03-01", "reason": "ID card shows 1 March"})
    with w.staff("OPERATOR", merchant=w.other), pytest.raises(NotFound):
        await w.use.correct_birthday(w.member, Birthday(3, 2), "wrong shop")


async def test_consent_keeps_the_time_of_each_real_change(w):
    with w.me():
        assert (await w.use.my_profile()).consent_changed_at is None
        given = await w.use.set_marketing_consent(True)
        assert given.marketing_consent and given.consent_changed_at == NOW
        w.now = NOW + timedelta(days=1)
        repeat = await w.use.set_marketing_consent(True)
        assert repeat.consent_changed_at == NOW and repeat.version == given.version
        withdrawn = await w.use.set_marketing_consent(False)
        assert not withdrawn.marketing_consent and withdrawn.consent_changed_at == NOW + timedelta(days=1)
    consent = [(e.consent, e.at) for e in w.profiles.events if isinstance(e, MarketingConsentChanged)]
    assert consent == [(True, NOW), (False, NOW + timedelta(days=1))]


async def test_withdrawing_consent_never_given_is_recorded_too(w):
    with w.me():
        profile = await w.use.set_marketing_consent(False)
    assert profile.consent_changed_at == NOW and not profile.marketing_consent


async def test_a_lost_race_is_read_again(w):
    w.profiles.writes_by_others = 1
    with w.me():
        profile = await w.use.set_marketing_consent(True)
    assert profile.marketing_consent and w.profiles.items[w.member].marketing_consent


async def test_the_phone_is_masked_sealed_or_legacy_clear(w):
    await w.phones.bind(w.shop.id, "13800138000", w.member)
    legacy = w.add_member(w.shop.id, phone="13912345678")
    with w.me():
        assert (await w.use.my_profile()).phone_masked == "138****8000"
    with w.me(legacy):
        assert (await w.use.my_profile()).phone_masked == "139****5678"


async def test_only_an_owner_sees_the_full_phone_and_every_view_is_audited(w):
    await w.phones.bind(w.shop.id, "13800138000", w.member)
    for role in ("GUIDE", "OPERATOR", "FINANCE"):
        with w.staff(role), pytest.raises(PermissionDenied):
            await w.use.reveal_phone(w.member, "customer called back")
    assert w.audit.entries == []
    with w.staff("OWNER") as ctx:
        with pytest.raises(InvalidArgument) as bad:
            await w.use.reveal_phone("mem_nope", " ")
        assert {v.field for v in bad.value.violations} == {"member_id", "reason"}
        assert await w.use.reveal_phone(w.member, "delivery failed, call") == "13800138000"
        staff_id = ctx.caller_id
    [entry] = w.audit.entries
    assert (entry.action, entry.actor_id, entry.target_id, entry.after) == (
        audit_rules.MEMBER_PHONE_REVEALED, staff_id, w.member,
        {"reason": "delivery failed, call", "phone": "138****8000"})
    assert entry.created_at == NOW
    no_phone = w.add_member(w.shop.id)
    with w.staff("OWNER"):
        with pytest.raises(FailedPrecondition) as none:
            await w.use.reveal_phone(no_phone, "why not")
        assert none.value.reason == "MEMBER_PHONE_NOT_SET"
    with w.staff("OWNER", merchant=w.other), pytest.raises(NotFound):
        await w.use.reveal_phone(w.member, "another shop")
    assert len(w.audit.entries) == 1


async def test_another_merchants_member_is_not_found(w):
    stranger = w.add_member(w.other.id)
    with caller(w.shop.id, channel="MINI_PROGRAM", member_id=stranger), pytest.raises(NotFound):
        await w.use.my_profile()
