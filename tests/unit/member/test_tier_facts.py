"""A tier change reaches the member's segment facts at the facts job's next run, not at the
daily sweep: every points movement that changes growth marks the member's facts (a
movement without growth does not), and the marked member's facts are derived again with
the tier their growth now reaches, even though no order event changed their statistics."""
from __future__ import annotations

from datetime import datetime, timezone

from siyu_kit.ids import new_id

from services.member.application.checkin import CheckIns
from services.member.application.points import OrderPoints, PaidOrder
from services.member.application.segments import MemberStatistics
from services.member.domain.members import Member
from services.member.domain.merchants import Merchant
from services.member.domain.segments import MemberStats
from tests.fakes.callers import caller
from tests.fakes.checkin import FakeCheckIns, FakeCheckInSettings
from tests.fakes.member import FakeLedger, FakeMembers, FakeMerchants
from tests.fakes.segments import FakeFacts, FakeMemberSide, FakeRfmSettings, FakeStats, FakeSweep

NOW = datetime(2026, 6, 1, 4, 0, tzinfo=timezone.utc)


class MarksIntoStats:
    """The FactsMarks port over the statistics fake, as the store does it: the member's
    statistics created when missing, marked changed, their version bumped."""

    def __init__(self, stats: FakeStats):
        self.stats = stats
        self.marked: list[tuple[str, str]] = []

    async def mark(self, merchant_id: str, member_id: str) -> None:
        s = self.stats.items.setdefault((merchant_id, member_id), MemberStats(merchant_id, member_id))
        s.version += 1
        self.stats.dirty.add((merchant_id, member_id))
        self.marked.append((merchant_id, member_id))


async def world():
    merchants, members, ledger = FakeMerchants(), FakeMembers(), FakeLedger()
    merchant = Merchant.create(new_id("mch"), "shop", "Shop", "Asia/Shanghai", NOW)
    await merchants.add(merchant)
    member_id = new_id("mem")
    await members.add(Member.register(member_id, merchant.id, "H5", "", NOW))
    stats, facts, side = FakeStats(), FakeFacts(), FakeMemberSide()
    statistics = MemberStatistics(stats, facts, FakeRfmSettings(), side, FakeSweep(), merchants, clock=lambda: NOW)
    return merchant, member_id, merchants, members, ledger, stats, facts, side, statistics


async def test_a_paid_order_growth_marks_the_facts_and_the_next_run_writes_the_new_tier():
    merchant, member_id, merchants, members, ledger, stats, facts, side, statistics = await world()
    marks = MarksIntoStats(stats)
    points = OrderPoints(members, merchants, ledger, clock=lambda: NOW)
    points.facts = marks
    side.items[(merchant.id, member_id)] = {"growth": 0, "registered_ms": 1}
    await statistics.refresh(merchant.id, member_id)
    assert facts.items[(merchant.id, member_id)]["tier"] == "REGULAR"

    # 2,000 yuan paid: growth 2,000 reaches SILVER (the ledger's sync keeps the member's growth).
    await points.on_order_paid(PaidOrder("evt_1", merchant.id, "ord_1", member_id, 200_000, NOW))
    side.items[(merchant.id, member_id)]["growth"] = (await ledger.account(merchant.id, member_id)).growth
    assert marks.marked == [(merchant.id, member_id)]
    # The facts job's next run, with no order event in the statistics: the tier follows.
    assert await statistics.recompute() >= 1
    assert facts.items[(merchant.id, member_id)]["tier"] == "SILVER"
    assert (merchant.id, member_id) not in stats.dirty

    # A replay moves nothing and marks nothing.
    await points.on_order_paid(PaidOrder("evt_1", merchant.id, "ord_1", member_id, 200_000, NOW))
    assert len(marks.marked) == 1


async def test_a_check_in_with_growth_marks_and_one_without_does_not():
    merchant, member_id, merchants, members, ledger, stats, *_ = await world()
    marks = MarksIntoStats(stats)
    settings = FakeCheckInSettings()
    checkin = CheckIns(FakeCheckIns(), settings, members, merchants, ledger, clock=lambda: NOW)
    checkin.points.facts = marks
    with caller(merchant.id, member_id=member_id, channel="H5"):
        await checkin.check_in()
    assert marks.marked == [(merchant.id, member_id)]


async def test_a_movement_without_growth_marks_nothing():
    merchant, member_id, merchants, members, ledger, stats, *_ = await world()
    marks = MarksIntoStats(stats)
    points = OrderPoints(members, merchants, ledger, clock=lambda: NOW)
    points.facts = marks
    # Too little paid for any points or growth: the movement is a marker only.
    await points.on_order_paid(PaidOrder("evt_2", merchant.id, "ord_2", member_id, 0, NOW))
    assert marks.marked == []
