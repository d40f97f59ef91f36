"""Member use cases over in-memory ports: merchants and keys, staff sessions and the
lock-out, member login and tokens, points from paid orders, checkout pricing."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from siyu_kit import auth
from siyu_kit.errors import (AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound,
                             ResourceExhausted, Unauthenticated)
from siyu_kit.ids import new_id

from services.member.application.lockout import LoginGuard
from services.member.application.members import Members
from services.member.application.merchants import MerchantAdmin
from services.member.application.points import OrderPoints, PaidOrder, UnknownMember
from services.member.application.pricing import MemberPricing
from services.member.application.sessions import Sessions
from services.member.application.staff import StaffAccess
from services.member.domain.config import MerchantConfig
from services.member.domain.lockout import LoginLimits
from services.member.domain.members import MemberRegistered
from services.member.domain.points import PointsEarned
from services.member.domain.sessions import NO_SUBJECT, REVOKED, USED, Subject
from tests.fakes.member import (FakeApiKeys, FakeIdentities, FakeLedger, FakeLoginAttempts, FakeMembers,
                                FakeMerchants, FakePasswords, FakeProvider, FakeRefreshTokens, FakeStaff, caller)

SECRET = "unit-test-secret-unit-test-secret"
PAID_AT = datetime(2025, 1, 31, 16, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def w():
    class World:
        pass
    w = World()
    w.merchants, w.api_keys, w.staff = FakeMerchants(), FakeApiKeys(), FakeStaff()
    w.members, w.identities, w.ledger = FakeMembers(), FakeIdentities(), FakeLedger()
    w.tokens, w.attempts, w.passwords = FakeRefreshTokens(), FakeLoginAttempts(), FakePasswords()
    w.clock = Clock()
    w.sessions = Sessions(SECRET, w.staff, w.members, w.tokens)
    w.admin = MerchantAdmin(w.merchants, w.api_keys, w.staff, w.passwords)
    w.staff_access = StaffAccess(w.sessions, LoginGuard(w.attempts, LoginLimits(per_account=3, per_address=5),
                                                        w.clock), w.merchants, w.staff, w.passwords)
    w.member_cases = Members(w.sessions, {"sandbox": FakeProvider()}, w.members, w.identities, w.merchants, w.ledger)
    w.points = OrderPoints(w.members, w.merchants, w.ledger)
    w.pricing = MemberPricing(w.merchants, w.ledger)
    return w


async def merchant(w, code: str = "shop-a"):
    m, _ = await w.admin.upsert_merchant(code, "Shop A", "")
    return m


# ---- merchants, keys, staff users ------------------------------------------------------

async def test_a_merchant_is_created_once_and_renamed_in_place(w):
    created, was_new = await w.admin.upsert_merchant("shop-a", " Shop A ", "")
    same, again = await w.admin.upsert_merchant("shop-a", "Shop A", "Asia/Shanghai")
    renamed, _ = await w.admin.upsert_merchant("shop-a", "Shop A+", "Europe/London")
    assert was_new and not again and created.name == "Shop A" and created.time_zone == "Asia/Shanghai"
    assert same.id == created.id == created.merchant_id and w.merchants.saves == 1
    assert (renamed.name, renamed.time_zone, renamed.version) == ("Shop A+", "Europe/London", 2)
    assert created.config == MerchantConfig()


async def test_merchant_upsert_refuses_bad_fields(w):
    with pytest.raises(InvalidArgument) as bad:
        await w.admin.upsert_merchant("Shop A", "", "Mars/Base")
    assert {v.field for v in bad.value.violations} == {"code", "name", "time_zone"}


async def test_merchant_rename_retries_then_gives_up(w):
    await merchant(w)
    w.merchants.writes_by_others = 2
    renamed, _ = await w.admin.upsert_merchant("shop-a", "B", "")
    assert renamed.version == 4
    w.merchants.writes_by_others = 3
    with pytest.raises(Conflict) as gave_up:
        await w.admin.upsert_merchant("shop-a", "C", "")
    assert gave_up.value.message == "the merchant changed concurrently; try again"
    assert gave_up.value.reason == "CONCURRENT_UPDATE"


async def test_a_channel_key_binds_once_and_never_moves(w):
    a, b = await merchant(w), await merchant(w, "shop-b")
    key = "k" * 20
    assert await w.admin.upsert_api_key(a.id, "H5", key) is True
    assert await w.admin.upsert_api_key(a.id, "H5", key) is False
    for merchant_id, channel in ((b.id, "H5"), (a.id, "LIVE")):
        with pytest.raises(AlreadyExists) as taken:
            await w.admin.upsert_api_key(merchant_id, channel, key)
        assert taken.value.reason == "API_KEY_TAKEN"
    assert await w.admin.resolve_api_key(key) == (a.id, "H5")
    assert key not in str(w.api_keys.items)  # only the hash is kept
    with pytest.raises(Unauthenticated) as unknown:
        await w.admin.resolve_api_key("x" * 20)
    assert unknown.value.reason == "UNKNOWN_API_KEY"
    with pytest.raises(NotFound):
        await w.admin.upsert_api_key("mch_nope", "H5", "z" * 20)
    with pytest.raises(InvalidArgument) as bad:
        await w.admin.upsert_api_key("", "TV", "short")
    assert {v.field for v in bad.value.violations} == {"merchant_id", "channel", "api_key"}


async def test_a_staff_change_ends_the_users_tokens(w):
    m = await merchant(w)
    staff_id, created = await w.admin.upsert_staff_user(m.id, "ops", "password-1", ["OPERATOR", "OPERATOR"])
    assert created and w.staff.items[staff_id].roles == ("OPERATOR",)
    assert w.staff.items[staff_id].token_version == 1
    same_id, created = await w.admin.upsert_staff_user(m.id, "ops", "password-2", ["FINANCE", "OWNER"], True)
    stored = w.staff.items[staff_id]
    assert same_id == staff_id and not created
    assert (stored.roles, stored.disabled, stored.token_version, stored.version) == (("OWNER", "FINANCE"), True, 2, 2)
    assert await w.passwords.verify("password-2", stored.password_hash)


async def test_staff_upsert_refuses_and_retries(w):
    m = await merchant(w)
    with pytest.raises(NotFound):
        await w.admin.upsert_staff_user("mch_nope", "ops", "password-1", ["OPERATOR"])
    with pytest.raises(InvalidArgument) as bad:
        await w.admin.upsert_staff_user(m.id, "o", "short", ["CEO"])
    assert {v.field for v in bad.value.violations} == {"username", "password", "roles"}
    await w.admin.upsert_staff_user(m.id, "ops", "password-1", ["OPERATOR"])
    w.staff.writes_by_others = 1
    await w.admin.upsert_staff_user(m.id, "ops", "password-2", ["OPERATOR"])
    w.staff.writes_by_others = 3
    with pytest.raises(Conflict) as gave_up:
        await w.admin.upsert_staff_user(m.id, "ops", "password-3", ["OPERATOR"])
    assert gave_up.value.message == "the staff user changed concurrently; try again"


# ---- staff sessions and the lock-out ----------------------------------------------------

async def staff_user(w, roles=("OPERATOR", "GUIDE")):
    m = await merchant(w)
    staff_id, _ = await w.admin.upsert_staff_user(m.id, "ops", "password-1", list(roles))
    return m, staff_id


async def test_staff_login_issues_tokens_with_the_users_roles_and_version(w):
    m, staff_id = await staff_user(w)
    with caller(client_address="10.0.0.1"):
        session = await w.staff_access.login("shop-a", "ops", "password-1")
    claims = auth.verify(SECRET, session.access_token, auth.STAFF)
    assert (claims.subject, claims.merchant_id, claims.roles, claims.version) == \
        (staff_id, m.id, ("OPERATOR", "GUIDE"), 1)
    assert session.roles == ("OPERATOR", "GUIDE") and session.expires_in == auth.STAFF_TTL_S
    refresh = auth.verify(SECRET, session.refresh_token, auth.STAFF_REFRESH)
    assert w.tokens.items[refresh.token_id].subject_id == staff_id
    # A success gives its slots back.
    assert set(w.attempts.counters.values()) == {0}


@pytest.mark.parametrize("code,username,password", [
    ("shop-a", "ops", "wrong-pass"), ("shop-a", "nobody", "password-1"), ("shop-z", "ops", "password-1")])
async def test_staff_login_failures_all_look_the_same(w, code, username, password):
    await staff_user(w)
    with caller(), pytest.raises(Unauthenticated) as failed:
        await w.staff_access.login(code, username, password)
    assert failed.value.reason == "LOGIN_FAILED" and failed.value.message == "wrong merchant, username or password"


async def test_a_disabled_user_cannot_log_in(w):
    m, _ = await staff_user(w)
    await w.admin.upsert_staff_user(m.id, "ops", "password-1", ["OPERATOR"], True)
    with caller(), pytest.raises(Unauthenticated) as failed:
        await w.staff_access.login("shop-a", "ops", "password-1")
    assert failed.value.reason == "LOGIN_FAILED"


async def test_the_attempt_after_the_limit_is_refused_unchecked_until_the_window_ends(w):
    await staff_user(w)
    with caller(client_address="10.0.0.1"):
        for _ in range(3):
            with pytest.raises(Unauthenticated):
                await w.staff_access.login("shop-a", "ops", "wrong-pass")
        with pytest.raises(ResourceExhausted) as locked:
            await w.staff_access.login("shop-a", "ops", "password-1")  # even the right password
        assert locked.value.reason == "LOGIN_LOCKED"
        w.clock.now += 60
        assert (await w.staff_access.login("shop-a", "ops", "password-1")).roles


async def test_one_address_is_limited_across_accounts(w):
    await staff_user(w)
    with caller(client_address="10.0.0.9"):
        for name in ("a1", "a2", "a3", "a4", "a5"):
            with pytest.raises(Unauthenticated):
                await w.staff_access.login("shop-a", name, "wrong-pass")
        with pytest.raises(ResourceExhausted):
            await w.staff_access.login("shop-a", "ops", "password-1")
        # The refused attempt took no account slot.
        assert max(v for k, v in w.attempts.counters.items() if k.startswith("acct:")) == 1


async def test_a_staff_refresh_token_works_once_and_its_reuse_ends_every_token(w):
    m, staff_id = await staff_user(w)
    with caller():
        first = await w.staff_access.login("shop-a", "ops", "password-1")
        second = await w.staff_access.refresh(first.refresh_token)
        assert auth.verify(SECRET, second.access_token, auth.STAFF).version == 1
        with pytest.raises(Unauthenticated) as reused:
            await w.staff_access.refresh(first.refresh_token)
        assert reused.value.reason == "TOKEN_REVOKED"
        # The reuse moved the version: the second refresh token is outdated too.
        with pytest.raises(Unauthenticated) as outdated:
            await w.staff_access.refresh(second.refresh_token)
        assert outdated.value.reason == "TOKEN_REVOKED"
    assert w.staff.items[staff_id].token_version == 2
    with caller(), pytest.raises(InvalidArgument):
        await w.staff_access.refresh("")


async def test_staff_logout_ends_tokens_and_revokes_the_refresh_token(w):
    m, staff_id = await staff_user(w)
    with caller():
        session = await w.staff_access.login("shop-a", "ops", "password-1")
    token_id = auth.verify(SECRET, session.refresh_token, auth.STAFF_REFRESH).token_id
    with caller(m.id, staff_id=staff_id, roles=("OPERATOR",)):
        await w.staff_access.logout(session.refresh_token)
    assert w.tokens.items[token_id].state == REVOKED
    assert w.staff.items[staff_id].token_version == 2
    assert await w.sessions.subjects([(m.id, staff_id), (m.id, "stf_gone"), ("", staff_id), (m.id, "xyz")]) == [
        Subject(2, True), NO_SUBJECT, NO_SUBJECT, NO_SUBJECT]
    assert await w.sessions.subject(m.id, staff_id) == Subject(2, True, ("OPERATOR", "GUIDE"))
    with pytest.raises(InvalidArgument):
        await w.sessions.subjects([(m.id, staff_id)] * 1001)


# ---- member login, tokens, member centre ------------------------------------------------

def h5(merchant_id: str, **kw):
    return caller(merchant_id, channel="H5", **kw)


async def test_first_login_registers_the_member_and_records_it(w):
    m = await merchant(w)
    with h5(m.id):
        result = await w.member_cases.login("sandbox:alice", " Alice ")
    member = result.member
    assert result.created and member.nickname == "Alice" and member.tier == "REGULAR" and member.channels == ("H5",)
    assert [type(e) for e in w.members.events] == [MemberRegistered]
    event = w.members.events[0]
    assert (event.member_id, event.nickname, event.channel) == (member.member_id, "Alice", "H5")
    claims = auth.verify(SECRET, result.tokens.access_token, auth.MEMBER)
    assert (claims.subject, claims.merchant_id) == (member.member_id, m.id)


async def test_the_same_person_on_another_channel_is_the_same_member(w):
    m = await merchant(w)
    with h5(m.id):
        first = await w.member_cases.login("sandbox:alice", "")
        again = await w.member_cases.login("sandbox:alice", "")
    with caller(m.id, channel="MINI_PROGRAM"):
        mini = await w.member_cases.login("sandbox:alice", "")
    assert not again.created and not mini.created
    assert first.member.member_id == again.member.member_id == mini.member.member_id
    assert mini.member.channels == ("H5", "MINI_PROGRAM")
    assert len(w.members.events) == 1


async def test_a_unionid_linked_before_its_member_was_written_is_healed(w):
    m = await merchant(w)
    orphan = new_id("mem")
    await w.identities.link_union(m.id, "bob", orphan)
    with h5(m.id):
        result = await w.member_cases.login("sandbox:bob", "")
    assert result.created and result.member.member_id == orphan


async def test_a_login_while_the_member_is_being_erased_creates_a_new_member(w):
    m = await merchant(w)
    with h5(m.id):
        old = (await w.member_cases.login("sandbox:carol", "")).member.member_id
    with caller(m.id, channel="MINI_PROGRAM"):
        await w.member_cases.login("sandbox:carol", "")
    # Marked ERASING; its identities are not deleted yet.
    w.members.erasing.add(old)
    with h5(m.id):
        again = await w.member_cases.login("sandbox:carol", "")
    assert again.created and again.member.member_id != old and again.member.channels == ("H5",)
    new = again.member.member_id
    # The identities were taken over (the unique keys kept), not inserted a second time.
    assert w.identities.unions[(m.id, "carol")] == new
    links = {channel: member_id for (_, channel, _), member_id in w.identities.channels.items()}
    assert links == {"H5": new, "MINI_PROGRAM": old}  # the other channel's next login takes it over
    with caller(m.id, channel="MINI_PROGRAM"):
        mini = await w.member_cases.login("sandbox:carol", "")
    assert not mini.created and mini.member.member_id == new
    with h5(m.id):
        assert (await w.member_cases.login("sandbox:carol", "")).member.member_id == new
    assert len(w.members.events) == 2


async def test_member_login_refusals(w):
    m = await merchant(w)
    with caller(m.id), pytest.raises(Unauthenticated):
        await w.member_cases.login("sandbox:alice", "")
    with h5(m.id), pytest.raises(InvalidArgument) as bad:
        await w.member_cases.login("", "n" * 65)
    assert {v.field for v in bad.value.violations} == {"code", "nickname"}
    with h5(m.id), pytest.raises(InvalidArgument) as rejected:
        await w.member_cases.login("wx:abc", "")
    assert rejected.value.message == "the login code was not accepted"
    w.merchants.items[m.id].config = MerchantConfig(login_providers={"H5": "wechat"})
    with h5(m.id), pytest.raises(FailedPrecondition) as unavailable:
        await w.member_cases.login("sandbox:alice", "")
    assert unavailable.value.reason == "LOGIN_PROVIDER_UNAVAILABLE"
    assert w.members.items == {}


async def test_member_refresh_and_logout(w):
    m = await merchant(w)
    with h5(m.id):
        login = await w.member_cases.login("sandbox:alice", "")
        tokens = await w.member_cases.refresh(login.tokens.refresh_token)
    member_id = login.member.member_id
    first_jti = auth.verify(SECRET, login.tokens.refresh_token, auth.REFRESH).token_id
    assert w.tokens.items[first_jti].state == USED
    with caller(new_id("mch"), channel="H5"), pytest.raises(Unauthenticated) as elsewhere:
        await w.member_cases.refresh(tokens.refresh_token)
    assert elsewhere.value.reason == "TOKEN_INVALID"
    with h5(m.id, member_id=member_id):
        await w.member_cases.logout(tokens.refresh_token)
    with h5(m.id), pytest.raises(Unauthenticated) as ended:
        await w.member_cases.refresh(tokens.refresh_token)
    assert ended.value.reason == "TOKEN_REVOKED"
    # Logout moved the version once; presenting the revoked token moved it again.
    assert w.members.items[member_id].token_version == 2


async def test_me_shows_tier_and_growth_from_the_ledger(w):
    m = await merchant(w)
    with h5(m.id):
        member_id = (await w.member_cases.login("sandbox:alice", "")).member.member_id
    w.ledger.add(m.id, member_id, 100, growth=1_200)
    w.ledger.add(m.id, member_id, 30, frozen=True)
    w.ledger.add(m.id, member_id, -20)
    with h5(m.id, member_id=member_id):
        me = await w.member_cases.me()
    assert (me.tier, me.growth) == ("SILVER", 1_200)
    with h5(m.id), pytest.raises(Unauthenticated):
        await w.member_cases.me()


# ---- points from paid orders --------------------------------------------------------------

async def registered(w):
    m = await merchant(w)
    with h5(m.id):
        return m, (await w.member_cases.login("sandbox:alice", "")).member.member_id


def paid(m, member_id: str, amount: int, order_id: str | None = None) -> PaidOrder:
    return PaidOrder(event_id=new_id("evt"), merchant_id=m.id, order_id=order_id or new_id("ord"),
                     member_id=member_id, payable=amount, paid_at=PAID_AT, channel="H5")


async def test_a_paid_order_earns_frozen_points_and_growth_once(w):
    m, member_id = await registered(w)
    order = paid(m, member_id, 12_345)
    entry = await w.points.on_order_paid(order)
    assert (entry.source, entry.source_id, entry.points, entry.growth, entry.frozen) == \
        ("ORDER", order.order_id, 123, 123, True)
    assert entry.frozen_until == PAID_AT + timedelta(days=7)
    assert [type(e) for e in w.ledger.events] == [PointsEarned]
    assert (w.ledger.events[0].entry, w.ledger.events[0].channel) == (entry, "H5")
    # Another delivery of the same payment, even under a new event id, adds nothing.
    assert await w.points.on_order_paid(replace(order, event_id=new_id("evt"))) is None
    assert len(w.ledger.rows) == 1 and len(w.ledger.events) == 1


async def test_points_follow_the_tier_the_growth_so_far_reaches(w):
    m, member_id = await registered(w)
    await w.points.on_order_paid(paid(m, member_id, 100_000))  # 1,000 yuan: growth reaches SILVER
    silver = await w.points.on_order_paid(paid(m, member_id, 10_000))
    assert silver.points == 120  # 100 yuan × 1.2
    with h5(m.id, member_id=member_id):
        assert (await w.member_cases.me()).tier == "SILVER"


async def test_a_paid_order_of_an_unknown_member_is_refused(w):
    m, _ = await registered(w)
    with pytest.raises(UnknownMember):
        await w.points.on_order_paid(paid(m, new_id("mem"), 100))
    assert w.ledger.rows == []


# ---- checkout pricing -------------------------------------------------------------------

async def test_pricing_gives_the_tier_and_its_discount(w):
    m, member_id = await registered(w)
    with h5(m.id):
        assert await w.pricing.of(member_id) == ("REGULAR", 10_000)
        w.ledger.add(m.id, member_id, 0, growth=5_000)
        assert await w.pricing.of(member_id) == ("GOLD", 9_000)
        # A member unknown here is at the first tier.
        assert await w.pricing.of(new_id("mem")) == ("REGULAR", 10_000)
        with pytest.raises(InvalidArgument):
            await w.pricing.of("stf_1")


async def test_pricing_keeps_the_merchant_config_for_a_while(w):
    m, member_id = await registered(w)
    with h5(m.id):
        assert await w.pricing.of(member_id) == ("REGULAR", 10_000)
        w.merchants.items[m.id].config = MerchantConfig(tier_discount_bp=(9_900, 9_500, 9_000, 8_500))
        assert await w.pricing.of(member_id) == ("REGULAR", 10_000)
    fresh = MemberPricing(w.merchants, w.ledger, config_ttl_s=0)
    with h5(m.id):
        assert await fresh.of(member_id) == ("REGULAR", 9_900)


# ---- the payer of a WeChat payment ------------------------------------------------------

async def test_the_order_service_reads_the_members_openid_per_channel(w):
    from services.member.domain.identity import sandbox_openid
    m = await merchant(w)
    with h5(m.id):
        member_id = (await w.member_cases.login("sandbox:alice", "")).member.member_id
    with caller(m.id, service="order"):
        assert await w.member_cases.wechat_openid(member_id, "H5") == sandbox_openid("H5", "alice")
        with pytest.raises(NotFound) as none_there:
            await w.member_cases.wechat_openid(member_id, "MINI_PROGRAM")
    assert none_there.value.reason == "NO_WECHAT_IDENTITY"
    # A later link on the same channel (WeChat's own openid after the sandbox's) wins.
    await w.identities.link_channel(m.id, "H5", "o-wechat-openid", member_id)
    with caller(m.id, service="order"):
        assert await w.member_cases.wechat_openid(member_id, "H5") == "o-wechat-openid"


async def test_another_merchants_member_has_no_openid_here(w):
    m = await merchant(w)
    other = await merchant(w, "shop-b")
    with h5(m.id):
        member_id = (await w.member_cases.login("sandbox:alice", "")).member.member_id
    with caller(other.id, service="order"), pytest.raises(NotFound) as elsewhere:
        await w.member_cases.wechat_openid(member_id, "H5")
    assert elsewhere.value.reason == "NO_WECHAT_IDENTITY"
    with caller(m.id, service="order"), pytest.raises(NotFound):
        await w.member_cases.wechat_openid(new_id("mem"), "H5")


async def test_openid_read_refuses_bad_ids_and_channels(w):
    m = await merchant(w)
    with caller(m.id, service="order"), pytest.raises(InvalidArgument) as bad:
        await w.member_cases.wechat_openid("stf_1", "LIVE")
    assert {v.field for v in bad.value.violations} == {"member_id", "channel"}
    with caller(service="order"), pytest.raises(Unauthenticated):
        await w.member_cases.wechat_openid(new_id("mem"), "H5")
