"""Viewer reports and room purchases against in-memory stores: a member counted once per
session however often they reconnect, concurrent viewers as the sum of unexpired leases,
the peak kept, the room told at most once a second and only of a change, bad reports
refused with nothing written, other merchants' sessions not found, a purchase told once
with a masked name."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from siyu_kit.errors import InvalidArgument, NotFound, Unauthenticated
from siyu_kit.ids import new_id
from tests.fakes.callers import caller
from tests.fakes.live_room import FakeRoomPurchases, FakeSessions, FakeViewerReports

from services.content.application.live_viewers import LivePurchaseUseCases, LiveViewerUseCases, ViewerReport
from services.content.domain.live_room import Figures, Purchase, masked_nickname

MCH, OTHER = new_id("mch"), new_id("mch")
SESSION = new_id("liv")


class Clock:
    def __init__(self, ms: int = 1_000_000):
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def world(sessions=None):
    reports, clock = FakeViewerReports(), Clock()
    return LiveViewerUseCases(reports, reports, sessions=sessions, clock=clock), reports, clock


def report(gateway="g1", concurrent=0, joined=(), lease=15, session=SESSION):
    return ViewerReport(session, gateway, concurrent, tuple(joined), lease)


async def test_a_member_reconnecting_counts_once_and_the_concurrent_figure_sums_the_gateways():
    cases, reports, clock = world()
    a, b = new_id("mem"), new_id("mem")
    with caller(MCH, service="gateway"):
        assert await cases.report(report("g1", 2, [a, a])) == Figures(1, 2, 2)
        clock.ms += 100
        assert await cases.report(report("g2", 3, [a, b])) == Figures(2, 5, 5)
        clock.ms += 100
        assert await cases.report(report("g1", 1, [a])) == Figures(2, 4, 5)  # the peak stays
        figures = await cases.figures(SESSION)
    assert (figures.unique, figures.concurrent, figures.peak) == (2, 4, 5)


async def test_a_gateway_that_stops_reporting_stops_counting_after_its_lease():
    cases, _, clock = world()
    with caller(MCH, service="gateway"):
        await cases.report(report("g1", 10, lease=15))
        clock.ms += 5_000
        assert (await cases.report(report("g2", 1))).concurrent == 11
        clock.ms += 11_000  # g1's lease is over
        assert (await cases.report(report("g2", 1))).concurrent == 1


async def test_the_room_hears_at_most_once_a_second_and_only_of_a_change():
    cases, reports, clock = world()
    with caller(MCH, service="gateway"):
        await cases.report(report(concurrent=1, joined=[new_id("mem")]))
        clock.ms += 400
        await cases.report(report(concurrent=2))  # within the second: not told yet
        assert [f for _, f, _ in reports.announced] == [Figures(1, 1, 1)]
        clock.ms += 700
        await cases.report(report(concurrent=2))
        clock.ms += 2_000
        await cases.report(report(concurrent=2))  # nothing changed: not told
    assert [f for _, f, _ in reports.announced] == [Figures(1, 1, 1), Figures(1, 2, 2)]


async def test_a_lost_announcement_race_tells_the_room_once():
    cases, reports, clock = world()
    original = reports.announce

    async def racing(*args):
        # another replica announces between this one's record and its announcement
        await original(*args[:-1], args[-1] - 1)
        return await original(*args)
    reports.announce = racing
    with caller(MCH, service="gateway"):
        await cases.report(report(concurrent=1))
    assert len(reports.announced) == 1


@pytest.mark.parametrize("joined, field", [
    (["not-a-member"], "joined_member_ids[0]"),
    ([new_id("mem"), "mem_x"], "joined_member_ids[1]"),
    ([new_id("mem") for _ in range(5001)], "joined_member_ids"),
])
async def test_a_bad_report_is_refused_and_writes_nothing(joined, field):
    cases, reports, _ = world()
    with caller(MCH, service="gateway"), pytest.raises(InvalidArgument) as refused:
        await cases.report(report(concurrent=1, joined=joined))
    assert field in {v.field for v in refused.value.violations}
    assert reports.viewers == set() and reports.stats == {} and reports.leases_by == {}


async def test_a_session_of_another_merchant_is_not_found():
    cases, reports, _ = world(FakeSessions((MCH, SESSION)))
    with caller(OTHER, service="gateway"), pytest.raises(NotFound):
        await cases.report(report(concurrent=1, joined=[new_id("mem")]))
    assert reports.viewers == set() and reports.stats == {}
    with caller(MCH, service="gateway"):
        assert (await cases.report(report(concurrent=1))).concurrent == 1


async def test_figures_are_per_merchant_and_need_one():
    cases, _, _ = world()
    with caller(MCH, service="gateway"):
        await cases.report(report(concurrent=3))
    with caller(OTHER, service="gateway"):
        assert (await cases.figures(SESSION)).concurrent == 0
    with caller("", service="gateway"), pytest.raises(Unauthenticated):
        await cases.report(report(concurrent=3))


@given(st.lists(st.tuples(st.sampled_from(["g1", "g2", "g3"]), st.integers(0, 50),
                          st.lists(st.integers(0, 9), max_size=4), st.integers(0, 20_000)), max_size=12))
async def test_unique_viewers_and_peak_hold_for_any_sequence_of_reports(steps):
    cases, _, clock = world()
    members = [new_id("mem") for _ in range(10)]
    seen, peak, expiry = set(), 0, {}
    with caller(MCH, service="gateway"):
        for gateway, count, joined, wait in steps:
            clock.ms += wait
            figures = await cases.report(report(gateway, count, [members[i] for i in joined]))
            seen |= set(joined)
            expiry[gateway] = (count, clock.ms + 15_000)
            concurrent = sum(c for c, until in expiry.values() if until > clock.ms)
            peak = max(peak, concurrent)
            assert figures == Figures(len(seen), concurrent, peak)


def test_a_nickname_is_masked_to_its_first_character():
    assert masked_nickname("小美") == "小*"
    assert masked_nickname("张三丰") == "张**"
    assert masked_nickname("A") == "A*"
    assert masked_nickname("  ") == "匿名用户"
    assert masked_nickname("") == "匿名用户"


async def test_a_purchase_is_told_once_per_order():
    purchases = FakeRoomPurchases()
    cases = LivePurchaseUseCases(purchases)
    bought = Purchase(MCH, new_id("ord"), SESSION, "王小明", new_id("prd"), "保温杯", 2, 1)
    assert await cases.paid(bought)
    assert not await cases.paid(bought)
    assert purchases.told[(MCH, bought.order_id)].masked_name == "王**"


def _paid(live_session_id: str, recipient: str = "", lines: int = 1):
    from google.protobuf import timestamp_pb2
    from siyu.common.v1 import common_pb2
    from siyu.order.v1 import order_pb2

    order = order_pb2.Order(order_id=new_id("ord"), attribution=common_pb2.Attribution(live_session_id=live_session_id))
    for n in range(lines):
        order.lines.add(product_id=new_id("prd"), title=f"保温杯 {n}", quantity=2 + n)
    if recipient:
        order.shipping_address.recipient = recipient
    order.paid_at.CopyFrom(timestamp_pb2.Timestamp(seconds=1_700_000_000))
    envelope = common_pb2.EventEnvelope(event_id=new_id("evt"), merchant_id=MCH)
    return envelope, order


def test_a_paid_order_of_a_live_session_is_told_with_its_first_line_and_masked_recipient():
    from services.content.entrypoint.live_room_wiring import purchase_of

    envelope, order = _paid(SESSION, "李小龙", lines=2)
    purchase = purchase_of(envelope, order)
    assert (purchase.live_session_id, purchase.product_id, purchase.product_title, purchase.quantity) == (
        SESSION, order.lines[0].product_id, "保温杯 0", 2)
    assert purchase.masked_name == "李**" and purchase.at_ms == 1_700_000_000_000
    assert purchase_of(*_paid(SESSION)).masked_name == "匿名用户"
    assert purchase_of(*_paid("")) is None  # not from a live session
    assert purchase_of(*_paid(SESSION, lines=0)) is None
