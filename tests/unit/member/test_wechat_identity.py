"""WeChat identity use cases over in-memory ports: login by WeChat code on the
mini-program and H5 merging by unionid, the sandbox kept for sandbox codes, phone binding
(WeChat phone code, SMS code) with its one-member-per-phone rule, and the merchant's WeChat
apps (OWNER only, secrets never shown)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from siyu_kit.errors import (AlreadyExists, FailedPrecondition, InvalidArgument, PermissionDenied,
                             ResourceExhausted, Unauthenticated)
from siyu_kit.protos import utcnow

from services.member.application.members import Members
from services.member.application.sessions import Sessions
from services.member.application.wechat import WeChatIdentity
from services.member.domain.wechat import SMS_MAX_ATTEMPTS, SmsChallenge, code_hash, phone_index
from tests.fakes.member import (FakeIdentities, FakeLedger, FakeMembers, FakeMerchants, FakeProvider,
                                FakeRefreshTokens, FakeStaff, caller)
from tests.fakes.wechat import FakePhoneBook, FakeSms, FakeSmsChallenges, FakeWeChatApi, FakeWeChatApps

SECRET = "unit-test-secret-unit-test-secret"
KEY = b"k" * 32
M = "mch_a"
MINI, WEB = ("wxmini000001", "mini_secret_0000001"), ("wxweb0000001", "web_secret_00000001")


@pytest.fixture
def w():
    class World:
        pass
    w = World()
    w.members, w.identities, w.merchants = FakeMembers(), FakeIdentities(), FakeMerchants()
    w.apps, w.api, w.phones = FakeWeChatApps(), FakeWeChatApi(), FakePhoneBook()
    w.challenges, w.sms = FakeSmsChallenges(), FakeSms()
    w.wechat = WeChatIdentity(w.apps, w.api, w.phones, w.challenges, w.sms, KEY, w.members)
    sessions = Sessions(SECRET, FakeStaff(), w.members, FakeRefreshTokens())
    w.cases = Members(sessions, {"sandbox": FakeProvider()}, w.members, w.identities, w.merchants, FakeLedger(),
                      w.wechat, w.phones)
    return w


async def with_apps(w):
    with caller(M, staff_id="stf_owner", roles=("OWNER",)):
        await w.wechat.set_app("MINI_PROGRAM", *MINI)
        await w.wechat.set_app("H5", *WEB)


async def login(w, channel: str, code: str):
    with caller(M, channel=channel):
        return await w.cases.login(code, "")


async def test_codes_on_both_channels_reach_one_member_by_unionid(w):
    await with_apps(w)
    first = await login(w, "MINI_PROGRAM", w.api.login_code("login", MINI[0], "o-mini", "u-1"))
    second = await login(w, "H5", w.api.login_code("oauth", WEB[0], "o-web", "u-1"))
    assert first.created and not second.created
    assert first.member.member_id == second.member.member_id
    assert second.member.channels == ("H5", "MINI_PROGRAM")
    assert w.api.calls == [("login", MINI[0]), ("oauth", WEB[0])]


async def test_without_unionid_each_app_keeps_its_own_member(w):
    await with_apps(w)
    a = await login(w, "MINI_PROGRAM", w.api.login_code("login", MINI[0], "o-1", ""))
    b = await login(w, "H5", w.api.login_code("oauth", WEB[0], "o-1", ""))
    assert a.member.member_id != b.member.member_id


async def test_a_refused_code_is_a_field_violation_and_writes_nothing(w):
    await with_apps(w)
    code = w.api.login_code("login", MINI[0], "o-mini", "u-1")
    await login(w, "MINI_PROGRAM", code)
    members_before = dict(w.members.items)
    for bad in (code, "forged", w.api.login_code("oauth", WEB[0], "o-x", "u-x")):
        with pytest.raises(InvalidArgument) as refused:
            await login(w, "MINI_PROGRAM", bad)
        assert [v.field for v in refused.value.violations] == ["code"]
    assert w.members.items == members_before


async def test_sandbox_codes_and_merchants_without_an_app_keep_the_sandbox(w):
    result = await login(w, "MINI_PROGRAM", "sandbox:u-9")  # no WeChat app at all
    assert result.created and w.api.calls == []
    await with_apps(w)
    assert not (await login(w, "MINI_PROGRAM", "sandbox:u-9")).created
    assert w.api.calls == []
    with pytest.raises(InvalidArgument):  # LIVE has no WeChat login: the sandbox judges the code
        await login(w, "LIVE", "some-wechat-code")


async def test_phone_from_the_mini_program_binds_and_shows_on_every_channel(w):
    await with_apps(w)
    mini = await login(w, "MINI_PROGRAM", w.api.login_code("login", MINI[0], "o-mini", "u-1"))
    with caller(M, member_id=mini.member.member_id, channel="MINI_PROGRAM"):
        assert await w.wechat.bind_wechat_phone(w.api.phone_code(MINI[0], "13800138000")) == "13800138000"
    web = await login(w, "H5", w.api.login_code("oauth", WEB[0], "o-web", "u-1"))
    assert web.member.phone == "13800138000"


async def test_a_phone_held_by_another_member_is_refused_and_nothing_merges(w):
    await with_apps(w)
    a = await login(w, "MINI_PROGRAM", w.api.login_code("login", MINI[0], "o-a", "u-a"))
    b = await login(w, "H5", w.api.login_code("oauth", WEB[0], "o-b", "u-b"))
    with caller(M, member_id=a.member.member_id):
        await w.wechat.bind_wechat_phone(w.api.phone_code(MINI[0], "13800138000"))
        # the same phone again is a no-op; another one is refused
        with pytest.raises(FailedPrecondition) as bound:
            await w.wechat.bind_wechat_phone(w.api.phone_code(MINI[0], "13900139000"))
        assert bound.value.reason == "PHONE_BOUND"
    with caller(M, member_id=b.member.member_id):
        await w.wechat.send_sms_code("13800138000")
        with pytest.raises(AlreadyExists) as taken:
            await w.wechat.bind_sms_phone("13800138000", w.sms.code_to("13800138000"))
        assert taken.value.reason == "PHONE_TAKEN"
    assert w.phones.items == {(M, "13800138000"): a.member.member_id}


async def test_sms_codes_expire_allow_few_attempts_and_work_once(w):
    member = (await login(w, "H5", "sandbox:u-s")).member.member_id
    with caller(M, member_id=member):
        assert await w.wechat.send_sms_code("13700137000") == 300
        with pytest.raises(ResourceExhausted) as soon:
            await w.wechat.send_sms_code("13700137000")
        assert soon.value.reason == "SMS_TOO_SOON"
        code = w.sms.code_to("13700137000")
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(SMS_MAX_ATTEMPTS):
            with pytest.raises(InvalidArgument):
                await w.wechat.bind_sms_phone("13700137000", wrong)
        with pytest.raises(ResourceExhausted) as locked:
            await w.wechat.bind_sms_phone("13700137000", code)  # even the right one, now
        assert locked.value.reason == "SMS_CODE_LOCKED"
        assert w.phones.items == {}
        # stored hashed only
        assert all(code not in c.code_hash for c in w.challenges.items)


async def test_an_expired_sms_code_is_refused(w):
    member = (await login(w, "H5", "sandbox:u-e")).member.member_id
    index = phone_index(KEY, M, "13600136000")
    await w.challenges.add(SmsChallenge("sms_1", M, member, index, code_hash(KEY, "sms_1", "123456"),
                                        utcnow() - timedelta(seconds=1)))
    with caller(M, member_id=member):
        with pytest.raises(InvalidArgument) as expired:
            await w.wechat.bind_sms_phone("13600136000", "123456")
    assert "expired" in expired.value.violations[0].description


async def test_wechat_apps_are_set_by_the_owner_only_and_never_show_the_secret(w):
    for roles in (("OPERATOR",), ("GUIDE",), ("FINANCE",)):
        with caller(M, staff_id="stf_x", roles=roles):
            with pytest.raises(PermissionDenied):
                await w.wechat.set_app("H5", *WEB)
            with pytest.raises(PermissionDenied):
                await w.wechat.list_apps()
    with caller(M, member_id="mem_1"), pytest.raises(Unauthenticated):
        await w.wechat.list_apps()
    with caller(M, staff_id="stf_owner", roles=("OWNER",)):
        with pytest.raises(InvalidArgument) as bad:
            await w.wechat.set_app("LIVE", "bad", "short")
        assert {v.field for v in bad.value.violations} == {"channel", "appid", "app_secret"}
        assert w.apps.items == {}
        summary = await w.wechat.set_app("H5", *WEB)
        listed = await w.wechat.list_apps()
    assert WEB[1] not in repr(summary) + repr(listed) + repr(w.apps.items)
    assert [(a.channel, a.appid, a.secret_set) for a in listed] == [("MINI_PROGRAM", "", False), ("H5", WEB[0], True)]
    with caller("mch_b", staff_id="stf_b", roles=("OWNER",)):
        assert all(not a.secret_set for a in await w.wechat.list_apps())


async def test_a_member_racing_to_bind_two_phones_keeps_one(w):
    member = (await login(w, "H5", "sandbox:u-r")).member.member_id
    await w.phones.bind(M, "13500135000", member)  # the other request won while this one checked
    original, calls = w.phones.phone_of, []

    async def unbound_at_first(merchant_id, member_id):
        calls.append(member_id)
        return "" if len(calls) == 1 else await original(merchant_id, member_id)
    w.phones.phone_of = unbound_at_first
    with caller(M, member_id=member):
        with pytest.raises(FailedPrecondition) as bound:
            await w.wechat._bind(M, member, "13400134000")
    assert bound.value.reason == "PHONE_BOUND"
    assert await w.phones.member_of(M, "13400134000") is None


def test_an_app_never_shows_its_secret_and_phone_hashes_are_keyed_per_merchant():
    from services.member.domain.wechat import WeChatApp, valid_phone
    app = WeChatApp(M, "H5", *WEB)
    assert WEB[1] not in repr(app) + str(app)
    assert phone_index(KEY, M, "13800138000") != phone_index(KEY, "mch_b", "13800138000")
    assert phone_index(KEY, M, "13800138000") != phone_index(b"j" * 32, M, "13800138000")
    assert "13800138000" not in phone_index(KEY, M, "13800138000")
    assert valid_phone("13800138000") and not valid_phone("12800138000") and not valid_phone("1380013800")
    assert not valid_phone("13800138000\n")


# ---- the phone's last four digits beside the member (the staff's search) -----------------

class Crash(Exception):
    pass


def crash_next_suffix(w) -> None:
    """The process stops after the phone is written, before its suffix is."""
    real = w.members.set_phone_suffix

    async def once(*args):
        w.members.set_phone_suffix = real
        raise Crash()
    w.members.set_phone_suffix = once


async def test_binding_writes_the_last_four_digits_beside_the_member(w):
    await with_apps(w)
    mini = (await login(w, "MINI_PROGRAM", w.api.login_code("login", MINI[0], "o-mini", "u-1"))).member.member_id
    sms = (await login(w, "H5", "sandbox:u-sms")).member.member_id
    loser = (await login(w, "H5", "sandbox:u-loser")).member.member_id
    with caller(M, member_id=mini, channel="MINI_PROGRAM"):
        await w.wechat.bind_wechat_phone(w.api.phone_code(MINI[0], "13800138000"))
    with caller(M, member_id=sms):
        await w.wechat.send_sms_code("13700131234")
        await w.wechat.bind_sms_phone("13700131234", w.sms.code_to("13700131234"))
    with caller(M, member_id=loser):
        await w.wechat.send_sms_code("13800138000")
        with pytest.raises(AlreadyExists):
            await w.wechat.bind_sms_phone("13800138000", w.sms.code_to("13800138000"))
    assert w.members.suffixes == {mini: "8000", sms: "1234"}


async def test_repeating_an_sms_bind_that_stopped_before_the_suffix_finishes_it(w):
    member = (await login(w, "H5", "sandbox:u-half")).member.member_id
    with caller(M, member_id=member):
        await w.wechat.send_sms_code("13700135678")
        code = w.sms.code_to("13700135678")
        crash_next_suffix(w)
        with pytest.raises(Crash):
            await w.wechat.bind_sms_phone("13700135678", code)
        assert w.phones.items == {(M, "13700135678"): member} and w.members.suffixes == {}
        # the client's retry of the same request answers as the first would have
        assert await w.wechat.bind_sms_phone("13700135678", code) == "13700135678"
        assert w.members.suffixes == {member: "5678"}
        # a used code that is not the one that bound proves nothing
        wrong = "000000" if code != "000000" else "111111"
        with pytest.raises(InvalidArgument):
            await w.wechat.bind_sms_phone("13700135678", wrong)


async def test_a_used_code_repeated_after_the_phone_failed_to_bind_binds_it(w):
    member = (await login(w, "H5", "sandbox:u-early")).member.member_id
    with caller(M, member_id=member):
        await w.wechat.send_sms_code("13700130001")
        code = w.sms.code_to("13700130001")
        real = w.phones.bind

        async def down(*args):
            w.phones.bind = real
            raise Crash()
        w.phones.bind = down
        with pytest.raises(Crash):
            await w.wechat.bind_sms_phone("13700130001", code)
        assert await w.wechat.bind_sms_phone("13700130001", code) == "13700130001"
    assert w.phones.items == {(M, "13700130001"): member} and w.members.suffixes == {member: "0001"}


async def test_any_later_bind_of_a_member_whose_suffix_is_missing_writes_it(w):
    await with_apps(w)
    mini = (await login(w, "MINI_PROGRAM", w.api.login_code("login", MINI[0], "o-m", "u-m"))).member.member_id
    with caller(M, member_id=mini, channel="MINI_PROGRAM"):
        crash_next_suffix(w)
        with pytest.raises(Crash):
            await w.wechat.bind_wechat_phone(w.api.phone_code(MINI[0], "13800134321"))
        # the phone-number code is used up; the retry needs a new one and is told the phone is bound
        with pytest.raises(FailedPrecondition) as bound:
            await w.wechat.bind_wechat_phone(w.api.phone_code(MINI[0], "13800134321"))
        assert bound.value.reason == "PHONE_BOUND"
    assert w.members.suffixes == {mini: "4321"}


async def test_staff_find_a_bound_member_by_suffix_with_the_phone_masked(w):
    from services.member.application.admin import StaffAdmin
    from services.member.adapters.messages import member_proto
    from tests.fakes.member import FakeApiKeys, FakeAuditLog, FakeMemberDirectory, FakePasswords

    ledger = FakeLedger()
    admin = StaffAdmin(w.merchants, FakeApiKeys(), FakeStaff(), FakePasswords(), FakeAuditLog(), ledger,
                       FakeMemberDirectory(w.members, ledger), w.phones)
    member = (await login(w, "H5", "sandbox:u-find")).member.member_id
    (await login(w, "H5", "sandbox:u-other"))
    with caller(M, member_id=member):
        await w.wechat.send_sms_code("13700139876")
        await w.wechat.bind_sms_phone("13700139876", w.sms.code_to("13700139876"))
    with caller(M, staff_id="stf_guide", roles=("GUIDE",)):
        found, _ = await admin.list_members("9876", "", "", None, None, 0, "")
    assert [m.member_id for m in found] == [member]
    assert member_proto(found[0]).phone_masked == "137****9876"


# ---- the look-up key: independent of the data key ----------------------------------------

def test_the_lookup_key_is_its_own_setting_and_the_data_key_does_not_move_it():
    import base64

    from services.member.adapters.wechat_store import index_key, lookup_key
    from siyu_kit.config import DEV_DATA_KEY, DEV_LOOKUP_KEY
    from siyu_kit.sealing import Sealer, new_key

    raw = new_key()
    assert lookup_key(raw) == lookup_key("k7:" + raw) == base64.urlsafe_b64decode(raw)
    for bad in ("", "short", "k1:" + base64.urlsafe_b64encode(b"x" * 16).decode(), "not base64 !!"):
        with pytest.raises(ValueError, match="SIYU_LOOKUP_KEY"):
            lookup_key(bad)
    # the development default finds what was indexed with the development data key before
    sealer = Sealer.from_setting(DEV_DATA_KEY)
    assert lookup_key(DEV_LOOKUP_KEY) == sealer.keys[sealer.current]
    assert index_key(lookup_key(raw)) != index_key(lookup_key(DEV_LOOKUP_KEY))


def test_the_settings_read_the_lookup_key(monkeypatch):
    from siyu_kit.config import DEV_LOOKUP_KEY, load
    from siyu_kit.sealing import new_key

    monkeypatch.delenv("SIYU_LOOKUP_KEY", raising=False)
    assert load("member").lookup_key == DEV_LOOKUP_KEY
    key = new_key()
    monkeypatch.setenv("SIYU_LOOKUP_KEY", key)
    monkeypatch.setenv("SIYU_DATA_KEY", "k2:" + new_key())
    assert load("member").lookup_key == key
