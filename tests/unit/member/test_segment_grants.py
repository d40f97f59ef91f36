"""A coupon grant to a segment over in-memory ports: the audience is the segment's members
when the grant started (taken by the job's first chunk; a member who enters the segment
later is not in it, one who leaves still is), chunks issue in a few bulk writes, and a job
stopped anywhere in a chunk and run again gives every member exactly one coupon, with
exact progress and counter; a marketing template reaches only members consenting when
their chunk runs."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from services.member.application.coupons import CouponUseCases
from services.member.application.segments import MemberStatistics, SegmentAudience, Segments
from services.member.domain import coupons as rules
from services.member.domain.coupons import CouponKind, CouponRule, CouponState, GrantState, TemplateDraft, Validity
from services.member.domain.members import Member
from services.member.domain.segments import Condition, Rule
from siyu_kit.errors import Conflict
from siyu_kit.ids import new_id
from tests.fakes.callers import caller
from tests.fakes.coupons import FakeCouponSettings, FakeCouponTemplates, FakeGrantJobs, FakeMemberCoupons
from tests.fakes.member import FakeMembers, FakeMerchants
from tests.fakes.segments import (FakeFacts, FakeGrantTargets, FakeMemberSide, FakeRfmSettings, FakeSegments,
                                  FakeStats, FakeSweep, FakeTags)

M = "mer_1"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
JANUARY = Rule(conditions=(Condition("birthday_month", "in", (1,)),))


class World:
    def __init__(self):
        self.facts, self.members, self.targets = FakeFacts(), FakeMembers(), FakeGrantTargets()
        stats = MemberStatistics(FakeStats(), self.facts, FakeRfmSettings(), FakeMemberSide(), FakeSweep(),
                                 FakeMerchants(), clock=lambda: NOW)
        self.segments = Segments(stats, FakeTags(), FakeSegments(), self.members, clock=lambda: NOW)
        self.templates, self.coupons, self.grants = FakeCouponTemplates(), FakeMemberCoupons(), FakeGrantJobs()
        self.cases = CouponUseCases(self.templates, self.coupons, self.grants, FakeCouponSettings(),
                                    members=self.members,
                                    audiences={rules.SEGMENT_AUDIENCE: SegmentAudience(self.segments, self.targets)},
                                    clock=lambda: NOW)

    async def member(self, member_id: str, month: int, consent: int = 1) -> None:
        await self.members.add(Member.register(member_id, M, "MINI_PROGRAM", member_id, NOW))
        self.facts.items[(M, member_id)] = {"birthday_month": month, "consent": consent, "manual_tags": [],
                                            "stats_version": 0}

    async def start(self, total: int | None = None, marketing: bool = False) -> tuple[str, str]:
        with caller(M, staff_id="stf_op", roles=("OPERATOR",)):
            segment = await self.segments.create("一月生日", JANUARY)
            template = await self.cases.create_template(TemplateDraft(
                name="生日券", rule=CouponRule(CouponKind.NO_THRESHOLD, amount_off=500),
                validity=Validity(days=30), total=total, per_member_limit=1, self_claim=False,
                marketing=marketing), new_id("k"))
            await self.cases.activate(template.id)
            job = await self.cases.start_grant(template.id, [], new_id("g"), segment_id=segment.id)
        return template.id, job.id

    async def until_done(self, job_id: str, chunk: int):
        for _ in range(1_000):
            job = await self.grants.get(M, job_id)
            if job.state == GrantState.DONE:
                return job
            try:
                await self.cases.run_grant(M, job_id, chunk)
            except (Conflict, Crash):
                continue
        raise AssertionError("the grant never finished")

    def held(self, template_id: str) -> dict[str, list]:
        out: dict[str, list] = {}
        for c in self.coupons.of_template(template_id):
            out.setdefault(c.member_id, []).append(c)
        return out


class Crash(Exception):
    """The process dies at this point of a chunk."""


@pytest.fixture
def w():
    return World()


async def test_the_audience_is_the_segment_when_the_grant_started(w):
    for i in range(10):
        await w.member(f"mem_{i:02d}", 1 if i % 2 == 0 else 5)
    template_id, job_id = await w.start()
    job = await w.cases.run_grant(M, job_id, chunk=2)       # takes the audience, issues nothing yet
    assert (job.granted, job.cursor) == (0, "T:") and len(w.coupons.items) == 0
    job = await w.cases.run_grant(M, job_id, chunk=2)
    assert job.granted == 2 and job.cursor == "T:mem_02"
    await w.member("mem_00a", 1)     # enters behind the cursor
    await w.member("mem_99", 1)      # enters ahead of it
    w.facts.items[(M, "mem_08")]["birthday_month"] = 7       # leaves the segment after the start
    job = await w.until_done(job_id, chunk=2)
    held = w.held(template_id)
    assert sorted(held) == ["mem_00", "mem_02", "mem_04", "mem_06", "mem_08"]
    assert (job.granted, job.total_skipped) == (5, 0)
    assert w.templates.items[template_id].issued == 5


@pytest.mark.parametrize("where", ["insert_many", "take_units", "confirm_many", "settle_units", "save"])
async def test_a_grant_stopped_anywhere_in_a_chunk_and_run_again_gives_each_member_one_coupon(w, where):
    for i in range(23):
        await w.member(f"mem_{i:02d}", 1)
    template_id, job_id = await w.start(total=100)
    await w.cases.run_grant(M, job_id, chunk=5)               # the audience
    await w.cases.run_grant(M, job_id, chunk=5)               # one chunk in full
    store = {"insert_many": w.coupons, "confirm_many": w.coupons, "take_units": w.templates,
             "settle_units": w.templates, "save": w.grants}[where]
    real = getattr(store, where)

    async def then_crash(*args, **kwargs):     # the write lands (the progress save: not), then the process dies
        if where != "save":
            await real(*args, **kwargs)
        setattr(store, where, real)
        raise Crash(where)

    setattr(store, where, then_crash)
    with pytest.raises(Crash):
        await w.cases.run_grant(M, job_id, chunk=5)
    assert (await w.grants.get(M, job_id)).granted == 5       # the stopped chunk counted nothing yet
    job = await w.until_done(job_id, chunk=5)
    held = w.held(template_id)
    assert len(held) == 23 and all(len(cs) == 1 for cs in held.values())
    assert all(cs[0].state == CouponState.AVAILABLE for cs in held.values())
    assert (job.granted, job.total_skipped) == (23, 0)
    assert w.templates.items[template_id].issued == 23 and w.templates.entries[template_id] == {}


async def test_a_chunk_is_one_insert_and_one_counter_update_and_a_bounded_total_stops_exactly(w):
    for i in range(12):
        await w.member(f"mem_{i:02d}", 1)
    template_id, job_id = await w.start(total=7)
    await w.cases.run_grant(M, job_id, chunk=5)
    takes = w.templates.takes
    job = await w.cases.run_grant(M, job_id, chunk=5)
    assert (job.granted, w.templates.takes - takes, w.coupons.bulk_inserts) == (5, 1, 1)
    job = await w.until_done(job_id, chunk=5)
    assert (job.granted, job.skipped) == (7, {rules.SOLD_OUT: 5})
    assert len(w.coupons.items) == 7 and w.templates.items[template_id].issued == 7


async def test_a_marketing_grant_reaches_members_consenting_when_their_chunk_runs(w):
    for i, consent in enumerate((1, 0, 1, 1)):
        await w.member(f"mem_{i:02d}", 1, consent)
    template_id, job_id = await w.start(marketing=True)
    await w.cases.run_grant(M, job_id, chunk=2)
    w.facts.items[(M, "mem_03")]["consent"] = 0              # withdrew after the start
    job = await w.until_done(job_id, chunk=2)
    assert sorted(w.held(template_id)) == ["mem_00", "mem_02"] and job.granted == 2
