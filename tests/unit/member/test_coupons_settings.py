"""The merchant's coupon settings, the new-member gift they name, the repeat flag of a
claim and who may read a template's stats, over in-memory ports."""
from __future__ import annotations

import pytest

from siyu_kit.errors import InvalidArgument, PermissionDenied

from services.member.domain import coupons as rules
from services.member.domain.coupons import CouponConfig, CouponState
from tests.fakes.member import caller
from tests.fakes.coupon_world import M, OTHER, active, coupon_world, member, operator


@pytest.fixture
def w():
    return coupon_world(with_members=True)


async def test_settings_default_to_restore_on_refund_and_no_gift(w):
    with operator():
        assert await w.cases.get_settings() == CouponConfig(return_on_refund=True, new_member_template_id="")


async def test_a_gift_names_a_template_of_the_merchant(w):
    template_id = await active(w, self_claim=False)
    with operator(OTHER), pytest.raises(InvalidArgument) as refused:
        await w.cases.update_settings(CouponConfig(new_member_template_id=template_id))
    assert [v.field for v in refused.value.violations] == ["settings.new_member_template_id"]
    with operator():
        await w.cases.update_settings(CouponConfig(return_on_refund=False, new_member_template_id=template_id))
        assert (await w.cases.get_settings()).return_on_refund is False
    with operator(OTHER):
        assert (await w.cases.get_settings()).new_member_template_id == ""


async def test_the_new_member_gift_is_issued_once_per_member(w):
    assert await w.cases.new_member_gift(M, "mem_1") is None  # no gift named
    template_id = await active(w, self_claim=False)
    with operator():
        await w.cases.update_settings(CouponConfig(new_member_template_id=template_id))
    first = await w.cases.new_member_gift(M, "mem_1")
    again = await w.cases.new_member_gift(M, "mem_1")
    assert first.coupon.source == rules.NEW_MEMBER and first.coupon.state == CouponState.AVAILABLE
    assert again.repeated and again.coupon.id == first.coupon.id
    assert len(w.coupons.of_template(template_id)) == 1


async def test_a_gift_of_a_missing_template_gives_nothing(w):
    await w.cases.settings.put(M, CouponConfig(new_member_template_id="cpt_gone"))
    assert await w.cases.new_member_gift(M, "mem_1") is None


async def test_a_claim_says_when_its_key_made_it_before(w):
    template_id = await active(w)
    with member("mem_1"):
        coupon, repeated = await w.cases.claim_once(template_id, "k1")
        again, repeated_again = await w.cases.claim_once(template_id, "k1")
    assert (repeated, repeated_again, again.id) == (False, True, coupon.id)


async def test_finance_reads_stats_but_a_guide_does_not(w):
    template_id = await active(w)
    with caller(M, staff_id="stf_fin", roles=("FINANCE",)):
        assert (await w.cases.template_stats(template_id)).issued == 0
    with caller(M, staff_id="stf_g", roles=("GUIDE",)), pytest.raises(PermissionDenied):
        await w.cases.template_stats(template_id)


async def test_a_sold_out_template_raised_by_its_staff_is_claimable_at_once(w):
    template_id = await active(w, total=1)
    with member("mem_1"):
        await w.cases.claim(template_id, "k1")
    with member("mem_2"):
        assert (await w.cases.issue(M, template_id, "mem_2", "k2", rules.CLAIM, "")).refused == rules.SOLD_OUT
        assert (await w.cases.issue(M, template_id, "mem_2", "k2", rules.CLAIM, "")).refused == rules.SOLD_OUT
    with operator():
        await w.cases.change_total(template_id, 2)
    with member("mem_2"):
        assert (await w.cases.claim(template_id, "k3")).state == CouponState.AVAILABLE
