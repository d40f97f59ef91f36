"""Guide performance over in-memory ports: which guides (and store) an order belongs to,
counting each order once per guide and event kind, viewers counted for guides, the reads
and who may make them."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st

from siyu_kit.errors import InvalidArgument, NotFound, PermissionDenied
from siyu_kit.ids import new_id

from services.content.application.funnels import FunnelUseCases, Touch
from services.content.application.contents import ContentUseCases
from services.content.application.guide_performance import GuidePerformanceUseCases, OrderSeen
from services.content.application.personas import PersonaUseCases
from services.content.domain import funnels
from services.content.domain import guide_performance as rules
from services.content.domain.contents import Content, ContentFields
from services.content.domain.engagement import ShareCode, ShareTarget
from services.content.domain.funnels import Counters
from services.content.domain.personas import Persona, PersonaFields
from tests.fakes.content import FakeContents, FakeFunnels, FakePersonas, caller
from tests.fakes.engagement import FakeShareCodes
from tests.fakes.guide_performance import FakeFunnelTotals, FakeOrderCredits

M = "mch_A"
G1, G2, G3 = (f"stf_{c * 26}" for c in "ABC")
AT = datetime(2026, 6, 1, 4, 0, tzinfo=timezone.utc)  # 2026-06-01 in Shanghai
DAY = "2026-06-01"
stf_ids = st.builds(lambda: new_id("stf"))
mem_ids = st.builds(lambda: new_id("mem"))


# ---- which guides an order belongs to (pure) ------------------------------------------

@given(referral=st.one_of(st.just(""), stf_ids, mem_ids), persona=st.lists(stf_ids, max_size=4),
       sharer=st.one_of(st.just(""), stf_ids, mem_ids))
def test_an_order_belongs_to_the_referral_guide_the_persona_guides_and_a_guide_sharer_each_once(
        referral, persona, sharer):
    guides = rules.guides_of(referral, persona + persona[:1], sharer)
    expected = {g for g in (referral, sharer, *persona) if g.startswith("stf_")}
    assert set(guides) == expected
    assert list(guides) == sorted(set(guides))  # each once, in a stable order
    assert not any(g.startswith("mem_") for g in guides)  # a member sharer is a distributor


def test_the_credit_names_the_store_and_the_referral_guide_within_it():
    credit = rules.credit("ord_1", G1, (G2,), G3, store="SH-01")
    keys = [(f.dimension, f.ref_id) for f in credit.funnels(M)]
    assert keys == [("guide", G1), ("guide", G2), ("guide", G3), ("store", "SH-01"),
                    ("guide_store", f"SH-01_{G1}")]
    assert rules.split_guide_store(f"SH-01_{G1}") == ("SH-01", G1)
    # A store the referral names in another form counts for no store; no referral guide,
    # no guide within the store.
    assert rules.credit("ord_1", G1, (), store="上海店").store == ""
    assert rules.credit("ord_1", G1, (), store="SH_stf_1").store == ""  # would share another store's keys
    assert [f.dimension for f in rules.credit("ord_1", "", (G2,), store="SH-01").funnels(M)] == ["guide", "store"]


def test_order_causes_are_per_order_and_kind():
    assert rules.order_cause(rules.PLACED, "ord_1") == "placed:ord_1"
    assert rules.order_cause(rules.PAID, "ord_1") == "paid:ord_1"
    with pytest.raises(ValueError):
        rules.order_cause("shipped", "ord_1")


# ---- use cases --------------------------------------------------------------------------

class World:
    def __init__(self):
        self.personas = FakePersonas()
        self.contents = FakeContents()
        self.funnels = FakeFunnels()
        self.shares = FakeShareCodes()
        self.credits = FakeOrderCredits()
        self.sessions: dict[str, str] = {}

        async def session_persona(merchant_id: str, live_session_id: str) -> str:
            return self.sessions.get(live_session_id, "")

        self.cases = GuidePerformanceUseCases(self.funnels, FakeFunnelTotals(self.funnels), self.credits,
                                              self.personas, self.contents, self.shares, session_persona)

    async def persona(self, *guides: str) -> str:
        persona = Persona.create(new_id("per"), M, PersonaFields(code=new_id("c")[-10:], name="林老师"), 1)
        persona.assign_guides(tuple(guides), 1)
        await self.personas.add(persona)
        return persona.id

    async def content(self, persona_id: str) -> str:
        content = Content.create(new_id("cnt"), M, ContentFields(code=new_id("c")[-10:], persona_id=persona_id,
                                                                 type="ARTICLE", title="春季"), "DRAFT", 1)
        await self.contents.add(content)
        return content.id

    def share(self, sharer_kind: str, sharer_id: str, persona_id: str = "") -> str:
        code = new_id("x")[-10:]
        self.shares.codes[code] = ShareCode(code=code, merchant_id=M, target=ShareTarget(
            "PERSONA", persona_id, persona_id=persona_id), sharer_kind=sharer_kind, sharer_id=sharer_id,
            created_ms=1, day=DAY)
        return code

    def totals(self, dimension: str, ref_id: str) -> Counters:
        return funnels.total(b.counters for (m, d, r, _), b in self.funnels.buckets.items()
                             if (m, d, r) == (M, dimension, ref_id))


def seen(order_id: str, cause: str, change: Counters, **attribution) -> OrderSeen:
    return OrderSeen(merchant_id=M, order_id=order_id, cause=cause, occurred_at=AT, change=change, **attribution)


def placed(order_id: str, **attribution) -> OrderSeen:
    return seen(order_id, rules.order_cause(rules.PLACED, order_id), funnels.order_placed(), **attribution)


def paid(order_id: str, amount: int, **attribution) -> OrderSeen:
    return seen(order_id, rules.order_cause(rules.PAID, order_id), funnels.order_paid(amount), **attribution)


async def test_an_order_counts_for_the_guides_of_its_persona_found_through_content_session_or_share_code():
    w = World()
    by_persona, by_content, by_session, by_code = [await w.persona(g) for g in (G1, G2, G3, G1)]
    content = await w.content(by_content)
    w.sessions["liv_1"] = by_session
    code = w.share("member", "mem_1", by_code)
    await w.cases.record_order(placed("ord_1", persona_id=by_persona))
    await w.cases.record_order(placed("ord_2", content_id=content))
    await w.cases.record_order(placed("ord_3", live_session_id="liv_1"))
    await w.cases.record_order(placed("ord_4", share_code=code))
    assert w.totals("guide", G1).orders == 2  # ord_1 and ord_4
    assert w.totals("guide", G2).orders == 1
    assert w.totals("guide", G3).orders == 1


async def test_a_customers_order_and_a_guides_share_code_count_for_those_guides_and_the_store():
    w = World()
    persona = await w.persona(G2)
    code = w.share("staff", G3, persona)
    await w.cases.record_order(paid("ord_1", 5000, share_code=code, referral_guide=G1, store="SH-01"))
    for guide in (G1, G2, G3):
        assert w.totals("guide", guide) == Counters(paid_orders=1, gmv=5000)
    assert w.totals("store", "SH-01") == Counters(paid_orders=1, gmv=5000)
    assert w.totals("guide_store", f"SH-01_{G1}") == Counters(paid_orders=1, gmv=5000)


async def test_each_order_counts_once_per_guide_and_event_kind_whatever_the_event_id():
    w = World()
    persona = await w.persona(G1, G2)
    assert await w.cases.record_order(placed("ord_1", persona_id=persona, referral_guide=G1)) == 2
    # The same order placed again (a re-sent event), and a guide named twice: nothing more.
    assert await w.cases.record_order(placed("ord_1", persona_id=persona, referral_guide=G1)) == 0
    assert await w.cases.record_order(paid("ord_1", 3000, persona_id=persona)) == 2
    assert await w.cases.record_order(paid("ord_1", 3000, persona_id=persona)) == 0
    refund = seen("ord_1", "rfd_1", funnels.order_refunded(1000, False), persona_id=persona)
    assert await w.cases.record_order(refund) == 2
    assert await w.cases.record_order(refund) == 0
    for guide in (G1, G2):
        assert w.totals("guide", guide) == Counters(orders=1, paid_orders=1, gmv=2000, refunds=1, refunded=1000)


async def test_who_an_order_counts_for_is_fixed_when_it_is_first_seen():
    w = World()
    persona = await w.persona(G1)
    await w.cases.record_order(placed("ord_1", persona_id=persona))
    reassigned = await w.personas.get(M, persona)
    reassigned.assign_guides((G2,), 2)
    await w.personas.save(reassigned)
    await w.cases.record_order(paid("ord_1", 800, persona_id=persona))
    assert w.totals("guide", G1) == Counters(orders=1, paid_orders=1, gmv=800)
    assert w.totals("guide", G2) == Counters()
    # A new order goes to the persona's guides of now.
    await w.cases.record_order(placed("ord_2", persona_id=persona))
    assert w.totals("guide", G2).orders == 1


events = st.lists(st.tuples(st.sampled_from(["ord_1", "ord_2", "ord_3"]),
                            st.sampled_from(["placed", "paid", "rfd_a", "rfd_b"])), max_size=30)


@settings(max_examples=60, deadline=None)
@given(events)
async def test_any_sequence_with_repeats_counts_what_the_distinct_events_say(sequence):
    w = World()
    persona = await w.persona(G1)
    for order_id, kind in sequence:
        if kind == "placed":
            event = placed(order_id, persona_id=persona)
        elif kind == "paid":
            event = paid(order_id, 1000, persona_id=persona)
        else:
            event = seen(order_id, f"{kind}_{order_id}", funnels.order_refunded(100, False), persona_id=persona)
        await w.cases.record_order(event)
    distinct = set(sequence)
    expected = funnels.total(
        funnels.order_placed() if kind == "placed" else funnels.order_paid(1000) if kind == "paid"
        else funnels.order_refunded(100, False) for _, kind in distinct)
    assert w.totals("guide", G1) == expected


async def test_a_viewer_counts_once_a_day_for_each_guide_of_what_they_saw():
    w = World()
    persona = await w.persona(G1, G2)
    content = await w.content(persona)
    code = w.share("staff", G3, persona)
    touch = Touch(merchant_id=M, viewer_id="mem_1", occurred_at=AT, content_id=content)
    assert await w.cases.record_touch(touch) == 2
    assert await w.cases.record_touch(touch) == 0  # the same member that day
    click = Touch(merchant_id=M, viewer_id="mem_1", occurred_at=AT, persona_id=persona, click_id="mem_1-c1")
    await w.cases.record_touch(click)
    await w.cases.record_touch(Touch(merchant_id=M, viewer_id="mem_2", occurred_at=AT, share_code=code))
    assert w.totals("guide", G1) == Counters(unique_viewers=2, product_clicks=1)
    assert w.totals("guide", G3) == Counters(unique_viewers=1)
    # Nothing guides run: nothing counted.
    assert await w.cases.record_touch(Touch(merchant_id=M, viewer_id="mem_3", occurred_at=AT)) == 0


async def test_funnel_views_reach_the_guides_through_the_hook():
    w = World()
    persona = await w.persona(G1)
    personas = PersonaUseCases(w.personas)
    cases = FunnelUseCases(w.funnels, personas, ContentUseCases(w.contents, w.personas, None))
    cases.guide_touches = w.cases.record_touch
    await cases.record_view(Touch(merchant_id=M, viewer_id="mem_1", occurred_at=AT, persona_id=persona))
    assert w.totals("persona", persona).unique_viewers == 1
    assert w.totals("guide", G1).unique_viewers == 1


# ---- reads ------------------------------------------------------------------------------

async def counted_world() -> World:
    w = World()
    persona = await w.persona(G2)
    await w.cases.record_order(paid("ord_1", 5000, referral_guide=G1, store="SH-01"))
    await w.cases.record_order(paid("ord_2", 3000, persona_id=persona))
    await w.cases.record_order(paid("ord_3", 2000, referral_guide=G3, store="BJ-01"))
    await w.cases.record_touch(Touch(merchant_id=M, viewer_id="mem_1", occurred_at=AT, persona_id=persona))
    return w


async def test_a_guide_reads_their_own_numbers_by_day():
    w = await counted_world()
    with caller(M, staff_id=G2, roles=("GUIDE",)):
        guide, report, currency = await w.cases.my_performance("2026-05-31", DAY)
    assert guide == G2 and currency == "CNY"
    assert [day for day, _ in report.rows] == ["2026-05-31", DAY]
    assert report.total == Counters(unique_viewers=1, paid_orders=1, gmv=3000)
    assert report.total.conversion_rate_bp == 10_000
    with caller(M, staff_id=G2, roles=("GUIDE",)), pytest.raises(InvalidArgument) as bad:
        await w.cases.my_performance(DAY, "2026-05-31")
    assert [v.field for v in bad.value.violations] == ["to_day"]
    with caller(M, staff_id="stf_X", roles=("OPERATOR",)), pytest.raises(PermissionDenied):
        await w.cases.my_performance(DAY, DAY)


async def test_managers_list_every_guide_by_page_and_by_store():
    w = await counted_world()
    with caller(M, staff_id="stf_op", roles=("OPERATOR",)):
        first, token, _ = await w.cases.list_guides(DAY, DAY, "", 2, "")
        second, end, _ = await w.cases.list_guides(DAY, DAY, "", 2, token)
        in_store, _, _ = await w.cases.list_guides(DAY, DAY, "SH-01", 0, "")
        stores, _, _ = await w.cases.list_stores(DAY, DAY, 0, "")
        store_report, _ = await w.cases.store_performance("BJ-01", DAY, DAY)
    assert [g for g, _ in first] == [G1, G2] and token
    assert [g for g, _ in second] == [G3] and end == ""
    assert in_store == [(G1, Counters(paid_orders=1, gmv=5000))]
    assert stores == [("BJ-01", Counters(paid_orders=1, gmv=2000)), ("SH-01", Counters(paid_orders=1, gmv=5000))]
    assert store_report.total == Counters(paid_orders=1, gmv=2000)


async def test_reads_refuse_bad_input_unknown_stores_other_merchants_and_guides():
    w = await counted_world()
    with caller(M, staff_id="stf_op", roles=("OPERATOR",)):
        with pytest.raises(InvalidArgument) as bad:
            await w.cases.list_guides("2026-6-1", DAY, "上海", 51, "junk")
        assert {v.field for v in bad.value.violations} == {"from_day", "store", "page_size", "page_token"}
        with pytest.raises(NotFound):
            await w.cases.store_performance("GZ-01", DAY, DAY)
        with pytest.raises(NotFound):
            await w.cases.list_guides(DAY, DAY, "GZ-01", 0, "")
        _, token, _ = await w.cases.list_guides(DAY, DAY, "", 1, "")
        with pytest.raises(InvalidArgument):  # a token of another range
            await w.cases.list_guides("2026-05-01", DAY, "", 1, token)
    with caller("mch_B", staff_id="stf_op", roles=("OPERATOR",)):
        with pytest.raises(NotFound):
            await w.cases.store_performance("SH-01", DAY, DAY)
        assert (await w.cases.list_guides(DAY, DAY, "", 0, ""))[0] == []
    with caller(M, staff_id=G1, roles=("GUIDE",)):
        for read in (w.cases.list_guides(DAY, DAY, "", 0, ""), w.cases.list_stores(DAY, DAY, 0, ""),
                     w.cases.store_performance("SH-01", DAY, DAY)):
            with pytest.raises(PermissionDenied):
                await read


async def test_the_funnel_report_of_a_guide_is_theirs_alone():
    w = await counted_world()
    cases = FunnelUseCases(w.funnels, PersonaUseCases(w.personas), ContentUseCases(w.contents, w.personas, None))
    with caller(M, staff_id=G1, roles=("GUIDE",)):
        report, _ = await cases.daily_report(funnels.GUIDE, G1, DAY, DAY)
        assert report.total.gmv == 5000
        with pytest.raises(PermissionDenied) as denied:
            await cases.daily_report(funnels.GUIDE, G2, DAY, DAY)
        assert denied.value.reason == "GUIDE_NOT_SELF"
    with caller(M, staff_id="stf_op", roles=("OPERATOR",)):
        assert (await cases.daily_report(funnels.GUIDE, G2, DAY, DAY))[0].total.gmv == 3000
        with pytest.raises(NotFound):
            await cases.daily_report(funnels.GUIDE, "stf_" + "Z" * 26, DAY, DAY)
        with pytest.raises(InvalidArgument):
            await cases.daily_report(funnels.GUIDE, "mem_" + "Z" * 26, DAY, DAY)


async def test_erasure_forgets_who_viewed_and_keeps_the_numbers():
    w = World()
    persona = await w.persona(G1)
    cases = FunnelUseCases(w.funnels, PersonaUseCases(w.personas), ContentUseCases(w.contents, w.personas, None))
    cases.guide_touches = w.cases.record_touch
    await cases.record_view(Touch(merchant_id=M, viewer_id="mem_1", occurred_at=AT, persona_id=persona))
    await cases.record_click(Touch(merchant_id=M, viewer_id="mem_1", occurred_at=AT, persona_id=persona,
                                   click_id="mem_1-e1"))
    await cases.record_view(Touch(merchant_id=M, viewer_id="mem_2", occurred_at=AT, persona_id=persona))
    assert await cases.forget_member(M, "mem_1") == 4  # viewer and click, of the persona and the guide
    assert all(not any("mem_1" in c for c in b.seen) for b in w.funnels.buckets.values())
    assert w.totals("guide", G1) == Counters(unique_viewers=2, product_clicks=1)
    assert w.totals("persona", persona) == Counters(unique_viewers=2, product_clicks=1)


async def test_a_stores_guides_are_not_those_of_a_store_whose_name_starts_alike():
    w = World()
    await w.cases.record_order(paid("ord_1", 100, referral_guide=G1, store="SH-01"))
    await w.cases.record_order(paid("ord_2", 200, referral_guide=G2, store="SH-01_B"))
    with caller(M, staff_id="stf_op", roles=("OPERATOR",)):
        assert [g for g, _ in (await w.cases.list_guides(DAY, DAY, "SH-01", 0, ""))[0]] == [G1]
        assert [g for g, _ in (await w.cases.list_guides(DAY, DAY, "SH-01_B", 0, ""))[0]] == [G2]
        with pytest.raises(InvalidArgument):
            await w.cases.list_guides(DAY, DAY, "SH_stf_1", 0, "")
