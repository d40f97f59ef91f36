"""The coupon settings' new-member gift consults the referral's farm guard (one store): a
person whose unionid or phone belonged to an erased member gets no second gift, a new
person does (and is kept in the guard), and the referral's invitee coupon sees the same
entries."""
from __future__ import annotations

import pytest

from services.member.application.farm_guard import NewMemberGuard
from services.member.domain.coupons import CouponConfig
from services.member.domain.referral import guard_hash
from tests.fakes.coupon_world import M, active, coupon_world, operator
from tests.fakes.member import FakeIdentities
from tests.fakes.referral import FakeGuard
from tests.fakes.wechat import FakePhoneBook

KEY = b"g" * 32


@pytest.fixture
async def w():
    w = coupon_world(with_members=True)
    w.guard, w.identities, w.phones = FakeGuard(), FakeIdentities(), FakePhoneBook()
    w.cases.farm_guard = NewMemberGuard(w.guard, w.phones, w.identities, KEY)
    template_id = await active(w, self_claim=False)
    with operator():
        await w.cases.update_settings(CouponConfig(new_member_template_id=template_id))
    return w


def erased(w, member_id: str, kind: str, value: str) -> None:
    """What erasure leaves: the erased member's keyed hash in the guard."""
    w.guard.entries[(M, guard_hash(KEY, M, kind, value))] = member_id


async def test_a_new_person_gets_the_gift_and_is_kept_in_the_guard(w):
    await w.identities.link_union(M, "u-new", "mem_1")
    await w.phones.bind(M, "13800138000", "mem_1")
    issued = await w.cases.new_member_gift(M, "mem_1")
    assert issued is not None and issued.coupon is not None
    assert set(w.guard.entries.values()) == {"mem_1"} and len(w.guard.entries) == 2
    # A replay is the same gift: the member's own entries do not guard against them.
    assert (await w.cases.new_member_gift(M, "mem_1")).coupon.id == issued.coupon.id


async def test_a_re_registered_unionid_gets_no_gift(w):
    erased(w, "mem_old", "unionid", "u-1")
    await w.identities.link_union(M, "u-1", "mem_2")
    assert await w.cases.new_member_gift(M, "mem_2") is None
    assert not w.coupons.items


async def test_a_re_registered_phone_gets_no_gift(w):
    erased(w, "mem_old", "phone", "13900139000")
    await w.identities.link_union(M, "u-2", "mem_3")
    await w.phones.bind(M, "13900139000", "mem_3")
    assert await w.cases.new_member_gift(M, "mem_3") is None


async def test_without_a_guard_wired_the_gift_is_as_before(w):
    w.cases.farm_guard = None
    erased(w, "mem_old", "unionid", "u-1")
    await w.identities.link_union(M, "u-1", "mem_2")
    assert (await w.cases.new_member_gift(M, "mem_2")).coupon is not None
