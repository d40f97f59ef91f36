"""Coupon templates and issuing over in-memory ports: staff edits and lifecycle, self-claim
with its refusals and repeats, races for the last units and for a member's limit, staff
grants as a resumable batch job, and the recovery of claims a crash left half way."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from siyu_kit.ids import new_id
from siyu_kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unauthenticated

from services.member.domain import coupons as rules
from services.member.domain.coupons import (CouponKind, CouponRule, CouponState, GrantState, MemberCoupon,
                                            TemplateState, Validity)
from services.member.domain.members import Member
from tests.fakes.member import caller
from tests.fakes.coupon_world import M, OTHER, START, active, coupon_world, draft, member, operator


@pytest.fixture
def w():
    return coupon_world(with_members=True)


async def claim(w, template_id: str, member_id: str, key: str = "k1"):
    with member(member_id):
        return await w.cases.claim(template_id, key)


async def outcome(w, template_id: str, member_id: str, key: str) -> str:
    try:
        await claim(w, template_id, member_id, key)
        return "CLAIMED"
    except FailedPrecondition as refused:
        return refused.reason


# ---- templates ------------------------------------------------------------------------------------

async def test_an_operator_creates_edits_and_moves_a_template(w):
    with operator():
        template = await w.cases.create_template(draft(), new_id("k"))
        assert template.state == TemplateState.DRAFT and template.id.startswith("cpt_")
        edited = await w.cases.edit_template(template.id, draft(name="Spring 100-15"))
        assert edited.name == "Spring 100-15" and edited.version == 2
        assert (await w.cases.activate(template.id)).state == TemplateState.ACTIVE
        assert (await w.cases.activate(template.id)).version == 3  # a repeat writes nothing
        assert (await w.cases.pause(template.id)).state == TemplateState.PAUSED
        assert (await w.cases.activate(template.id)).state == TemplateState.ACTIVE
        assert (await w.cases.end(template.id)).state == TemplateState.ENDED
        rows, token = await w.cases.list_templates(TemplateState.ENDED, 10, "")
        assert ([t.id for t in rows], token) == ([template.id], "")
    assert [type(e).__name__ for e in w.templates.events] == [
        "TemplateCreated", "TemplateChanged", "TemplateStateChanged", "TemplateStateChanged",
        "TemplateStateChanged", "TemplateStateChanged"]


async def test_a_bad_template_is_refused_with_field_violations_and_nothing_written(w):
    with operator(), pytest.raises(InvalidArgument) as refused:
        await w.cases.create_template(draft(total=0, rule=CouponRule(CouponKind.PERCENT_OFF, percent_off_bp=0)), new_id("k"))
    assert {"total", "rule.percent_off_bp", "rule.cap"} <= {v.field for v in refused.value.violations}
    assert not w.templates.items


async def test_only_operators_of_the_merchant_reach_templates(w):
    template_id = await active(w)
    with caller(M, staff_id="stf_guide", roles=("GUIDE",)):
        with pytest.raises(PermissionDenied):
            await w.cases.create_template(draft(), new_id("k"))
        with pytest.raises(PermissionDenied):  # the role is checked before the fields
            await w.cases.edit_template(template_id, draft(total=0))
        with pytest.raises(PermissionDenied):
            await w.cases.change_total(template_id, 0)
        with pytest.raises(PermissionDenied):
            await w.cases.list_templates(None, 10, "")
    with member("mem_1"), pytest.raises(Unauthenticated):
        await w.cases.get_template(template_id)
    with operator(OTHER), pytest.raises(NotFound):
        await w.cases.get_template(template_id)
    with operator(OTHER), pytest.raises(NotFound):
        await w.cases.end(template_id)


async def test_an_active_template_changes_only_its_total_never_below_issued(w):
    template_id = await active(w, total=2)
    await claim(w, template_id, "mem_1")
    await claim(w, template_id, "mem_2")
    with operator():
        with pytest.raises(FailedPrecondition) as refused:
            await w.cases.edit_template(template_id, draft())
        assert refused.value.reason == rules.NOT_EDITABLE
        with pytest.raises(FailedPrecondition) as refused:
            await w.cases.change_total(template_id, 1)
        assert refused.value.reason == rules.TOTAL_BELOW_ISSUED
        assert (await w.cases.change_total(template_id, 3)).total == 3
    assert (await claim(w, template_id, "mem_3")).state == CouponState.AVAILABLE
    assert w.templates.items[template_id].issued == 3


async def test_a_lowered_total_loses_to_claims_that_passed_it_meanwhile(w):
    template_id = await active(w, total=10)
    stale = await w.templates.get(M, template_id)
    for i in range(3):
        await claim(w, template_id, f"mem_{i}")
    stale.change_total(2, START)  # decided on issued == 0
    from siyu_kit.aggregate import StaleVersion
    with pytest.raises(StaleVersion):
        await w.templates.save(stale)
    assert w.templates.items[template_id].total == 10


# ---- self-claim -------------------------------------------------------------------------------------

async def test_a_member_claims_a_coupon_valid_for_n_days_and_a_repeat_answers_the_same(w):
    template_id = await active(w)
    w.clock.now = START + timedelta(hours=1)
    first = await claim(w, template_id, "mem_1")
    assert (first.state, first.slot, first.source) == (CouponState.AVAILABLE, 1, rules.CLAIM)
    assert (first.valid_from, first.valid_until) == (w.clock.now, w.clock.now + timedelta(days=7))
    again = await claim(w, template_id, "mem_1")
    assert again.id == first.id
    assert w.templates.items[template_id].issued == 1
    assert [type(e).__name__ for e in w.coupons.events] == ["CouponClaimed"]
    assert w.templates.entries[template_id] == {}  # the unit is settled


async def test_claims_are_refused_with_their_reasons(w):
    template_id = await active(w, total=2)
    assert await outcome(w, template_id, "mem_1", "a") == "CLAIMED"
    assert await outcome(w, template_id, "mem_1", "b") == rules.LIMIT_REACHED
    assert await outcome(w, template_id, "mem_2", "a") == "CLAIMED"
    assert await outcome(w, template_id, "mem_3", "a") == rules.SOLD_OUT
    with operator():
        draft_only = (await w.cases.create_template(draft(), new_id("k"))).id
    assert await outcome(w, draft_only, "mem_1", "a") == rules.NOT_CLAIMABLE
    paused = await active(w)
    with operator():
        await w.cases.pause(paused)
    assert await outcome(w, paused, "mem_1", "a") == rules.NOT_CLAIMABLE
    staff_only = await active(w, self_claim=False)
    assert await outcome(w, staff_only, "mem_1", "a") == rules.NOT_CLAIMABLE
    window = await active(w, validity=Validity(START, START + timedelta(days=1)))
    w.clock.now = START + timedelta(days=1)
    assert await outcome(w, window, "mem_1", "a") == rules.NOT_CLAIMABLE
    with pytest.raises(NotFound):
        await claim(w, "cpt_missing", "mem_1")
    with member("mem_1", OTHER), pytest.raises(NotFound):
        await w.cases.claim(template_id, "z")
    with member("mem_1"), pytest.raises(InvalidArgument):
        await w.cases.claim(template_id, "")


async def test_a_per_member_limit_of_three_gives_three_then_refuses(w):
    template_id = await active(w, per_member_limit=3)
    coupons = [await claim(w, template_id, "mem_1", f"k{i}") for i in range(3)]
    assert sorted(c.slot for c in coupons) == [1, 2, 3]
    assert await outcome(w, template_id, "mem_1", "k4") == rules.LIMIT_REACHED


async def test_a_freed_slot_is_found_even_when_later_slots_are_taken(w):
    template_id = await active(w, per_member_limit=3)
    for i in range(3):
        await claim(w, template_id, "mem_1", f"k{i}")
    slot_two = next(c for c in w.coupons.items.values() if c.slot == 2)
    w.coupons.forget(slot_two.id)  # a slot freed (a claim that sold out)
    w.templates.items[template_id].issued -= 1
    assert (await claim(w, template_id, "mem_1", "k9")).slot == 2


# ---- races --------------------------------------------------------------------------------------------

async def test_two_hundred_members_racing_for_one_hundred_coupons_get_exactly_one_hundred(w):
    template_id = await active(w, total=100)
    results = await asyncio.gather(*(outcome(w, template_id, f"mem_{i:03}", "grab") for i in range(200)))
    assert results.count("CLAIMED") == 100
    assert results.count(rules.SOLD_OUT) == 100
    assert w.templates.items[template_id].issued == 100
    assert len(w.coupons.of_template(template_id, CouponState.AVAILABLE)) == 100
    assert len(w.coupons.items) == 100  # every sold-out claim gave its slot back
    assert w.templates.entries[template_id] == {}


async def test_a_member_racing_with_many_keys_never_passes_the_limit(w):
    template_id = await active(w, total=100, per_member_limit=3)
    results = await asyncio.gather(*(outcome(w, template_id, f"mem_{i % 5}", f"k{i}") for i in range(50)))
    assert results.count("CLAIMED") == 15
    for i in range(5):
        mine = [c for c in w.coupons.items.values() if c.member_id == f"mem_{i}"]
        assert sorted(c.slot for c in mine) == [1, 2, 3]
    assert w.templates.items[template_id].issued == 15


async def test_claimers_refused_by_their_limit_never_hold_a_unit_from_others(w):
    template_id = await active(w, total=10, per_member_limit=1)
    greedy = [outcome(w, template_id, "mem_greedy", f"g{i}") for i in range(30)]
    others = [outcome(w, template_id, f"mem_{i}", "k") for i in range(9)]
    results = await asyncio.gather(*greedy, *others)
    assert results.count("CLAIMED") == 10 and w.templates.items[template_id].issued == 10


async def test_the_same_key_at_once_issues_one_coupon(w):
    template_id = await active(w, per_member_limit=5)
    results = await asyncio.gather(*(claim(w, template_id, "mem_1", "same") for _ in range(5)),
                                   return_exceptions=True)
    coupons = [r for r in results if isinstance(r, MemberCoupon)]
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, MemberCoupon))
    assert {c.id for c in coupons} and len({c.id for c in coupons}) == 1
    assert len(w.coupons.items) == 1 and w.templates.items[template_id].issued == 1
    assert (await claim(w, template_id, "mem_1", "same")).id == coupons[0].id


async def test_an_unlimited_template_keeps_issuing(w):
    template_id = await active(w, total=None)
    results = await asyncio.gather(*(outcome(w, template_id, f"mem_{i}", "k") for i in range(150)))
    assert results.count("CLAIMED") == 150 and w.templates.items[template_id].issued == 150


async def test_ending_a_template_during_a_grab_stops_issuing(w):
    template_id = await active(w, total=100)
    await asyncio.gather(*(outcome(w, template_id, f"mem_{i}", "k") for i in range(20)))
    with operator():
        await w.cases.end(template_id)
    assert await outcome(w, template_id, "mem_late", "k") == rules.NOT_CLAIMABLE
    assert w.templates.items[template_id].issued == len(w.coupons.items) == 20


# ---- crashes part way ------------------------------------------------------------------------------------

async def test_a_crash_before_the_unit_frees_the_slot_after_the_grace(w):
    template_id = await active(w)
    template = await w.templates.get(M, template_id)
    left = MemberCoupon.claiming("cpn_left", template, "mem_1", 1, f"claim:{template_id}:mem_1:k1", rules.CLAIM, "", START)
    await w.coupons.insert(left)
    with pytest.raises(Conflict):
        await claim(w, template_id, "mem_1", "k1")  # the same request again: being issued
    assert await w.cases.recover_claims() == 0  # within the grace nothing is touched
    w.clock.now = START + timedelta(minutes=2)
    assert await w.cases.recover_claims() == 1
    assert not w.coupons.items and w.templates.items[template_id].issued == 0
    assert (await claim(w, template_id, "mem_1", "k1")).state == CouponState.AVAILABLE


async def test_a_crash_after_the_unit_is_finished_by_recovery(w):
    template_id = await active(w)
    template = await w.templates.get(M, template_id)
    left = MemberCoupon.claiming("cpn_left", template, "mem_1", 1, f"claim:{template_id}:mem_1:k1", rules.CLAIM, "", START)
    await w.coupons.insert(left)
    assert await w.templates.take_unit(M, template_id, left.id, START)
    w.clock.now = START + timedelta(minutes=2)
    assert await w.cases.recover_claims() == 1
    assert w.coupons.items["cpn_left"].state == CouponState.AVAILABLE
    assert w.templates.items[template_id].issued == 1 and w.templates.entries[template_id] == {}
    assert (await claim(w, template_id, "mem_1", "k1")).id == "cpn_left"


async def test_a_unit_taken_for_a_coupon_that_is_gone_goes_back_once(w):
    template_id = await active(w)
    assert await w.templates.take_unit(M, template_id, "cpn_gone", START)
    assert await w.templates.take_unit(M, template_id, "cpn_gone", START)  # the same coupon: no second unit
    assert w.templates.items[template_id].issued == 1
    w.clock.now = START + timedelta(minutes=2)
    assert await w.cases.recover_claims() == 1
    assert await w.cases.recover_claims() == 0
    assert w.templates.items[template_id].issued == 0


# ---- staff grants ----------------------------------------------------------------------------------------

async def register(w, *ids: str, merchant: str = M) -> None:
    for member_id in ids:
        await w.members.add(Member.register(member_id, merchant, "MINI_PROGRAM", member_id, START))


async def test_a_grant_runs_in_chunks_with_progress_and_counts_who_got_nothing(w):
    template_id = await active(w, total=5, self_claim=False)
    ids = [f"mem_{i}" for i in range(7)]
    await register(w, *ids)
    await claim_as_grant_already(w, template_id, "mem_0")
    with operator():
        job = await w.cases.start_grant(template_id, [*ids, "mem_nobody", "mem_1"], "grant-1")
    assert (job.state, job.member_ids[-1]) == (GrantState.RUNNING, "mem_nobody")  # duplicates once
    job = await w.cases.run_grant(M, job.id, chunk=3)
    assert (job.cursor, job.granted, job.state) == ("3", 2, GrantState.RUNNING)
    assert job.skipped == {rules.LIMIT_REACHED: 1}
    while job.state != GrantState.DONE:
        job = await w.cases.run_grant(M, job.id, chunk=3)
    assert job.granted == 4 and job.skipped == {rules.LIMIT_REACHED: 1, rules.SOLD_OUT: 2, "NOT_FOUND": 1}
    with operator():
        seen = await w.cases.grant_progress(job.id)
    assert (seen.granted, seen.total_skipped, seen.state) == (4, 4, GrantState.DONE)
    assert sorted(c.source for c in w.coupons.items.values()) == [rules.BIRTHDAY, *[rules.GRANT] * 4]
    assert w.templates.items[template_id].issued == 5


async def claim_as_grant_already(w, template_id: str, member_id: str) -> None:
    issued = await w.cases.issue(M, template_id, member_id, f"birthday:{member_id}:2026", rules.BIRTHDAY, "2026")
    assert issued.coupon is not None
    again = await w.cases.issue(M, template_id, member_id, f"birthday:{member_id}:2026", rules.BIRTHDAY, "2026")
    assert again.repeated and again.coupon.id == issued.coupon.id


async def test_a_grant_resumes_after_a_crash_and_issues_nothing_twice(w):
    template_id = await active(w, total=None)
    ids = [f"mem_{i}" for i in range(6)]
    await register(w, *ids)
    with operator():
        job = await w.cases.start_grant(template_id, ids, "grant-1")
    w.grants.writes_by_others = 1  # the chunk is issued, then its progress save is lost (a crash)
    from siyu_kit.aggregate import StaleVersion
    with pytest.raises(StaleVersion):
        await w.cases.run_grant(M, job.id, chunk=4)
    assert len(w.coupons.items) == 4
    while (job := await w.grants.get(M, job.id)).state != GrantState.DONE:
        await w.cases.resume_grants(chunk=4)
    assert job.granted == 6 and len(w.coupons.items) == 6
    assert w.templates.items[template_id].issued == 6
    assert await w.cases.resume_grants() == 0


async def test_two_runners_of_one_grant_issue_each_coupon_once(w):
    template_id = await active(w, total=None)
    ids = [f"mem_{i}" for i in range(10)]
    await register(w, *ids)
    with operator():
        job = await w.cases.start_grant(template_id, ids, "grant-1")
    await asyncio.gather(*(w.cases.run_grant(M, job.id, chunk=10) for _ in range(3)), return_exceptions=True)
    assert len(w.coupons.items) == 10 and w.templates.items[template_id].issued == 10
    assert (await w.grants.get(M, job.id)).granted == 10


async def test_a_grant_key_answers_its_job_and_refuses_another_grant(w):
    template_id = await active(w)
    with operator():
        job = await w.cases.start_grant(template_id, ["mem_1", "mem_2"], "grant-1")
        assert (await w.cases.start_grant(template_id, ["mem_1", "mem_2"], "grant-1")).id == job.id
        with pytest.raises(FailedPrecondition) as refused:
            await w.cases.start_grant(template_id, ["mem_3"], "grant-1")
        assert refused.value.reason == rules.GRANT_KEY_REUSED
        with pytest.raises(InvalidArgument):
            await w.cases.start_grant(template_id, ["someone"], "grant-2")
        with pytest.raises(InvalidArgument):
            await w.cases.start_grant(template_id, [], "grant-3")
        draft_id = (await w.cases.create_template(draft(), new_id("k"))).id
        with pytest.raises(FailedPrecondition) as refused:
            await w.cases.start_grant(draft_id, ["mem_1"], "grant-4")
        assert refused.value.reason == rules.NOT_CLAIMABLE
    with caller(M, staff_id="stf_fin", roles=("FINANCE",)), pytest.raises(PermissionDenied):
        await w.cases.start_grant(template_id, ["mem_1"], "grant-5")
    assert len(w.grants.items) == 1


async def test_templates_are_listed_newest_first_with_page_tokens_bound_to_the_filter(w):
    with operator():
        ids = [(await w.cases.create_template(draft(name=f"t{i}"), new_id("k"))).id for i in range(5)]
        first, token = await w.cases.list_templates(None, 2, "")
        second, token2 = await w.cases.list_templates(None, 2, token)
        third, end = await w.cases.list_templates(None, 2, token2)
        assert [t.id for t in first + second + third] == sorted(ids, reverse=True) and end == ""
        with pytest.raises(InvalidArgument) as refused:
            await w.cases.list_templates(TemplateState.ACTIVE, 2, token)
        assert [v.field for v in refused.value.violations] == ["page_token"]
        with pytest.raises(InvalidArgument):
            await w.cases.list_templates(None, 101, "")
    with operator(OTHER):
        assert await w.cases.list_templates(None, 10, "") == ([], "")


async def test_a_grant_waits_while_its_template_is_paused_and_skips_once_it_ended(w):
    template_id = await active(w, total=None)
    ids = [f"mem_{i}" for i in range(4)]
    await register(w, *ids)
    with operator():
        job = await w.cases.start_grant(template_id, ids, "grant-1")
        await w.cases.pause(template_id)
    assert (await w.cases.run_grant(M, job.id, chunk=2)).cursor == ""
    with operator():
        await w.cases.activate(template_id)
    assert (await w.cases.run_grant(M, job.id, chunk=2)).granted == 2
    with operator():
        await w.cases.end(template_id)
    job = await w.cases.run_grant(M, job.id, chunk=2)
    assert (job.state, job.granted, job.skipped) == (GrantState.DONE, 2, {rules.NOT_CLAIMABLE: 2})
    assert [e.done for e in w.grants.events] == [False, True]


async def test_rewards_are_issued_once_per_cause_even_from_staff_only_templates(w):
    template_id = await active(w, self_claim=False, per_member_limit=5)
    first = await w.cases.reward(M, "mem_1", template_id, rules.NEW_MEMBER, "mem_1")
    again = await w.cases.reward(M, "mem_1", template_id, rules.NEW_MEMBER, "mem_1")
    assert first.coupon is not None and again.repeated and again.coupon.id == first.coupon.id
    inviter = await w.cases.reward(M, "mem_2", template_id, rules.REFERRAL, "ref_1")
    invitee = await w.cases.reward(M, "mem_1", template_id, rules.REFERRAL, "ref_1")
    assert inviter.coupon.id != invitee.coupon.id and invitee.coupon.source == rules.REFERRAL
    assert (await w.cases.reward(M, "mem_1", template_id, rules.BIRTHDAY, "2026")).coupon.source_id == "2026"
    assert w.templates.items[template_id].issued == 4
    with pytest.raises(InvalidArgument):
        await w.cases.reward(M, "mem_1", template_id, rules.CLAIM, "x")
