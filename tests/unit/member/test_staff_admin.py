"""Staff administration over in-memory ports: staff users and channel keys (OWNER), the
audit trail, tier configuration with its version, a member's tier standing, and the
platform operator opening a merchant."""
from __future__ import annotations

import pytest

from siyu_kit.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from siyu_kit.ids import new_id

from services.member.application.admin import StaffAdmin
from services.member.domain import admin as rules
from services.member.domain.admin import TierLevel
from services.member.domain.merchants import Merchant, key_hash
from services.member.domain.merchants import StaffUser
from tests.fakes.callers import platform
from tests.fakes.member import (FakeApiKeys, FakeAuditLog, FakeLedger, FakeMerchants, FakePasswords, FakeStaff,
                                caller)
from siyu_kit.protos import utcnow

LEVELS = [TierLevel("REGULAR", 0, 10_000, 10_000), TierLevel("SILVER", 100, 9_800, 11_000),
          TierLevel("GOLD", 500, 9_500, 13_000), TierLevel("BLACK_GOLD", 2_000, 9_000, 20_000)]


@pytest.fixture
def w():
    class World:
        pass
    w = World()
    w.merchants, w.keys, w.staff, w.audit, w.ledger = FakeMerchants(), FakeApiKeys(), FakeStaff(), FakeAuditLog(), \
        FakeLedger()
    w.passwords = FakePasswords()
    w.admin = StaffAdmin(w.merchants, w.keys, w.staff, w.passwords, w.audit, w.ledger)
    for code in ("a", "b"):
        m = Merchant.create(new_id("mch"), f"shop-{code}", code, "Asia/Shanghai", utcnow())
        w.merchants.items[m.id] = m
        owner = StaffUser.create(new_id("stf"), m.id, "owner", "plain$secret-1", ("OWNER",), False, utcnow())
        w.staff.items[owner.id] = owner
        setattr(w, code, m)
        setattr(w, f"owner_{code}", owner)
    return w


def as_owner(w, m="a"):
    return caller(getattr(w, m).id, staff_id=getattr(w, f"owner_{m}").id, roles=("OWNER",))


async def test_owner_creates_lists_disables_and_rotates_staff_with_an_audit_entry_each(w):
    with as_owner(w):
        guide = await w.admin.create_staff("guide1", "password-1", ["GUIDE"])
        with pytest.raises(AlreadyExists) as taken:
            await w.admin.create_staff("guide1", "password-2", ["GUIDE"])
        assert taken.value.reason == "STAFF_USERNAME_TAKEN"
        version = w.staff.items[guide.id].token_version
        disabled = await w.admin.set_staff_disabled(guide.id, True)
        assert disabled.disabled and w.staff.items[guide.id].token_version == version + 1
        active, _ = await w.admin.list_staff("", False, 0, "")
        assert [s.username for s in active] == ["owner"]
        everyone, _ = await w.admin.list_staff("gu", True, 0, "")
        assert [s.username for s in everyone] == ["guide1"]
        await w.admin.rotate_staff_password(guide.id, "password-3")
        assert w.staff.items[guide.id].password_hash == "plain$password-3"
        entries, _ = await w.admin.list_audit("", "", guide.id, 0, "")
    assert [e.action for e in entries] == [rules.STAFF_PASSWORD_ROTATED, rules.STAFF_USER_DISABLED,
                                           rules.STAFF_USER_CREATED]
    assert all(e.actor_id == w.owner_a.id and e.actor_kind == "staff" for e in entries)
    assert not any("password" in k or "password-" in v for e in entries for k, v in {**e.before, **e.after}.items())
    assert entries[1].before["disabled"] == "false" and entries[1].after["disabled"] == "true"


async def test_staff_changes_need_an_owner_stay_in_the_merchant_and_refuse_bad_input_unwritten(w):
    with as_owner(w):
        guide = await w.admin.create_staff("guide1", "password-1", ["GUIDE"])
    with caller(w.a.id, staff_id=guide.id, roles=("OPERATOR",)):
        with pytest.raises(PermissionDenied):
            await w.admin.create_staff("x1", "password-1", ["GUIDE"])
        with pytest.raises(PermissionDenied):
            await w.admin.list_staff("", False, 0, "")
    with as_owner(w, "b"):
        with pytest.raises(NotFound):
            await w.admin.set_staff_disabled(guide.id, True)
        with pytest.raises(InvalidArgument) as bad:
            await w.admin.create_staff("a b", "short", ["NOPE"])
        assert {v.field for v in bad.value.violations} == {"username", "password", "roles"}
        with pytest.raises(FailedPrecondition) as own:
            await w.admin.set_staff_disabled(w.owner_b.id, True)
        assert own.value.reason == "STAFF_SELF_CHANGE"
    assert not w.staff.items[guide.id].disabled
    assert [e.action for e in w.audit.entries] == [rules.STAFF_USER_CREATED]


async def test_lists_page_by_cursor_bound_to_their_filters(w):
    with as_owner(w):
        for i in range(5):
            await w.admin.create_staff(f"user{i}", "password-1", ["GUIDE"])
        first, token = await w.admin.list_staff("user", False, 2, "")
        second, token2 = await w.admin.list_staff("user", False, 2, token)
        third, last = await w.admin.list_staff("user", False, 2, token2)
        assert [s.username for s in first + second + third] == [f"user{i}" for i in range(4, -1, -1)]
        assert last == ""
        with pytest.raises(InvalidArgument) as other:
            await w.admin.list_staff("use", False, 2, token)
        assert other.value.violations[0].field == "page_token"
        with pytest.raises(InvalidArgument):
            await w.admin.list_staff("user", False, 2, "garbage!")
        with pytest.raises(InvalidArgument):
            await w.admin.list_staff("user", False, 101, "")


async def test_channel_keys_are_created_rotated_and_disabled_showing_only_a_hint(w):
    with as_owner(w):
        issued = await w.admin.create_key("H5")
        assert issued.api_key.startswith("sk_h5_") and issued.key.key_hash == key_hash(issued.api_key)
        assert (issued.key.prefix, issued.key.last4) == (issued.api_key[:6], issued.api_key[-4:])
        rotated, replaced = await w.admin.rotate_key(issued.key.id)
        assert replaced == issued.key.id and rotated.key.channel == "H5" and rotated.api_key != issued.api_key
        assert (await w.keys.by_hash(key_hash(issued.api_key))).disabled
        with pytest.raises(FailedPrecondition) as gone:
            await w.admin.rotate_key(issued.key.id)
        assert gone.value.reason == "API_KEY_DISABLED"
        active, _ = await w.admin.list_keys("", False, 0, "")
        assert [k.id for k in active] == [rotated.key.id]
        disabled = await w.admin.disable_key(rotated.key.id)
        assert disabled.disabled
        await w.admin.disable_key(rotated.key.id)  # again: nothing to audit
        entries, _ = await w.admin.list_audit("", "", "", 0, "")
    assert [e.action for e in entries] == [rules.API_KEY_DISABLED, rules.API_KEY_ROTATED, rules.API_KEY_CREATED]
    shown = str([(e.before, e.after) for e in entries])
    assert issued.api_key not in shown and rotated.api_key not in shown
    with as_owner(w, "b"):
        with pytest.raises(NotFound):
            await w.admin.disable_key(issued.key.id)
        with pytest.raises(InvalidArgument):
            await w.admin.create_key("FAX")


async def test_tier_config_changes_on_its_version_only_and_members_see_their_standing(w):
    with caller(w.a.id, staff_id=new_id("stf"), roles=("OPERATOR",)):
        read = await w.admin.tier_config()
        changed = await w.admin.update_tier_config(LEVELS, read.version)
        assert changed.levels == LEVELS and changed.version == read.version + 1
        with pytest.raises(Conflict) as stale:
            await w.admin.update_tier_config(LEVELS, read.version)
        assert stale.value.reason == "VERSION_CONFLICT"
        bad = [TierLevel("REGULAR", 5, 0, 10_000), *LEVELS[1:3], TierLevel("BLACK_GOLD", 400, 9_000, 200_000)]
        with pytest.raises(InvalidArgument) as invalid:
            await w.admin.update_tier_config(bad, changed.version)
        assert {v.field for v in invalid.value.violations} == {
            "levels[0].threshold", "levels[0].discount_bp", "levels[3].threshold", "levels[3].points_multiplier_bp"}
    with caller(w.a.id, staff_id=new_id("stf"), roles=("GUIDE",)):
        with pytest.raises(PermissionDenied):
            await w.admin.tier_config()
    assert [e.action for e in w.audit.entries] == [rules.TIER_CONFIG_UPDATED]
    member = new_id("mem")
    w.ledger.add(w.a.id, member, 10, growth=120)
    with caller(w.a.id, channel="H5", member_id=member):
        standing = await w.admin.my_tier()
    assert (standing.level.tier, standing.growth, standing.next_tier, standing.growth_needed) == \
        ("SILVER", 120, "GOLD", 380)
    w.ledger.add(w.a.id, member, 10, growth=5000)
    with caller(w.a.id, channel="H5", member_id=member):
        top = await w.admin.my_tier()
    assert (top.level.tier, top.next_tier, top.growth_needed) == ("BLACK_GOLD", "", 0)


async def test_the_platform_opens_a_merchant_with_its_owner_and_keys(w):
    with platform():
        done = await w.admin.onboard("new-shop", "New Shop", "", "boss", "password-1", ["MINI_PROGRAM", "H5"])
        with pytest.raises(AlreadyExists) as taken:
            await w.admin.onboard("new-shop", "Other", "", "boss", "password-1", [])
        assert taken.value.reason == "MERCHANT_CODE_TAKEN"
        with pytest.raises(InvalidArgument) as bad:
            await w.admin.onboard("Bad Code", "", "Mars/Base", "b", "short", ["FAX"])
        assert {v.field for v in bad.value.violations} == {"code", "name", "time_zone", "owner_username",
                                                           "owner_password", "channels"}
    assert done.merchant.time_zone == "Asia/Shanghai"
    owner = await w.staff.by_username(done.merchant.id, "boss")
    assert owner.roles == ("OWNER",) and owner.id == done.owner_id
    assert sorted(k.key.channel for k in done.keys) == ["H5", "MINI_PROGRAM"]
    for k in done.keys:
        assert (await w.keys.by_hash(key_hash(k.api_key))).merchant_id == done.merchant.id
    actions = [e.action for e in w.audit.entries if e.merchant_id == done.merchant.id]
    assert actions == [rules.MERCHANT_ONBOARDED, rules.STAFF_USER_CREATED, rules.API_KEY_CREATED,
                       rules.API_KEY_CREATED]
    assert all(e.actor_kind == "platform" for e in w.audit.entries if e.merchant_id == done.merchant.id)
    assert len(w.merchants.items) == 3
    with as_owner(w):
        with pytest.raises(PermissionDenied):
            await w.admin.onboard("x-shop", "X", "", "boss", "password-1", [])


async def test_staff_find_members_by_phone_suffix_nickname_tier_and_registration(w):
    from datetime import timedelta

    from services.member.domain.members import Member
    from tests.fakes.member import FakeMemberDirectory, FakeMembers

    members = FakeMembers()
    w.admin.directory = FakeMemberDirectory(members, w.ledger)
    start = utcnow()
    made = []
    for i, (nick, phone, growth) in enumerate([("amy", "13800001234", 0), ("anna", "13900005678", 1_500),
                                               ("bob", "", 20_000)]):
        member = Member.register(new_id("mem"), w.a.id, "H5", nick, start + timedelta(minutes=i))
        member.phone = phone
        members.items[member.id] = member
        w.ledger.add(w.a.id, member.id, 0, growth=growth)
        made.append(member)
    stranger = Member.register(new_id("mem"), w.b.id, "H5", "amy", start)
    members.items[stranger.id] = stranger

    async def names(**kw):
        args = {"phone_suffix": "", "nickname_prefix": "", "tier": "", "registered_from": None,
                "registered_before": None, "page_size": 0, "page_token": "", **kw}
        found, _ = await w.admin.list_members(**args)
        return [m.nickname for m in found]

    with caller(w.a.id, staff_id=new_id("stf"), roles=("GUIDE",)):
        assert await names() == ["bob", "anna", "amy"]
        assert await names(phone_suffix="5678") == ["anna"]
        assert await names(nickname_prefix="a") == ["anna", "amy"]
        assert await names(tier="SILVER") == ["anna"]
        assert await names(tier="BLACK_GOLD") == ["bob"]
        assert await names(registered_from=start + timedelta(minutes=1),
                           registered_before=start + timedelta(minutes=2)) == ["anna"]
        page, token = await w.admin.list_members("", "", "", None, None, 2, "")
        rest, last = await w.admin.list_members("", "", "", None, None, 2, token)
        assert [m.nickname for m in page + rest] == ["bob", "anna", "amy"] and last == ""
        assert page[0].tier == "BLACK_GOLD" and page[0].growth == 20_000
        with pytest.raises(InvalidArgument) as bad:
            await w.admin.list_members("12", "", "PLATINUM", start, start, 0, token)
        assert {v.field for v in bad.value.violations} == {"phone_suffix", "tier", "registered_before", "page_token"}
    with caller(w.a.id, staff_id=new_id("stf"), roles=("FINANCE",)):
        with pytest.raises(PermissionDenied):
            await w.admin.list_members("", "", "", None, None, 0, "")
