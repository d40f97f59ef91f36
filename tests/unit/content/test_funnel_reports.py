"""Funnels by day over the five dimensions, refunds, viewers and clicks, and the
repeat-purchase report, over in-memory ports."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from siyu_kit.errors import InvalidArgument, NotFound, PermissionDenied
from siyu_kit.ids import new_id

from services.content.application.cohorts import CohortUseCases, PaidFact, RefundFact
from services.content.application.contents import ContentUseCases
from services.content.application.funnels import FunnelUseCases, OrderFact, Touch
from services.content.application.personas import PersonaUseCases
from services.content.domain import funnels
from services.content.domain.funnels import Counters
from services.content.domain.contents import ContentFields
from services.content.domain.personas import PersonaFields
from tests.fakes.content import FakeContents, FakeFunnels, FakePersonas, FakeProducts, FakePurchases, caller

MERCHANT, OTHER = "mch_A", "mch_B"
DAY1 = datetime(2026, 6, 1, 3, 0, tzinfo=timezone.utc)  # 2026-06-01 in Shanghai
DAY2 = datetime(2026, 6, 2, 17, 0, tzinfo=timezone.utc)  # 2026-06-03 in Shanghai


@pytest.fixture
def w():
    class World:
        personas, contents, funnels, purchases = FakePersonas(), FakeContents(), FakeFunnels(), FakePurchases()
    world = World()
    world.persona_cases = PersonaUseCases(world.personas)
    world.content_cases = ContentUseCases(world.contents, world.personas, FakeProducts())
    world.cases = FunnelUseCases(world.funnels, world.persona_cases, world.content_cases)
    world.now = int(datetime(2026, 8, 15, tzinfo=timezone.utc).timestamp() * 1000)
    world.cohorts = CohortUseCases(world.purchases, clock=lambda: world.now)
    return world


def operator(merchant: str = MERCHANT, roles=("OPERATOR",)):
    return caller(merchant, staff_id="stf_1", roles=roles)


async def persona_of(w, merchant: str = MERCHANT):
    with operator(merchant):
        persona, _ = await w.persona_cases.upsert(PersonaFields(code=f"p{new_id('x')[-6:]}", name="林老师"))
    return persona


def order_fact(change: Counters, at: datetime = DAY1, cause: str = "", merchant: str = MERCHANT, **refs) -> OrderFact:
    return OrderFact(event_id=cause or new_id("evt"), merchant_id=merchant, occurred_at=at,
                     persona_id=refs.get("persona_id", ""), content_id=refs.get("content_id", ""),
                     live_session_id=refs.get("live_session_id", ""), change=change, currency="CNY",
                     channel=refs.get("channel", ""), share_code=refs.get("share_code", ""))


async def test_a_funnel_by_day_with_viewers_clicks_orders_refunds_and_its_total(w):
    persona = await persona_of(w)
    refs = {"persona_id": persona.id, "channel": "H5", "share_code": "Ab12"}
    # Two members view on day 1 (one twice), one again on day 2.
    for viewer, at in (("mem_1", DAY1), ("mem_1", DAY1), ("mem_2", DAY1), ("mem_1", DAY2)):
        await w.cases.record_view(Touch(MERCHANT, viewer, at, **refs))
    for click in ("k1", "k2", "k2", "k3"):
        await w.cases.record_click(Touch(MERCHANT, "mem_1", DAY1, click_id=click, **refs))
    await w.cases.record(order_fact(funnels.order_placed(), **refs))
    await w.cases.record(order_fact(funnels.order_paid(10_000), **refs))
    await w.cases.record(order_fact(funnels.order_placed(), **refs))
    await w.cases.record(order_fact(funnels.order_paid(3_000), **refs))
    # A partial refund, then the rest of that order; each counts once however often it comes.
    partial = order_fact(funnels.order_refunded(1_000, False), cause="rfd_1", **refs)
    rest = order_fact(funnels.order_refunded(2_000, True), cause="rfd_2", **refs)
    for refund in (partial, partial, rest, rest):
        await w.cases.record(refund)
    with operator():
        report, currency = await w.cases.daily_report("persona", persona.id, "2026-05-31", "2026-06-03")
    assert currency == "CNY"
    rows = dict(report.rows)
    assert list(rows) == ["2026-05-31", "2026-06-01", "2026-06-02", "2026-06-03"]
    assert rows["2026-05-31"] == Counters() == rows["2026-06-02"]
    assert rows["2026-06-01"] == Counters(unique_viewers=2, product_clicks=3, orders=2, paid_orders=1, gmv=10_000,
                                          refunds=2, refunded=3_000)
    assert rows["2026-06-03"] == Counters(unique_viewers=1)
    assert report.total == Counters(unique_viewers=3, product_clicks=3, orders=2, paid_orders=1, gmv=10_000,
                                    refunds=2, refunded=3_000)
    assert report.total.conversion_rate_bp == 3333
    # The same counts reached the channel and the share code funnels.
    with operator():
        by_channel, _ = await w.cases.daily_report("channel", "H5", "2026-06-01", "2026-06-01")
        by_code, _ = await w.cases.daily_report("share_code", "Ab12", "2026-06-01", "2026-06-01")
    assert by_channel.total == by_code.total == rows["2026-06-01"]


async def test_a_daily_report_refuses_bad_ranges_and_names_each_field(w):
    with operator():
        with pytest.raises(InvalidArgument) as bad:
            await w.cases.daily_report("nowhere", "x", "2026-13-01", "2026-06-31")
        assert {v.field for v in bad.value.violations} == {"dimension", "from_day", "to_day"}
        with pytest.raises(InvalidArgument) as bad:
            await w.cases.daily_report("persona", "cnt_1", "2026-06-02", "2026-06-01")
        assert {v.field for v in bad.value.violations} == {"ref_id", "to_day"}
        with pytest.raises(InvalidArgument) as bad:
            await w.cases.daily_report("channel", "WECHAT", "2025-05-31", "2026-06-01")
        assert {v.field for v in bad.value.violations} == {"ref_id", "to_day"}
        report, _ = await w.cases.daily_report("channel", "LIVE", "2025-06-02", "2026-06-02")  # 366 days
    assert len(report.rows) == 366


async def test_a_report_of_another_merchants_or_an_unknown_subject_is_not_found(w):
    persona = await persona_of(w)
    await w.cases.record(order_fact(funnels.order_placed(), live_session_id="liv_01J0000000000000000000000A",
                                    share_code="zz9"))
    with operator(OTHER):
        for dimension, ref in (("persona", persona.id), ("live_session", "liv_01J0000000000000000000000A"),
                               ("share_code", "zz9")):
            with pytest.raises(NotFound):
                await w.cases.daily_report(dimension, ref, "2026-06-01", "2026-06-01")
        with pytest.raises(NotFound):
            await w.cases.daily_report("content", new_id("cnt"), "2026-06-01", "2026-06-01")
    with operator():
        report, _ = await w.cases.daily_report("live_session", "liv_01J0000000000000000000000A", "2026-06-01",
                                               "2026-06-01")
    assert report.total == Counters(orders=1)


async def test_a_guide_reads_only_the_funnels_of_their_own_personas_content_and_sessions(w):
    mine, theirs = await persona_of(w), await persona_of(w)
    w.personas.items[mine.id].guide_ids = ("stf_1",)
    with operator():
        content, _ = await w.content_cases.upsert(ContentFields(code="c1", persona_id=mine.id, type="ARTICLE", title="t"), "PUBLISHED")
    session_personas = {"liv_01J0000000000000000000000A": mine.id, "liv_01J0000000000000000000000B": theirs.id}
    w.cases.session_personas = lambda live_session_id: _async(session_personas.get(live_session_id, ""))
    for session in session_personas:
        await w.cases.record(order_fact(funnels.order_placed(), live_session_id=session, share_code="zz9"))
    for dimension, ref in (("persona", mine.id), ("content", content.id),
                           ("live_session", "liv_01J0000000000000000000000A")):
        with operator(roles=("GUIDE",)):
            await w.cases.daily_report(dimension, ref, "2026-06-01", "2026-06-01")
    for dimension, ref in (("persona", theirs.id), ("live_session", "liv_01J0000000000000000000000B"),
                           ("channel", "H5"), ("share_code", "zz9")):
        with operator(roles=("GUIDE",)), pytest.raises(PermissionDenied):
            await w.cases.daily_report(dimension, ref, "2026-06-01", "2026-06-01")
    # An unknown subject is NOT_FOUND for a guide too, never a hint that it exists elsewhere.
    with operator(roles=("GUIDE",)), pytest.raises(NotFound):
        await w.cases.daily_report("persona", new_id("per"), "2026-06-01", "2026-06-01")


async def test_finance_reads_no_funnels_and_only_managers_read_repeat_purchase(w):
    persona = await persona_of(w)
    with operator(roles=("FINANCE",)), pytest.raises(PermissionDenied):
        await w.cases.daily_report("persona", persona.id, "2026-06-01", "2026-06-01")
    for roles in (("GUIDE",), ("FINANCE",)):
        with operator(roles=roles), pytest.raises(PermissionDenied):
            await w.cohorts.report("2026-01", "2026-06", "all")
    with operator(roles=("OWNER",)):
        await w.cases.daily_report("persona", persona.id, "2026-06-01", "2026-06-01")


async def _async(value):
    return value


async def test_touches_without_a_usable_cause_are_refused_before_anything_counts(w):
    with pytest.raises(ValueError):
        await w.cases.record_click(Touch(MERCHANT, "mem_1", DAY1, persona_id="per_1", click_id="a.b"))
    with pytest.raises(ValueError):
        await w.cases.record_view(Touch(MERCHANT, "", DAY1, persona_id="per_1"))
    assert w.funnels.buckets == {}
    assert await w.cases.record_view(Touch(MERCHANT, "mem_1", DAY1)) == 0  # attributed to nothing


def paid(member: str, order: str, at: datetime, amount: int, channel: str = "H5", persona: str = "") -> PaidFact:
    return PaidFact(MERCHANT, member, order, at, amount, channel, persona)


def utc(year: int, month: int, day: int = 10) -> datetime:
    return datetime(year, month, day, 4, 0, tzinfo=timezone.utc)


async def test_repeat_purchase_cohorts_and_lifetime_value_from_order_events(w):
    # mem_1: Jan, Feb, Apr; mem_2: Jan only; mem_3: Feb, Feb (twice in its first month), then a refund.
    for fact in (paid("mem_1", "o1", utc(2026, 1), 10_000), paid("mem_2", "o2", utc(2026, 1), 5_000, "LIVE"),
                 paid("mem_1", "o3", utc(2026, 2), 2_000), paid("mem_3", "o4", utc(2026, 2), 8_000, "LIVE", "per_1"),
                 paid("mem_3", "o5", utc(2026, 2, 20), 1_000, "H5"), paid("mem_1", "o6", utc(2026, 4), 3_000)):
        await w.cohorts.record_paid(fact)
        await w.cohorts.record_paid(fact)  # a replay
    assert await w.cohorts.record_refund(RefundFact(MERCHANT, "mem_3", "o5", "rfd_1", 1_000)) is True
    assert await w.cohorts.record_refund(RefundFact(MERCHANT, "mem_3", "o5", "rfd_1", 1_000)) is False
    with operator():
        groups, through, currency = await w.cohorts.report("2026-01", "2026-03", "all")
    assert (through, currency) == ("2026-08", "CNY")
    [everyone] = groups
    assert (everyone.members, everyone.repeat_members) == (3, 1)  # mem_3's second order was refunded in full
    assert everyone.repeat_rate_bp == 3333
    assert everyone.lifetime_value == (15_000 + 5_000 + 8_000) // 3
    jan, feb = everyone.cohorts
    assert (jan.month, jan.members, jan.lifetime_value) == ("2026-01", 2, 10_000)
    assert jan.retention_bp == [5000, 0, 5000, 0, 0, 0, 0]  # Feb .. Aug
    assert (feb.month, feb.members, feb.retention_bp[:2]) == ("2026-02", 1, [0, 0])
    with operator():
        by_channel, _, _ = await w.cohorts.report("2026-01", "2026-03", "channel")
        by_persona, _, _ = await w.cohorts.report("2026-02", "2026-02", "persona")
    assert {(g.key, g.members) for g in by_channel} == {("H5", 1), ("LIVE", 2)}
    assert [(g.key, g.members, g.lifetime_value) for g in by_persona] == [("per_1", 1, 8_000)]


async def test_an_earlier_order_arriving_late_moves_the_member_to_its_cohort(w):
    await w.cohorts.record_paid(paid("mem_1", "o2", utc(2026, 3), 100, "H5"))
    await w.cohorts.record_paid(paid("mem_1", "o1", utc(2026, 1), 100, "LIVE"))
    with operator():
        groups, _, _ = await w.cohorts.report("2026-01", "2026-03", "channel")
    assert [(g.key, [c.month for c in g.cohorts]) for g in groups] == [("LIVE", ["2026-01"])]


async def test_a_repeat_purchase_report_refuses_bad_months(w):
    with operator():
        with pytest.raises(InvalidArgument) as bad:
            await w.cohorts.report("2026-13", "26-01", "weekly")
        assert {v.field for v in bad.value.violations} == {"from_month", "to_month", "group_by"}
        with pytest.raises(InvalidArgument) as bad:
            await w.cohorts.report("2024-01", "2026-01", "all")  # 25 months
        assert {v.field for v in bad.value.violations} == {"to_month"}
        with pytest.raises(InvalidArgument):
            await w.cohorts.report("2026-02", "2026-01", "all")
        assert (await w.cohorts.report("2024-02", "2026-01", "all"))[0] == []


async def test_an_erased_member_leaves_the_reports(w):
    await w.cohorts.record_paid(paid("mem_1", "o1", utc(2026, 1), 100))
    await w.cohorts.record_paid(paid("mem_1", "o2", utc(2026, 2), 100))
    await w.cohorts.record_paid(paid("mem_2", "o3", utc(2026, 1), 100))
    await w.cohorts.record_paid(PaidFact(OTHER, "mem_1", "o9", utc(2026, 1), 100))
    assert await w.cohorts.forget_member(MERCHANT, "mem_1") == 2
    assert await w.cohorts.forget_member(MERCHANT, "mem_1") == 0
    with operator():
        [everyone], _, _ = await w.cohorts.report("2026-01", "2026-03", "all")
    assert (everyone.members, everyone.repeat_members) == (1, 0)
    assert len(await w.purchases.orders(OTHER, 0)) == 1
