"""The staff's tags, RFM settings and segments over in-memory ports: OPERATOR only, names
unique per merchant, a group deleted only when empty and a tag only when nobody carries
it, tagging idempotent with unknown ids returned, rules and settings refused field by
field with nothing written, another merchant's tag or segment not found."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from services.member.application.segments import MemberStatistics, Segments
from services.member.domain.segments import Condition, RfmSettings, Rule
from siyu_kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from tests.fakes.callers import caller
from tests.fakes.member import FakeMembers, FakeMerchants
from tests.fakes.segments import (FakeFacts, FakeMemberSide, FakeRfmSettings, FakeSegments, FakeStats, FakeSweep,
                                  FakeTags)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
A, B = "mer_A", "mer_B"


def _world():
    side = FakeMemberSide()
    for m in ("mem_1", "mem_2"):
        side.items[(A, m)] = {"growth": 0, "registered_ms": 1, "birthday_month": 1, "consent": 1}
    stats = MemberStatistics(FakeStats(), FakeFacts(), FakeRfmSettings(), side, FakeSweep(), FakeMerchants(),
                             clock=lambda: NOW)
    return Segments(stats, FakeTags(), FakeSegments(), FakeMembers(), clock=lambda: NOW)


def operator(merchant: str = A, role: str = "OPERATOR"):
    return caller(merchant, staff_id="stf_1", roles=(role,))


def run(coro):
    return asyncio.run(coro)


def test_only_operators_reach_tags_settings_and_segments():
    uc = _world()
    with operator(role="GUIDE"):
        for call in (uc.get_settings(), uc.tag_groups(), uc.create_group("x"), uc.preview(Rule()),
                     uc.list(0, "")):
            with pytest.raises(PermissionDenied):
                run(call)


def test_tags_in_groups_tagging_is_idempotent_and_deletion_waits_for_empty():
    uc = _world()

    async def go():
        with operator():
            group = await uc.create_group("兴趣")
            with pytest.raises(Conflict):
                await uc.create_group("兴趣")
            tag = await uc.create_tag(group.id, "咖啡")
            assert await uc.retag(tag.id, ["mem_1", "mem_2", "mem_x", "mem_1"], add=True) == (2, ["mem_x"])
            assert await uc.retag(tag.id, ["mem_1"], add=True) == (0, [])
            with pytest.raises(FailedPrecondition) as busy:
                await uc.delete_tag(tag.id)
            assert busy.value.reason == "TAG_IN_USE"
            with pytest.raises(FailedPrecondition) as full:
                await uc.delete_group(group.id)
            assert full.value.reason == "TAG_GROUP_NOT_EMPTY"
            assert await uc.retag(tag.id, ["mem_1", "mem_2"], add=False) == (2, [])
            await uc.delete_tag(tag.id)
            await uc.delete_group(group.id)
            assert await uc.tag_groups() == ([], [])
        with operator(B):
            with pytest.raises(NotFound):
                await uc.retag(tag.id, ["mem_1"], add=True)
    run(go())


def test_bad_rules_and_settings_are_refused_field_by_field_and_nothing_is_written():
    uc = _world()

    async def go():
        with operator():
            with pytest.raises(InvalidArgument) as bad:
                await uc.create("x", Rule(conditions=(Condition("tier", "gte", ("GOLD",)),)))
            assert [v.field for v in bad.value.violations] == ["rule.conditions[0].op"]
            assert await uc.list(0, "") == ([], "")
            with pytest.raises(InvalidArgument) as settings:
                await uc.update_settings(RfmSettings(recency_days=(9, 8, 7, 6)))
            assert [v.field for v in settings.value.violations] == ["settings.recency_days"]
            assert await uc.get_settings() == RfmSettings()
            segment = await uc.create("s", Rule())
        with operator(B):
            for call in (uc.get(segment.id), uc.members_of(segment.id, 0, ""), uc.delete(segment.id)):
                with pytest.raises(NotFound):
                    await call
    run(go())
