"""Referral (老带新) over in-memory ports: invite codes, binding at registration (first
wins, no self, no cycle, unknown code), rewards on the first completed order only (a
fully refunded one pays nothing), the monthly cap per inviter under concurrency, replays
and a crash half-way, the rewards taken back when the rewarded first order is later
refunded as a whole (points owed when spent, used coupons kept, the cap place kept), the
farm guard, settings and the member's view."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from siyu_kit.errors import Conflict, InvalidArgument, PermissionDenied, Unauthenticated
from siyu_kit.ids import new_id

from services.member.application.members import Members
from services.member.application.referral import FinishedOrder, ReferralPoints, Referrals, RefundedOrder
from services.member.application.sessions import Sessions
from services.member.application.wechat import WeChatIdentity
from services.member.domain import referral as rules
from services.member.domain.members import Member
from services.member.domain.merchants import Merchant
from services.member.domain.referral import (Referral, ReferralBound, ReferralReversed, ReferralRewarded,
                                             ReferralSettings)
from tests.fakes.member import (FakeIdentities, FakeLedger, FakeMembers, FakeMerchants, FakeProvider,
                                FakeRefreshTokens, FakeStaff, caller)
from tests.fakes.referral import (FakeCaps, FakeCouponRewards, FakeGuard, FakeInviteCodes, FakeReferrals,
                                  FakeReferralSettings)
from tests.fakes.wechat import FakePhoneBook, FakeSms, FakeSmsChallenges, FakeWeChatApi, FakeWeChatApps

NOW = datetime(2026, 3, 31, 15, 30, tzinfo=timezone.utc)  # 23:30 on 31 March in Shanghai
KEY = b"k" * 32
INVITER_TPL, INVITEE_TPL = "cpt_" + "A" * 26, "cpt_" + "B" * 26


class World:
    pass


@pytest.fixture
async def w():
    return await _world()


async def _world() -> World:
    w = World()
    w.merchants, w.members, w.identities, w.ledger = FakeMerchants(), FakeMembers(), FakeIdentities(), FakeLedger()
    w.codes, w.referrals, w.caps, w.guard = FakeInviteCodes(), FakeReferrals(), FakeCaps(), FakeGuard()
    w.settings, w.coupons, w.phones = FakeReferralSettings(), FakeCouponRewards(), FakePhoneBook()
    w.m = Merchant.create(new_id("mch"), "shop", "Shop", "Asia/Shanghai", NOW)
    await w.merchants.add(w.m)
    w.coupons.templates |= {(w.m.id, INVITER_TPL), (w.m.id, INVITEE_TPL)}
    w.cases = Referrals(w.codes, w.referrals, w.caps, w.guard, w.settings, w.members, w.phones, w.merchants,
                        w.coupons, ReferralPoints(w.merchants, w.ledger), KEY, clock=lambda: NOW)
    w.login = Members(Sessions("unit-test-secret-unit-test-secret", FakeStaff(), w.members, FakeRefreshTokens()),
                      {"sandbox": FakeProvider()}, w.members, w.identities, w.merchants, w.ledger, referrals=w.cases)
    return w


async def member(w, nickname: str = "Alice", merchant_id: str = "") -> str:
    member_id = new_id("mem")
    await w.members.add(Member.register(member_id, merchant_id or w.m.id, "H5", nickname, NOW))
    return member_id


async def code(w, member_id: str) -> str:
    return await w.cases.code_of(w.m.id, member_id)


async def login(w, unionid: str, invite_code: str = "", nickname: str = "Bob"):
    with caller(w.m.id, channel="H5"):
        return await w.login.login(f"sandbox:{unionid}", nickname, invite_code)


def rewards_on(w, **kw) -> None:
    w.settings.items[w.m.id] = ReferralSettings(**{"enabled": True, "inviter_reward_kind": rules.POINTS,
                                                   "inviter_points": 100,
                                                   "invitee_coupon_template_id": INVITEE_TPL, **kw})


def completed(w, member_id: str, order_id: str = "", at: datetime = NOW, payable: int = 5000,
              refunded: int = 0) -> FinishedOrder:
    return FinishedOrder(w.m.id, order_id or new_id("ord"), member_id, at, payable, refunded)


async def available(w, member_id: str) -> int:
    book = await w.ledger.book(w.m.id, member_id)
    return book.available if book else 0


async def bound_pair(w, unionid: str = "bob") -> tuple[str, str]:
    inviter = await member(w)
    result = await login(w, unionid, await code(w, inviter))
    assert result.referral == rules.BOUND
    return inviter, result.member.member_id


# ---- invite codes ---------------------------------------------------------------------------
async def test_a_code_is_short_unambiguous_stable_and_unique_per_merchant(w):
    alice = await member(w)
    first = await code(w, alice)
    assert len(first) == rules.CODE_LENGTH and not set(first) & set("0O1IL")
    assert await code(w, alice) == first
    w.codes.forced = [first]  # the next member's first draw collides with Alice's code
    bob = await member(w)
    assert (await code(w, bob)) not in ("", first)


async def test_a_code_that_keeps_colliding_asks_to_try_again(w):
    alice = await member(w)
    taken = await code(w, alice)
    w.codes.forced = [taken] * 20
    with pytest.raises(Conflict) as refused:
        await code(w, await member(w))
    assert refused.value.reason == "INVITE_CODE_UNAVAILABLE"


@given(st.text(max_size=20))
def test_normalised_codes_outside_the_alphabet_are_never_codes(text):
    code = rules.normalise_code(text)
    assert rules.is_code(code) == (0 < len(code) <= rules.CODE_MAX and set(code) <= set(rules.CODE_ALPHABET))


# ---- binding -------------------------------------------------------------------------------
async def test_a_new_member_binds_to_the_codes_member_at_registration(w):
    inviter, invitee = await bound_pair(w)
    referral = await w.referrals.of_invitee(w.m.id, invitee)
    assert (referral.inviter_id, referral.state, referral.first_order_id) == (inviter, rules.STATE_BOUND, "")
    assert referral.unionid_hash == rules.guard_hash(KEY, w.m.id, "unionid", "bob")
    assert [type(e) for e in w.referrals.events] == [ReferralBound]


async def test_a_code_is_read_in_any_case_and_with_spaces(w):
    inviter = await member(w)
    c = await code(w, inviter)
    result = await login(w, "bob", f" {c[:3].lower()} {c[3:]} ")
    assert result.referral == rules.BOUND


async def test_an_unknown_code_does_not_fail_the_login_and_leaves_the_member_unbound(w):
    for i, unknown in enumerate(("ZZZZZZ", "O0I1L!")):
        result = await login(w, f"bob-{i}", unknown)
        assert result.created and result.referral == rules.UNKNOWN_CODE
        assert await w.referrals.of_invitee(w.m.id, result.member.member_id) is None


async def test_binding_happens_at_registration_only(w):
    bob = await login(w, "bob")
    inviter = await member(w)
    again = await login(w, "bob", await code(w, inviter))
    assert not again.created and again.referral == rules.NOT_NEW_MEMBER
    assert await w.referrals.of_invitee(w.m.id, bob.member.member_id) is None
    assert (await login(w, "carol")).referral == ""  # no code: nothing to say


async def test_the_first_binding_wins(w):
    inviter, invitee = await bound_pair(w)
    other = await member(w)
    outcome = await w.cases.at_registration(w.m.id, invitee, await code(w, other), "bob", created=True)
    assert outcome == rules.ALREADY_BOUND
    assert (await w.referrals.of_invitee(w.m.id, invitee)).inviter_id == inviter


async def test_nobody_invites_themself(w):
    alice = await member(w)
    assert await w.cases.at_registration(w.m.id, alice, await code(w, alice), "", created=True) == rules.SELF
    assert await w.referrals.of_invitee(w.m.id, alice) is None


async def test_no_cycles_directly_or_further_up(w):
    a = await member(w)
    b = await member(w)
    c = await member(w)
    assert await w.cases.at_registration(w.m.id, b, await code(w, a), "", created=True) == rules.BOUND
    assert await w.cases.at_registration(w.m.id, c, await code(w, b), "", created=True) == rules.BOUND
    # A invites B, B invites C: neither B nor C can invite A.
    assert await w.cases.at_registration(w.m.id, a, await code(w, b), "", created=True) == rules.CYCLE
    assert await w.cases.at_registration(w.m.id, a, await code(w, c), "", created=True) == rules.CYCLE
    assert await w.referrals.of_invitee(w.m.id, a) is None


def test_binding_refusals_as_a_rule():
    assert rules.binding_refusal("mem_b", None, []) == rules.UNKNOWN_CODE
    assert rules.binding_refusal("mem_b", "mem_b", []) == rules.SELF
    assert rules.binding_refusal("mem_a", "mem_c", ["mem_b", "mem_a"]) == rules.CYCLE
    assert rules.binding_refusal("mem_d", "mem_c", ["mem_b", "mem_a"]) == ""
    with pytest.raises(ValueError):
        Referral.bind("ref_1", "mch_1", "mem_a", "mem_a", "ABCDEF", "", NOW)


async def test_codes_of_another_merchant_are_unknown(w):
    elsewhere = await member(w, merchant_id="mch_other")
    other_code = await w.cases.code_of("mch_other", elsewhere)
    assert (await login(w, "bob", other_code)).referral == rules.UNKNOWN_CODE


# ---- rewards -------------------------------------------------------------------------------
async def test_the_first_completed_order_rewards_both_sides_once(w):
    rewards_on(w)
    inviter, invitee = await bound_pair(w)
    order = completed(w, invitee)
    referral = await w.cases.on_order_completed(order)
    assert referral.state == rules.STATE_REWARDED and referral.first_order_id == order.order_id
    assert referral.inviter_reward == rules.Reward(rules.PAID, points=100)
    assert referral.invitee_reward.outcome == rules.PAID and referral.invitee_reward.coupon_id
    assert await available(w, inviter) == 100
    for _ in range(3):  # replays and duplicates
        await w.cases.on_order_completed(order)
    assert await available(w, inviter) == 100 and len(w.coupons.issued) == 1
    assert [type(e) for e in w.referrals.events] == [ReferralBound, ReferralRewarded]
    entry = [e for _, _, e in w.ledger.rows if e.member_id == inviter]
    assert [(e.source, e.source_id, e.kind, e.points) for e in entry] == [("REFERRAL", referral.id, "REFERRAL", 100)]


async def test_a_later_order_changes_nothing(w):
    rewards_on(w)
    inviter, invitee = await bound_pair(w)
    first = completed(w, invitee)
    await w.cases.on_order_completed(first)
    later = await w.cases.on_order_completed(completed(w, invitee))
    assert later.first_order_id == first.order_id and await available(w, inviter) == 100


async def test_a_first_order_refunded_in_full_pays_nothing_and_a_later_one_is_the_first(w):
    rewards_on(w)
    inviter, invitee = await bound_pair(w)
    refunded = await w.cases.on_order_completed(completed(w, invitee, payable=5000, refunded=5000))
    assert refunded.first_order_id == "" and refunded.state == rules.STATE_BOUND
    assert await available(w, inviter) == 0 and not w.coupons.issued
    second = completed(w, invitee)
    assert (await w.cases.on_order_completed(second)).first_order_id == second.order_id
    assert await available(w, inviter) == 100


# ---- reversal: the rewarded first order refunded in full afterwards ----------------------------
def refunded(w, invitee: str, order: FinishedOrder, refunded_amount: int, refund_id: str = "",
             every_line: bool = False) -> RefundedOrder:
    return RefundedOrder(w.m.id, order.order_id, invitee, refund_id or new_id("rfd"), order.payable, refunded_amount,
                         every_line)


def owed(w, member_id: str) -> int:
    book = w.ledger.books.get((w.m.id, member_id))
    return book.owed if book else 0


async def test_a_full_refund_of_the_rewarded_first_order_takes_the_rewards_back_once(w):
    rewards_on(w, monthly_cap=1)
    inviter, invitee = await bound_pair(w)
    order = completed(w, invitee)
    paid = await w.cases.on_order_completed(order)
    full = refunded(w, invitee, order, 5000)
    for _ in range(3):  # replays and duplicates take back nothing more
        reversed_ = await w.cases.on_order_refunded(full)
    assert reversed_.state == rules.STATE_REVERSED and reversed_.reversed_by == full.refund_id
    assert reversed_.inviter_reversal == rules.Reversal(rules.REVERSED, points=100, owed=0)
    assert reversed_.invitee_reversal == rules.Reversal(rules.REVOKED, coupon_id=paid.invitee_reward.coupon_id,
                                                        coupon_state="REVOKED")
    assert await available(w, inviter) == 0 and owed(w, inviter) == 0
    assert w.coupons.states[paid.invitee_reward.coupon_id] == "REVOKED"
    entries = [(e.source, e.source_id, e.kind, e.points) for _, _, e in w.ledger.rows if e.member_id == inviter]
    assert entries == [("REFERRAL", paid.id, "REFERRAL", 100), ("REFERRAL", paid.id, "REVERSE", -100)]
    assert [type(e) for e in w.referrals.events] == [ReferralBound, ReferralRewarded, ReferralReversed]
    # The month's place stays taken: the cap of 1 is spent, the next invitee's reward is capped.
    assert w.caps.counters[(w.m.id, inviter, "202603")]["count"] == 1
    second = (await login(w, "carol", await code(w, inviter))).member.member_id
    assert (await w.cases.on_order_completed(completed(w, second))).inviter_reward.outcome == rules.CAPPED


async def test_points_already_spent_are_recorded_as_owed_and_a_used_coupon_stays_used(w):
    rewards_on(w, inviter_points=100)
    inviter, invitee = await bound_pair(w)
    order = completed(w, invitee)
    paid = await w.cases.on_order_completed(order)
    # The inviter spent 70 of the 100; the invitee used the coupon.
    book = w.ledger.books[(w.m.id, inviter)]
    key = next(iter(book.lots))
    book.lots[key] -= 70
    book.available -= 70
    book.balance -= 70
    w.coupons.states[paid.invitee_reward.coupon_id] = "USED"
    reversed_ = await w.cases.on_order_refunded(refunded(w, invitee, order, 5000))
    assert reversed_.inviter_reversal == rules.Reversal(rules.OWED, points=100, owed=70)
    assert reversed_.invitee_reversal.outcome == rules.KEPT and reversed_.invitee_reversal.coupon_state == "USED"
    assert await available(w, inviter) == 0 and owed(w, inviter) == 70
    assert w.ledger.books[(w.m.id, inviter)].consistent() == []
    # The next points the inviter earns pay off what is owed first.
    rewards_on(w, inviter_points=100)
    next_invitee = (await login(w, "dave", await code(w, inviter))).member.member_id
    await w.cases.on_order_completed(completed(w, next_invitee))
    assert owed(w, inviter) == 0 and await available(w, inviter) == 30


async def test_a_partial_refund_keeps_the_rewards_and_a_later_full_one_reverses(w):
    rewards_on(w)
    inviter, invitee = await bound_pair(w)
    order = completed(w, invitee)
    await w.cases.on_order_completed(order)
    kept = await w.cases.on_order_refunded(refunded(w, invitee, order, 2000))
    assert kept.state == rules.STATE_REWARDED and await available(w, inviter) == 100
    # Every unit of every line refunded (the shipping fee kept): the whole order, reversed.
    done = await w.cases.on_order_refunded(refunded(w, invitee, order, 4500, every_line=True))
    assert done.state == rules.STATE_REVERSED and await available(w, inviter) == 0


async def test_refunds_of_other_orders_and_of_members_nobody_invited_change_nothing(w):
    rewards_on(w)
    inviter, invitee = await bound_pair(w)
    order = completed(w, invitee)
    await w.cases.on_order_completed(order)
    other = completed(w, invitee)
    assert (await w.cases.on_order_refunded(refunded(w, invitee, other, 5000))).state == rules.STATE_REWARDED
    alone = await member(w)
    assert await w.cases.on_order_refunded(refunded(w, alone, completed(w, alone), 5000)) is None
    assert await available(w, inviter) == 100


async def test_a_refund_before_the_rewards_were_paid_finishes_them_then_reverses(w):
    rewards_on(w, inviter_reward_kind=rules.COUPON, inviter_coupon_template_id=INVITER_TPL, inviter_points=0)
    inviter, invitee = await bound_pair(w)
    order = completed(w, invitee)
    w.coupons.crash_after = 1
    with pytest.raises(ConnectionError):
        await w.cases.on_order_completed(order)
    reversed_ = await w.cases.on_order_refunded(refunded(w, invitee, order, 5000))
    assert reversed_.state == rules.STATE_REVERSED
    assert (reversed_.inviter_reversal.outcome, reversed_.invitee_reversal.outcome) == (rules.REVOKED, rules.REVOKED)
    assert sorted(w.coupons.states.values()) == ["REVOKED", "REVOKED"]


async def test_a_reversal_that_stopped_half_way_is_finished_taking_nothing_twice(w):
    rewards_on(w)
    inviter, invitee = await bound_pair(w)
    order = completed(w, invitee)
    await w.cases.on_order_completed(order)
    revoke = w.coupons.revoke

    async def dies(*args):
        raise ConnectionError("the process died after the points were taken back")

    w.coupons.revoke = dies  # the inviter's points are taken back first, then the invitee's coupon
    full = refunded(w, invitee, order, 5000)
    with pytest.raises(ConnectionError):
        await w.cases.on_order_refunded(full)
    assert (await w.referrals.of_invitee(w.m.id, invitee)).state == rules.STATE_REWARDED
    assert await available(w, inviter) == 0
    w.coupons.revoke = revoke
    done = await w.cases.on_order_refunded(full)
    assert done.state == rules.STATE_REVERSED and done.inviter_reversal == rules.Reversal(rules.REVERSED, 100, 0)
    assert done.invitee_reversal.outcome == rules.REVOKED
    reversals = [e for _, _, e in w.ledger.rows if e.member_id == inviter and e.kind == "REVERSE"]
    assert len(reversals) == 1 and await available(w, inviter) == 0 and owed(w, inviter) == 0


@pytest.mark.parametrize("payable,refunded_amount,every_line,reverses", [
    (5000, 5000, False, True), (5000, 4999, False, False), (5000, 4500, True, True), (0, 0, False, False),
    (0, 0, True, True)])
def test_only_a_refund_of_the_whole_order_reverses(payable, refunded_amount, every_line, reverses):
    assert rules.reverses(payable, refunded_amount, every_line) is reverses


async def test_two_orders_completing_together_pay_once(w):
    rewards_on(w)
    inviter, invitee = await bound_pair(w)
    done = await asyncio.gather(*(w.cases.on_order_completed(completed(w, invitee)) for _ in range(5)))
    assert len({r.first_order_id for r in done}) == 1
    assert await available(w, inviter) == 100 and len(w.coupons.issued) == 1


async def test_members_nobody_invited_are_left_alone(w):
    rewards_on(w)
    alone = await member(w)
    assert await w.cases.on_order_completed(completed(w, alone)) is None
    assert not w.coupons.issued and not w.ledger.rows


async def test_a_crash_half_way_is_finished_by_the_next_delivery_paying_nothing_twice(w):
    rewards_on(w, inviter_reward_kind=rules.COUPON, inviter_coupon_template_id=INVITER_TPL, inviter_points=0)
    inviter, invitee = await bound_pair(w)
    order = completed(w, invitee)
    w.coupons.crash_after = 1  # dies right after the inviter's coupon
    with pytest.raises(ConnectionError):
        await w.cases.on_order_completed(order)
    assert (await w.referrals.of_invitee(w.m.id, invitee)).state == rules.STATE_REWARDING
    referral = await w.cases.on_order_completed(order)
    assert referral.state == rules.STATE_REWARDED
    assert referral.inviter_reward.outcome == rules.PAID and referral.invitee_reward.outcome == rules.PAID
    assert sorted(k[1] for k in w.coupons.issued) == sorted([inviter, invitee])
    assert w.caps.counters[(w.m.id, inviter, "202603")]["count"] == 1


async def test_the_rules_in_force_at_the_first_order_decide_even_on_a_replay(w):
    rewards_on(w)
    inviter, invitee = await bound_pair(w)
    order = completed(w, invitee)
    w.coupons.crash_after = 1
    with pytest.raises(ConnectionError):
        await w.cases.on_order_completed(order)
    rewards_on(w, inviter_points=999, enabled=False)
    referral = await w.cases.on_order_completed(order)
    assert referral.inviter_reward.points == 100 and await available(w, inviter) == 100


async def test_rewards_off_pay_nothing_but_the_first_order_is_spent(w):
    inviter, invitee = await bound_pair(w)  # the default: off
    referral = await w.cases.on_order_completed(completed(w, invitee))
    assert (referral.inviter_reward.outcome, referral.invitee_reward.outcome) == (rules.DISABLED, rules.DISABLED)
    assert await available(w, inviter) == 0 and not w.coupons.issued


async def test_a_refused_coupon_is_the_outcome_not_a_retry(w):
    rewards_on(w)
    w.coupons.left[INVITEE_TPL] = 0
    _, invitee = await bound_pair(w)
    referral = await w.cases.on_order_completed(completed(w, invitee))
    assert referral.state == rules.STATE_REWARDED and referral.invitee_reward.outcome == "COUPON_SOLD_OUT"


async def test_the_monthly_cap_holds_under_concurrency_and_resets_next_month(w):
    rewards_on(w, monthly_cap=3)
    inviter = await member(w)
    c = await code(w, inviter)
    invitees = [(await login(w, f"friend-{i}", c)).member.member_id for i in range(8)]
    done = await asyncio.gather(*(w.cases.on_order_completed(completed(w, i)) for i in invitees[:6]))
    outcomes = sorted(r.inviter_reward.outcome for r in done)
    assert outcomes == [rules.CAPPED] * 3 + [rules.PAID] * 3
    assert all(r.invitee_reward.outcome == rules.PAID for r in done)  # the invitees are not capped
    assert await available(w, inviter) == 300
    # 1 April in Shanghai (still 31 March in UTC): a new month.
    april = datetime(2026, 3, 31, 16, 30, tzinfo=timezone.utc)
    later = await asyncio.gather(*(w.cases.on_order_completed(completed(w, i, at=april)) for i in invitees[6:]))
    assert all(r.inviter_reward.outcome == rules.PAID for r in later) and await available(w, inviter) == 500


def test_the_cap_month_is_the_merchants_calendar_month():
    assert rules.month_of(NOW, "Asia/Shanghai") == "202603"
    assert rules.month_of(datetime(2026, 3, 31, 16, 0, tzinfo=timezone.utc), "Asia/Shanghai") == "202604"
    assert rules.month_of(datetime(2026, 3, 31, 16, 0, tzinfo=timezone.utc), "UTC") == "202603"


async def test_an_erased_and_re_registered_person_gets_no_new_member_reward(w):
    rewards_on(w)
    # Someone with this unionid got a new-member reward before, as another member since erased.
    w.guard.entries[(w.m.id, rules.guard_hash(KEY, w.m.id, "unionid", "returning"))] = "mem_erased"
    inviter, invitee = await bound_pair(w, unionid="returning")
    referral = await w.cases.on_order_completed(completed(w, invitee))
    assert referral.invitee_reward.outcome == rules.FARM_GUARDED
    assert referral.inviter_reward.outcome == rules.PAID  # the inviter brought a real buyer
    assert not [k for k in w.coupons.issued if k[1] == invitee]


async def test_the_guard_knows_phones_too_and_remembers_each_rewarded_invitee(w):
    rewards_on(w)
    w.guard.entries[(w.m.id, rules.guard_hash(KEY, w.m.id, "phone", "13800138000"))] = "mem_erased"
    _, invitee = await bound_pair(w, unionid="fresh")
    w.phones.items[(w.m.id, "13800138000")] = invitee
    assert (await w.cases.on_order_completed(completed(w, invitee))).invitee_reward.outcome == rules.FARM_GUARDED
    _, paid = await bound_pair(w, unionid="first-timer")
    assert (await w.cases.on_order_completed(completed(w, paid))).invitee_reward.outcome == rules.PAID
    assert w.guard.entries[(w.m.id, rules.guard_hash(KEY, w.m.id, "unionid", "first-timer"))] == paid


# ---- settings --------------------------------------------------------------------------------
def operator(w, role="OPERATOR"):
    return caller(w.m.id, staff_id=new_id("stf"), roles=(role,))


async def test_settings_default_off_and_round_trip(w):
    with operator(w):
        assert await w.cases.get_settings() == ReferralSettings()
        wanted = ReferralSettings(enabled=True, inviter_reward_kind=rules.COUPON,
                                  inviter_coupon_template_id=INVITER_TPL, invitee_coupon_template_id=INVITEE_TPL,
                                  monthly_cap=5)
        assert await w.cases.update_settings(wanted) == wanted
        assert await w.cases.get_settings() == wanted


async def test_bad_settings_are_field_violations_and_nothing_is_written(w):
    bad = ReferralSettings(enabled=True, inviter_reward_kind="", inviter_points=-1, monthly_cap=0,
                           invitee_coupon_template_id="cpt_" + "C" * 26)
    with operator(w):
        with pytest.raises(InvalidArgument) as refused:
            await w.cases.update_settings(bad)
        with pytest.raises(InvalidArgument) as no_points:
            await w.cases.update_settings(ReferralSettings(enabled=True, inviter_points=0))
    assert {v.field for v in refused.value.violations} == {
        "settings.inviter_reward_kind", "settings.inviter_points", "settings.monthly_cap",
        "settings.invitee_coupon_template_id"}
    assert [v.field for v in no_points.value.violations] == ["settings.inviter_points"]
    assert w.settings.items == {}


async def test_settings_are_for_operators(w):
    with operator(w, "FINANCE"):
        with pytest.raises(PermissionDenied):
            await w.cases.get_settings()
        with pytest.raises(PermissionDenied):
            await w.cases.update_settings(ReferralSettings())
    with caller(w.m.id, member_id=await member(w)):
        with pytest.raises(Unauthenticated):
            await w.cases.get_settings()


# ---- the member's view -------------------------------------------------------------------------
async def test_the_inviter_sees_masked_invitees_and_rewards_a_page_at_a_time(w):
    rewards_on(w)
    inviter = await member(w, "Alice")
    c = await code(w, inviter)
    ids = [(await login(w, f"friend-{i}", c, nickname=f"张三{i}")).member.member_id for i in range(3)]
    w.phones.items[(w.m.id, "13800138000")] = ids[0]
    await w.cases.on_order_completed(completed(w, ids[0]))
    with caller(w.m.id, member_id=inviter):
        first = await w.cases.mine(2, "")
        second = await w.cases.mine(2, first.next_page_token)
        with pytest.raises(InvalidArgument) as bad:
            await w.cases.mine(2, "not-a-token")
    assert first.invite_code == c and not first.invited and first.inviter_nickname_masked == ""
    shown = first.invitees + second.invitees
    assert second.next_page_token == "" and len(shown) == 3
    assert all(i.nickname_masked.startswith("张") and "三" not in i.nickname_masked for i in shown)
    oldest = shown[-1]
    assert (oldest.phone_masked, oldest.first_order_completed, oldest.reward.points) == ("138****8000", True, 100)
    assert [v.field for v in bad.value.violations] == ["page_token"]
    with caller(w.m.id, member_id=ids[1]):
        mine = await w.cases.mine(0, "")
    assert mine.invited and mine.inviter_nickname_masked == "A****" and mine.invitees == []


def test_masks():
    assert rules.mask_phone("13800138000") == "138****8000" and rules.mask_phone("") == ""
    assert rules.mask_nickname("张三丰") == "张**" and rules.mask_nickname("") == ""


@hsettings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_only_an_order_refunded_in_full_does_not_count(payable, refunded):
    assert rules.counts(payable, refunded) == (payable == 0 or refunded < payable)


@hsettings(max_examples=25, deadline=None)
@given(st.integers(0, 10), st.integers(1, 6))
def test_concurrent_first_orders_never_pay_an_inviter_more_than_the_cap(invitees, cap):
    async def run() -> None:
        w = await _world()
        rewards_on(w, monthly_cap=cap)
        inviter = await member(w)
        c = await code(w, inviter)
        ids = [(await login(w, f"friend-{i}", c)).member.member_id for i in range(invitees)]
        done = await asyncio.gather(*(w.cases.on_order_completed(completed(w, i)) for i in ids * 2))
        paid = {r.id for r in done if r.inviter_reward.outcome == rules.PAID}
        assert len(paid) == min(invitees, cap) and await available(w, inviter) == 100 * len(paid)
        assert w.caps.counters.get((w.m.id, inviter, "202603"), {"count": 0})["count"] == len(paid)
    asyncio.run(run())


async def test_a_wechat_mini_program_login_binds_and_keeps_the_unionid_for_the_guard(w):
    apps, api = FakeWeChatApps(), FakeWeChatApi()
    wechat = WeChatIdentity(apps, api, w.phones, FakeSmsChallenges(), FakeSms(), KEY, w.members)
    members = Members(Sessions("unit-test-secret-unit-test-secret", FakeStaff(), w.members, FakeRefreshTokens()),
                      {"sandbox": FakeProvider()}, w.members, w.identities, w.merchants, w.ledger, wechat, w.phones,
                      referrals=w.cases)
    with caller(w.m.id, staff_id="stf_owner", roles=("OWNER",)):
        await wechat.set_app("MINI_PROGRAM", "wxmini000001", "mini_secret_0000001")
    inviter = await member(w)
    with caller(w.m.id, channel="MINI_PROGRAM"):
        done = await members.login(api.login_code("login", "wxmini000001", "o-mini", "u-wx"), "", await code(w, inviter))
    assert done.created and done.referral == rules.BOUND
    referral = await w.referrals.of_invitee(w.m.id, done.member.member_id)
    assert referral.inviter_id == inviter and referral.unionid_hash == rules.guard_hash(KEY, w.m.id, "unionid", "u-wx")
