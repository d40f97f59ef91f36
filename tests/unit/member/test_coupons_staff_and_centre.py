"""Coupon templates created with an idempotency key, every staff change of templates,
grants and settings in the audit trail, and the member's coupon centre (the templates they
may claim, paged). Over in-memory ports."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from siyu_kit.errors import AlreadyExists, InvalidArgument, PermissionDenied, Unauthenticated

from services.member.domain import admin as audit_rules
from services.member.domain.coupons import CouponConfig, Validity
from tests.fakes.coupon_world import M, START, coupon_world, draft, member, operator


@pytest.fixture
def w():
    return coupon_world()

# ---- creating with an idempotency key -------------------------------------------------------------

async def test_the_same_key_answers_the_same_template_and_another_design_is_refused(w):
    with operator():
        first = await w.cases.create_template(draft(), "spring-1")
        again = await w.cases.create_template(draft(), "spring-1")
        assert again.id == first.id and len(w.templates.items) == 1
        with pytest.raises(AlreadyExists) as reused:
            await w.cases.create_template(draft(total=200), "spring-1")
        assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
        other = await w.cases.create_template(draft(total=200), "spring-2")
    assert other.id != first.id and len(w.templates.items) == 2
    with operator("mer_2"):  # keys are per merchant
        assert (await w.cases.create_template(draft(), "spring-1")).id != first.id
    assert [e.action for e in w.audit.entries].count(audit_rules.COUPON_TEMPLATE_CREATED) == 3


async def test_concurrent_creations_with_one_key_make_one_template(w):
    with operator():
        made = await asyncio.gather(*(w.cases.create_template(draft(), "same") for _ in range(8)))
    assert len({t.id for t in made}) == 1 and len(w.templates.items) == 1
    assert [e.action for e in w.audit.entries] == [audit_rules.COUPON_TEMPLATE_CREATED]


async def test_a_key_is_required_and_bounded_and_bad_input_writes_nothing(w):
    with operator():
        for key in ("", "k" * 65):
            with pytest.raises(InvalidArgument) as bad:
                await w.cases.create_template(draft(), key)
            assert {v.field for v in bad.value.violations} == {"idempotency_key"}
    assert not w.templates.items and not w.audit.entries


# ---- the audit trail -------------------------------------------------------------------------------

async def test_every_staff_change_of_templates_grants_and_settings_is_audited_once(w):
    with operator():
        template = await w.cases.create_template(draft(), "k1")
        await w.cases.edit_template(template.id, draft(name="Spring 100-15"))
        await w.cases.change_total(template.id, 300)
        await w.cases.change_total(template.id, 300)  # no change: no entry
        await w.cases.activate(template.id)
        await w.cases.activate(template.id)  # a repeat: no entry
        await w.cases.pause(template.id)
        await w.cases.start_grant(template.id, ["mem_01"], "g1")
        await w.cases.start_grant(template.id, ["mem_01"], "g1")  # a replay: no entry
        await w.cases.update_settings(CouponConfig(return_on_refund=False))
    rows = [(e.action, e.target_id, e.before, e.after) for e in w.audit.entries]
    assert [r[0] for r in rows] == [
        audit_rules.COUPON_TEMPLATE_CREATED, audit_rules.COUPON_TEMPLATE_UPDATED,
        audit_rules.COUPON_TEMPLATE_TOTAL_CHANGED, audit_rules.COUPON_TEMPLATE_STATE_CHANGED,
        audit_rules.COUPON_TEMPLATE_STATE_CHANGED, audit_rules.COUPON_GRANT_STARTED,
        audit_rules.COUPON_SETTINGS_UPDATED]
    assert rows[1][2]["name"] == "Spring 100-10" and rows[1][3]["name"] == "Spring 100-15"
    assert (rows[2][2]["total"], rows[2][3]["total"]) == ("100", "300")
    assert (rows[3][2]["state"], rows[3][3]["state"], rows[4][3]["state"]) == ("DRAFT", "ACTIVE", "PAUSED")
    assert rows[6][1] == audit_rules.COUPON_SETTINGS_TARGET and rows[6][3]["return_on_refund"] == "False"
    assert all(e.actor_id == "stf_op" and e.merchant_id == M for e in w.audit.entries)
    assert set(a for a, *_ in rows) <= set(audit_rules.ACTIONS)


async def test_a_refused_change_writes_no_audit_entry(w):
    with operator():
        template = await w.cases.create_template(draft(), "k1")
    with operator(role="GUIDE"), pytest.raises(PermissionDenied):
        await w.cases.activate(template.id)
    assert [e.action for e in w.audit.entries] == [audit_rules.COUPON_TEMPLATE_CREATED]


# ---- the coupon centre ----------------------------------------------------------------------------

async def made(w, key: str, activate: bool = True, **kw) -> str:
    with operator():
        template = await w.cases.create_template(draft(**kw), key)
        if activate:
            await w.cases.activate(template.id)
    return template.id


async def test_the_centre_lists_claimable_templates_with_what_is_left_for_all_and_for_the_member(w):
    open_ = await made(w, "a", total=None, per_member_limit=3)
    scarce = await made(w, "b", total=2)
    await made(w, "draft", activate=False)
    await made(w, "staff", self_claim=False)
    ended = await made(w, "ended", validity=Validity(START - timedelta(days=2), START + timedelta(hours=1)))
    paused = await made(w, "paused")
    with operator():
        await w.cases.pause(paused)
    with member("mem_1"):
        await w.cases.claim(open_, "c1")
        await w.cases.claim(scarce, "c1")
    with member("mem_2"):
        await w.cases.claim(scarce, "c1")  # the last one
    sold_out = scarce
    w.clock.now = START + timedelta(hours=2)  # `ended`'s window is over
    with member("mem_1"):
        rows, token = await w.cases.claimable(0, "")
    assert token == "" and [r.template.id for r in rows] == [open_]
    assert (rows[0].left, rows[0].member_left) == (None, 2)
    assert sold_out not in [r.template.id for r in rows] and ended not in [r.template.id for r in rows]


async def test_the_centre_pages_past_templates_it_skips_and_shows_a_reached_limit_as_zero(w):
    ids = [await made(w, f"t{i}", total=5) for i in range(5)]
    skipped = await made(w, "over", validity=Validity(START - timedelta(days=2), START + timedelta(hours=1)))
    more = [await made(w, f"u{i}", total=5) for i in range(2)]
    w.clock.now = START + timedelta(hours=2)
    with member():
        await w.cases.claim(ids[0], "c1")
        seen, token, pages = [], "", 0
        while True:
            rows, token = await w.cases.claimable(3, token)
            seen += rows
            pages += 1
            if not token:
                break
    newest_first = list(reversed(ids + more))
    assert [r.template.id for r in seen] == newest_first and skipped not in [r.template.id for r in seen]
    assert pages == 3
    by_id = {r.template.id: r for r in seen}
    assert (by_id[ids[0]].left, by_id[ids[0]].member_left) == (4, 0)
    assert (by_id[ids[1]].left, by_id[ids[1]].member_left) == (5, 1)
    with member(), pytest.raises(InvalidArgument):
        await w.cases.claimable(3, "not-a-token")
    with operator(), pytest.raises(Unauthenticated):  # a member's own list
        await w.cases.claimable(3, "")
