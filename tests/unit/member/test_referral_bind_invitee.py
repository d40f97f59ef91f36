"""BindInvitee: a bargain's new helper bound as the starter's invitee through the referral
machinery: new members only (24 hours), the first binding wins, asking again is BOUND, no
self and no cycle, unknown members not found."""
from __future__ import annotations

from datetime import timedelta

import pytest

from siyu_kit.errors import NotFound
from siyu_kit.ids import new_id

from services.member.domain import referral as rules
from services.member.domain.members import Member
from tests.fakes.member import caller
from tests.unit.member.test_referral import NOW, _world, member


@pytest.fixture
async def w():
    return await _world()


async def bind(w, inviter: str, invitee: str):
    with caller(w.m.id, service="order"):
        return await w.cases.bind_new(inviter, invitee, "bargain:bgn_1")


async def test_a_new_member_is_bound_once_and_asking_again_answers_bound(w):
    starter, helper = await member(w), await member(w)
    assert await bind(w, starter, helper) == (rules.BOUND, True)
    assert await bind(w, starter, helper) == (rules.BOUND, False)
    stored = await w.referrals.of_invitee(w.m.id, helper)
    assert stored.inviter_id == starter and stored.code == await w.cases.code_of(w.m.id, starter)
    other = await member(w)
    assert await bind(w, other, helper) == (rules.ALREADY_BOUND, False)


async def test_a_member_registered_over_a_day_ago_is_not_new(w):
    starter, old = await member(w), new_id("mem")
    await w.members.add(Member.register(old, w.m.id, "H5", "Old", NOW - timedelta(hours=25)))
    assert await bind(w, starter, old) == (rules.NOT_NEW_MEMBER, False)
    assert await w.referrals.of_invitee(w.m.id, old) is None


async def test_no_self_and_no_cycle(w):
    a, b = await member(w), await member(w)
    assert await bind(w, a, a) == (rules.SELF, False)
    assert await bind(w, a, b) == (rules.BOUND, True)
    assert await bind(w, b, a) == (rules.CYCLE, False)


async def test_unknown_members_are_not_found(w):
    starter = await member(w)
    with pytest.raises(NotFound):
        await bind(w, starter, new_id("mem"))
    with pytest.raises(NotFound):
        await bind(w, new_id("mem"), starter)
