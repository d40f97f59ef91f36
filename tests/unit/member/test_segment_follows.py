"""Followed personas in the member statistics: per persona the newest follow event wins,
whatever the order and however often events arrive (late, twice, an unfollow before the
follow it undoes); the facts job derives `followed_personas`; the `followed_persona`
condition selects members following any of the personas; a follow event without its ids
or time is poison."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from siyu.common.v1 import common_pb2
from siyu.content.v1 import events_pb2 as content_events

from services.member.application.segments import FollowFact, MemberStatistics
from services.member.domain import segments as rules
from services.member.domain.segments import Condition, MemberStats, Rule
from services.member.entrypoint.segment_wiring import follow_fact
from siyu_kit import protos
from siyu_kit.events.consumer import Poison
from tests.fakes.member import FakeMerchants
from tests.fakes.segments import FakeFacts, FakeMemberSide, FakeRfmSettings, FakeStats, FakeSweep

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
MS = int(NOW.timestamp() * 1000)


def _use_case():
    stats, facts, side = FakeStats(), FakeFacts(), FakeMemberSide()
    side.items[("mer_1", "mem_1")] = {"growth": 0, "registered_ms": MS, "birthday_month": 0, "consent": 1}
    uc = MemberStatistics(stats, facts, FakeRfmSettings(), side, FakeSweep(), FakeMerchants(), clock=lambda: NOW)
    return uc, stats, facts


def _follow(persona: str, at_ms: int, follows: bool = True) -> FollowFact:
    return FollowFact("mer_1", "mem_1", persona, at_ms, follows)


# ---- the rule -------------------------------------------------------------------------------------
def test_a_newer_event_has_a_larger_mark_and_at_the_same_time_a_follow_wins():
    assert rules.follow_mark(MS + 1, False) > rules.follow_mark(MS, True) > rules.follow_mark(MS, False)
    assert rules.following(rules.follow_mark(MS, True)) and not rules.following(rules.follow_mark(MS, False))
    stats = MemberStats("mer_1", "mem_1", follows={"per_b": rules.follow_mark(MS, True),
                                                   "per_a": rules.follow_mark(MS, True),
                                                   "per_c": rules.follow_mark(MS, False)})
    assert stats.followed_personas() == ["per_a", "per_b"]


def test_an_event_applies_once_and_only_when_newer():
    async def run():
        uc, stats, _ = _use_case()
        assert await uc.on_follow(_follow("per_a", MS))
        assert not await uc.on_follow(_follow("per_a", MS))                  # twice
        assert await uc.on_follow(_follow("per_a", MS + 10, follows=False))
        assert not await uc.on_follow(_follow("per_a", MS + 5))               # late: an older follow
        assert stats.items[("mer_1", "mem_1")].followed_personas() == []
        assert stats.items[("mer_1", "mem_1")].version == 2
    asyncio.run(run())


def test_an_unfollow_delivered_before_its_follow_still_wins():
    async def run():
        uc, stats, _ = _use_case()
        assert await uc.on_follow(_follow("per_a", MS + 10, follows=False))
        assert not await uc.on_follow(_follow("per_a", MS))
        assert await uc.on_follow(_follow("per_b", MS))
        assert stats.items[("mer_1", "mem_1")].followed_personas() == ["per_b"]
    asyncio.run(run())


# Events of two personas, each (persona, time offset, follow?); delivered in any order and
# with repeats, the personas followed are those whose newest event is a follow.
events_strategy = st.lists(st.tuples(st.sampled_from(["per_a", "per_b"]), st.integers(0, 5), st.booleans()),
                           min_size=1, max_size=6)


@given(events_strategy, st.randoms(use_true_random=False), st.lists(st.integers(0, 20), max_size=6))
@hsettings(max_examples=60, deadline=None)
def test_any_delivery_order_with_repeats_ends_in_the_newest_events_state(events, random, repeats):
    async def run():
        uc, stats, facts = _use_case()
        delivered = list(events) + [events[i % len(events)] for i in repeats]
        random.shuffle(delivered)
        for persona, offset, follows in delivered:
            await uc.on_follow(_follow(persona, MS + offset, follows))
        newest: dict[str, tuple[int, bool]] = {}
        for persona, offset, follows in events:
            newest[persona] = max(newest.get(persona, (-1, False)), (offset, follows))
        expected = sorted(p for p, (_, follows) in newest.items() if follows)
        await uc.recompute()
        assert facts.items[("mer_1", "mem_1")]["followed_personas"] == expected
    asyncio.run(run())


def test_the_job_derives_the_followed_personas_into_the_facts():
    async def run():
        uc, stats, facts = _use_case()
        await uc.recompute()
        assert facts.items[("mer_1", "mem_1")]["followed_personas"] == []
        await uc.on_follow(_follow("per_a", MS))
        assert await stats.changed(10)                  # marked due
        await uc.recompute()
        assert facts.items[("mer_1", "mem_1")]["followed_personas"] == ["per_a"]
        assert await stats.changed(10) == []
        await uc.on_follow(_follow("per_a", MS + 1, follows=False))
        await uc.recompute()
        assert facts.items[("mer_1", "mem_1")]["followed_personas"] == []
    asyncio.run(run())


# ---- the segment condition --------------------------------------------------------------------------
@pytest.mark.parametrize("followed,values,expected", [
    (["per_a", "per_b"], ("per_b",), True), (["per_a"], ("per_x", "per_a"), True),
    (["per_a"], ("per_x",), False), ([], ("per_a",), False)])
def test_a_followed_persona_condition_matches_members_following_any(followed, values, expected):
    rule = Rule(conditions=(Condition("followed_persona", "in", values),))
    assert rules.matches(rule, {"followed_personas": followed}, NOW) is expected
    assert rules.to_query(rule, "mer_1", NOW)["$and"][1] == {"followed_personas": {"$in": list(values)}}


def test_a_followed_persona_condition_takes_in_and_persona_ids():
    rule = Rule(conditions=(Condition("followed_persona", "any", ("per_a",)), Condition("followed_persona", "in", ()),
                            Condition("followed_persona", "in", (3,))))
    assert [f for f, _ in rules.rule_violations(rule)] == [
        "rule.conditions[0].op", "rule.conditions[1].values", "rule.conditions[2].values"]
    assert rules.string_valued("followed_persona")


# ---- the event -------------------------------------------------------------------------------------
ENVELOPE = common_pb2.EventEnvelope(merchant_id="mer_1")


@pytest.mark.parametrize("event_type,follows", [(content_events.PersonaFollowed, True),
                                                (content_events.PersonaUnfollowed, False)])
def test_a_follow_event_carries_persona_member_and_its_time(event_type, follows):
    event = event_type(persona_id="per_01", member_id="mem_1", at=protos.timestamp(NOW))
    assert follow_fact(ENVELOPE, event) == FollowFact("mer_1", "mem_1", "per_01", MS, follows)


@pytest.mark.parametrize("envelope,event", [
    (common_pb2.EventEnvelope(), content_events.PersonaFollowed(persona_id="per_1", member_id="mem_1")),
    (ENVELOPE, content_events.PersonaFollowed(member_id="mem_1")),
    (ENVELOPE, content_events.PersonaFollowed(persona_id="per.1", member_id="mem_1")),
    (ENVELOPE, content_events.PersonaUnfollowed(persona_id="per_1")),
    (ENVELOPE, content_events.PersonaUnfollowed(persona_id="per_1", member_id="mem_1"))])
def test_a_follow_event_without_its_ids_or_time_is_poison(envelope, event):
    with pytest.raises(Poison):
        follow_fact(envelope, event)

