"""Recommendations: the ranking, reason and mixing rules directly (property-tested where
the combinations matter), the read over in-memory ports (personalisation off, parts that
are away or late), the events that keep the data (a replay counts once) and the member's
data; and the content featuring a product."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st
from siyu.common.v1 import common_pb2
from siyu.member.v1 import events_pb2 as member_events, member_pb2
from siyu.order.v1 import events_pb2, order_pb2

from siyu_kit import protos
from siyu_kit.errors import InvalidArgument, Unauthenticated
from siyu_kit.events.consumer import Poison
from siyu_kit.ids import new_id

from services.content.adapters import recommendation_store as rs
from services.content.application.contents import ContentUseCases
from services.content.application.member_data import MemberData
from services.content.application.personas import PersonaUseCases
from services.content.application.recommendation_ports import PaidOrderFact
from services.content.application.recommendations import ProductContents, Recommendations
from services.content.domain import recommendations as rules
from services.content.domain.contents import ContentFields
from services.content.domain.personas import PersonaFields
from services.content.domain.recommendations import Pick, Shape
from services.content.entrypoint.events import recommendation_subscriptions
from tests.fakes.content import FakePersonas, FakeProducts, caller
from tests.fakes.content_feed import FakeContentsWithEvents, FakeFollows, FakePublished
from tests.fakes.recommendations import FakeCatalog, FakeRecommendationStore
from tests.unit.content.test_funnel_apply_once import Collection

MERCHANT = "mch_A"
NOW = 1_780_000_000_000
DAY = rules.DAY_MS


def prd(n: int) -> str:
    return f"prd_{n:026d}"


# ---- rules -------------------------------------------------------------------------------

def test_an_order_adds_each_pair_once_whatever_the_quantities():
    units = rules.units_by_product([("prd_A", 2), ("prd_B", 1), ("prd_A", 1)])
    assert units == {"prd_A": 3, "prd_B": 1}
    assert rules.pairs(units) == {"prd_A": ["prd_B"], "prd_B": ["prd_A"]}
    assert rules.pairs({"prd_A": 5}) == {}  # one product: no pair
    with pytest.raises(ValueError):
        rules.units_by_product([("prd_A", 0)])
    with pytest.raises(ValueError):
        rules.units_by_product([("", 1)])


def test_bought_with_ranks_by_orders_together_and_names_the_anchor_bought_with_most():
    co = {"prd_A": {"prd_X": 3, "prd_Y": 1}, "prd_B": {"prd_Y": 5, "prd_X": 1, "prd_A": 2}}
    picks = rules.bought_with(["prd_A", "prd_B"], co)
    assert [(p.product_id, p.related_product_id) for p in picks] == [
        ("prd_Y", "prd_B"), ("prd_X", "prd_A"), ("prd_A", "prd_B")]
    assert {p.reason for p in picks} == {rules.BOUGHT_WITH}


def test_affinity_prefers_the_category_bought_from_most_then_shared_tags():
    history = [Shape("h1", "cat_shoes", ("red",)), Shape("h2", "cat_shoes", ("sport",)),
               Shape("h3", "cat_bags", ("red",))]
    candidates = [Shape("c1", "cat_other", ("red",)), Shape("c2", "cat_bags", ()), Shape("c3", "cat_shoes", ()),
                  Shape("c4", "cat_other", ("blue",)), Shape("c5", "cat_other", ("sport",))]
    picks = rules.affinity(history, candidates)
    assert [(p.product_id, p.reason, p.tag) for p in picks] == [
        ("c3", rules.CATEGORY_AFFINITY, ""), ("c2", rules.CATEGORY_AFFINITY, ""),
        ("c1", rules.TAG_AFFINITY, "red"), ("c5", rules.TAG_AFFINITY, "sport")]
    assert (rules.top_category(history), rules.top_tag(history)) == ("cat_shoes", "red")


def test_followed_personas_take_turns_and_popular_ranks_by_units():
    featured = [rules.Featured("per_1", "小美", ("a", "b", "c")), rules.Featured("per_2", "王姐", ("d",))]
    assert [(p.product_id, p.persona_id) for p in rules.followed(featured)] == [
        ("a", "per_1"), ("d", "per_2"), ("b", "per_1"), ("c", "per_1")]
    assert [p.product_id for p in rules.popular({"x": 2, "y": 5, "z": 2, "w": 0})] == ["y", "x", "z"]
    assert rules.add_units([{"x": 1}, {"x": 2, "y": 1}]) == {"x": 3, "y": 1}


def test_reason_texts():
    titles, names = {"prd_A": "保温杯"}, {"per_1": "小美"}
    assert rules.reason_text(Pick("b", rules.BOUGHT_WITH, related_product_id="prd_A"), titles, names) == \
        "和 保温杯 一起买"
    assert rules.reason_text(Pick("b", rules.FOLLOWED_PERSONA, persona_id="per_1"), titles, names) == "来自 小美"
    assert rules.reason_text(Pick("b", rules.POPULAR), titles, names) == "热销"
    assert rules.reason_text(Pick("b", rules.TAG_AFFINITY, tag="red"), titles, names) == "你喜欢的「red」"


def test_recent_purchases_and_the_window():
    bought = {"old": NOW - (rules.RECENT_DAYS + 1) * DAY, "new": NOW - DAY, "newer": NOW}
    assert rules.recent(bought, NOW) == {"new", "newer"}
    assert rules.anchors(bought, NOW) == ["newer", "new"]
    days = rules.window(NOW)
    assert len(days) == rules.POPULAR_DAYS and days[0] == rules.day_of(NOW) and days == sorted(days, reverse=True)


ids = st.sampled_from([f"p{i}" for i in range(12)])
picks_of = st.lists(ids, max_size=10)


@settings(max_examples=200, deadline=None)
@given(bw=picks_of, fol=picks_of, aff=picks_of, pop=picks_of, recent=st.sets(ids), limit=st.integers(0, 30))
def test_mixing_keeps_the_source_order_no_duplicates_and_no_recent_purchase_from_history(bw, fol, aff, pop, recent,
                                                                                          limit):
    sources = {rules.BOUGHT_WITH: bw, rules.FOLLOWED_PERSONA: fol, rules.CATEGORY_AFFINITY: aff,
               rules.POPULAR: pop}
    out = rules.mix(bought_with=[Pick(p, rules.BOUGHT_WITH) for p in bw],
                    followed=[Pick(p, rules.FOLLOWED_PERSONA) for p in fol],
                    affinity=[Pick(p, rules.CATEGORY_AFFINITY) for p in aff],
                    popular=[Pick(p, rules.POPULAR) for p in pop], recent=recent, limit=limit)
    products = [p.product_id for p in out]
    assert len(products) == len(set(products)) and len(out) <= limit
    order = [rules.BOUGHT_WITH, rules.FOLLOWED_PERSONA, rules.CATEGORY_AFFINITY, rules.POPULAR]
    assert [order.index(p.reason) for p in out] == sorted(order.index(p.reason) for p in out)
    assert not any(p.product_id in recent for p in out if p.reason in (rules.BOUGHT_WITH, rules.CATEGORY_AFFINITY))
    for pick in out:
        assert pick.product_id in sources[pick.reason]
    if len(out) < limit:  # nothing left out that could have been taken
        eligible = {p for p in bw + aff if p not in recent} | set(fol) | set(pop)
        assert set(products) == eligible


# ---- the read over in-memory ports -------------------------------------------------------

@pytest.fixture
def w():
    class World:
        store = FakeRecommendationStore()
        catalog = FakeCatalog()
        personas = FakePersonas()
        follows = FakeFollows()
    world = World()
    world.recs = Recommendations(world.store, world.follows, world.personas, world.catalog, clock=lambda: NOW,
                                 timeout_s=0.05)
    world.persona_cases = PersonaUseCases(world.personas, lambda: NOW)
    for n, (title, category, tags) in enumerate([("保温杯", "cat_cup", ("kitchen",)), ("杯刷", "cat_clean", ()),
                                                 ("马克杯", "cat_cup", ()), ("抹布", "cat_clean", ("kitchen",)),
                                                 ("香薰", "cat_home", ()), ("毛巾", "cat_bath", ())], start=1):
        world.catalog.add(prd(n), title, category, tags)
    return world


async def paid(w, member_id: str, *products: str, at: int = NOW - DAY, event_id: str = "") -> int:
    return await w.recs.record_paid(rs_fact(event_id or new_id("evt"), member_id, at, {p: 1 for p in products}))


def rs_fact(event_id: str, member_id: str, at: int, units: dict[str, int]) -> PaidOrderFact:
    return PaidOrderFact(event_id, MERCHANT, member_id, at, units)


def member(member_id: str = "mem_1"):
    return caller(MERCHANT, member_id=member_id, channel="H5")


async def read(w, member_id: str = "mem_1", size: int = 0):
    with member(member_id):
        rows, personalised = await w.recs.mine(size)
    return [(pick.product_id, pick.reason, text) for _, pick, text in rows], personalised


async def test_a_member_gets_what_others_bought_with_their_purchase_then_affinity_then_popular(w):
    await paid(w, "mem_other", prd(1), prd(2))
    await paid(w, "mem_other2", prd(6))
    await paid(w, "mem_other3", prd(6))
    await paid(w, "mem_1", prd(1))
    rows, personalised = await read(w)
    assert personalised is True
    assert rows[0] == (prd(2), rules.BOUGHT_WITH, "和 保温杯 一起买")
    # 马克杯 shares the category of 保温杯, 抹布 its tag; prd(1) itself is never offered back
    # by history, and popular fills the rest.
    assert (prd(3), rules.CATEGORY_AFFINITY, "你常买的品类") in rows
    assert (prd(4), rules.TAG_AFFINITY, "你喜欢的「kitchen」") in rows
    assert rows[-1][1] == rules.POPULAR and (prd(6), rules.POPULAR, "热销") in rows
    assert len({r[0] for r in rows}) == len(rows)
    assert prd(1) in [r[0] for r in rows if r[1] == rules.POPULAR]  # a best seller may still show


async def test_followed_personas_featured_products_come_with_the_persona(w):
    with caller(MERCHANT, staff_id="stf_op", roles=("OPERATOR",)):
        persona, _ = await w.persona_cases.upsert(PersonaFields(code="p1", name="小美",
                                                                featured_product_ids=(prd(5), prd(9))))
    await w.follows.follow(MERCHANT, "mem_1", persona.id, NOW)
    rows, _ = await read(w)
    # prd(9) is not in the catalog: never shown.
    assert rows == [(prd(5), rules.FOLLOWED_PERSONA, "来自 小美")]


async def test_a_new_member_gets_best_sellers_and_the_page_size_is_kept(w):
    for n in (1, 1, 2, 3):
        await paid(w, f"mem_{new_id('x')[-6:]}", prd(n))
    rows, personalised = await read(w, "mem_new", size=2)
    assert personalised and rows == [(prd(1), rules.POPULAR, "热销"), (prd(2), rules.POPULAR, "热销")]
    w.catalog.hidden.add(prd(1))  # taken off the shelf: left out, the next one takes its place
    assert [r[0] for r in (await read(w, "mem_new", size=2))[0]] == [prd(2), prd(3)]


async def test_switched_off_the_member_gets_popular_only(w):
    await paid(w, "mem_other", prd(1), prd(2))
    await paid(w, "mem_1", prd(1))
    assert await w.recs.record_switch(MERCHANT, "mem_1", False, 3)
    rows, personalised = await read(w)
    assert personalised is False and {r[1] for r in rows} == {rules.POPULAR}
    assert not await w.recs.record_switch(MERCHANT, "mem_1", True, 2)  # late: changes nothing
    assert (await read(w))[1] is False
    assert await w.recs.record_switch(MERCHANT, "mem_1", True, 4)
    assert (await read(w))[1] is True


async def test_parts_that_are_away_are_left_out_and_never_fail_the_read(w):
    await paid(w, "mem_other", prd(1), prd(2))
    await paid(w, "mem_1", prd(1))
    w.store.failing = {"pairs", "purchases"}
    rows, personalised = await read(w)
    assert personalised and {r[1] for r in rows} == {rules.POPULAR}
    # The switch unknown: treated as off (history is used only when allowed).
    w.store.failing = {"switch"}
    assert (await read(w))[1] is False
    # The catalog away: the best sellers by id alone.
    w.store.failing, w.catalog.down = set(), True
    with member():
        rows, _ = await w.recs.mine(0)
    assert [(product, pick.product_id) for product, pick, _ in rows] == [(None, prd(1)), (None, prd(2))]
    # The catalog late: the same.
    w.catalog.down, w.catalog.slow_s = False, 10
    with member():
        rows, _ = await w.recs.mine(0)
    assert {product for product, _, _ in rows} == {None}


async def test_the_read_needs_a_member_and_a_page_size_in_range(w):
    with pytest.raises(InvalidArgument) as bad, member():
        await w.recs.mine(51)
    assert [v.field for v in bad.value.violations] == ["page_size"]
    with pytest.raises(Unauthenticated), caller(MERCHANT, channel="H5"):
        await w.recs.mine(0)


async def test_the_members_recommendation_data_is_erased_with_the_member_and_not_exported(w):
    await paid(w, "mem_1", prd(1), at=NOW)
    await paid(w, "mem_2", prd(1), prd(2), at=NOW)
    await w.recs.record_switch(MERCHANT, "mem_1", False, 2)
    # Copies of the order and member services' data: erased here, exported by them.
    data = MemberData([], derived=[w.recs.forget_member])
    await data.erase(MERCHANT, "mem_1")
    await data.erase(MERCHANT, "mem_1")  # a redelivery changes nothing
    assert (MERCHANT, "mem_1") not in w.store.purchases and (MERCHANT, "mem_1") not in w.store.switches
    assert (MERCHANT, "mem_2") in w.store.purchases and w.store.pairs[(MERCHANT, prd(1))] == {prd(2): 1}
    with caller(MERCHANT, staff_id="stf_op", roles=("OPERATOR",)):
        assert await data.export("mem_" + "1" * 26) == {}


# ---- the events ----------------------------------------------------------------------------

def envelope(event_id: str = "", version: int = 0) -> common_pb2.EventEnvelope:
    return common_pb2.EventEnvelope(event_id=event_id or new_id("evt"), merchant_id=MERCHANT,
                                    occurred_at=protos.timestamp(datetime(2026, 6, 1, tzinfo=timezone.utc)),
                                    aggregate_version=version)


def order_paid(*lines: tuple[str, int], kind=order_pb2.ORDER_KIND_UNSPECIFIED) -> events_pb2.OrderPaid:
    return events_pb2.OrderPaid(order=order_pb2.Order(
        order_id="ord_1", member_id="mem_1", kind=kind, paid_at=protos.timestamp(datetime(2026, 6, 1, 8,
                                                                                         tzinfo=timezone.utc)),
        lines=[order_pb2.OrderLine(product_id=p, quantity=q) for p, q in lines]))


@pytest.fixture
def handlers(w):
    return {s.payload_type: s.handler for s in recommendation_subscriptions(w.recs)}


async def test_a_paid_order_applied_twice_counts_once(w, handlers):
    on_paid = handlers[events_pb2.OrderPaid]
    event = envelope()
    await on_paid(event, order_paid((prd(1), 2), (prd(2), 1)))
    await on_paid(event, order_paid((prd(1), 2), (prd(2), 1)))  # redelivered
    assert w.store.pairs[(MERCHANT, prd(1))] == {prd(2): 1}
    assert w.store.units[(MERCHANT, "2026-06-01")] == {prd(1): 2, prd(2): 1}
    assert set(w.store.purchases[(MERCHANT, "mem_1")]) == {prd(1), prd(2)}
    await on_paid(envelope(), order_paid((prd(3), 1), kind=order_pb2.ORDER_KIND_RECHARGE))  # no sale
    assert prd(3) not in w.store.units[(MERCHANT, "2026-06-01")]
    with pytest.raises(Poison):
        await on_paid(envelope(), order_paid(("not-a-product", 1)))


async def test_the_profile_event_keeps_the_switch_newest_version_first(w, handlers):
    on_profile = handlers[member_events.MemberProfileUpdated]

    member_id = "mem_" + "0" * 26
    with pytest.raises(Poison):
        await on_profile(envelope(), member_events.MemberProfileUpdated(
            profile=member_pb2.Profile(member_id="bad", version=2), changed=["personalised_recommendations"]))
    good = member_events.MemberProfileUpdated(
        profile=member_pb2.Profile(member_id=member_id, personalised_recommendations=False, version=5),
        changed=["personalised_recommendations"])
    await on_profile(envelope(), good)
    late = member_events.MemberProfileUpdated(
        profile=member_pb2.Profile(member_id=member_id, personalised_recommendations=True, version=4),
        changed=["personalised_recommendations"])
    await on_profile(envelope(), late)
    assert w.store.switches[(MERCHANT, member_id)] == (False, 5)
    # A profile change that is not the switch leaves it alone.
    other = member_events.MemberProfileUpdated(
        profile=member_pb2.Profile(member_id=member_id, personalised_recommendations=True, version=6),
        changed=["nickname"])
    await on_profile(envelope(), other)
    assert w.store.switches[(MERCHANT, member_id)] == (False, 5)


def test_the_store_counts_an_order_once_against_mongodb_semantics():
    """The real store's counting over a stand-in of MongoDB collections: a redelivered
    event counts nothing the second time."""
    cols = {n: Collection() for n in ("pairs", "purchases", "units", "guards", "switches")}
    store = rs.RecommendationStore(**cols)
    fact = rs_fact("evt_1", "mem_1", NOW, {prd(1): 1, prd(2): 2})
    assert store._record_paid(fact) == 4
    assert store._record_paid(fact) == 0
    day = rules.day_of(NOW)
    doc = cols["units"].docs[rs.key(MERCHANT, day)]
    assert {k: v for k, v in doc.items() if k.startswith("units.")} == {f"units.{prd(1)}": 1, f"units.{prd(2)}": 2}


# ---- content featuring a product -----------------------------------------------------------

async def test_product_contents_page_newest_first_on_the_callers_channel():
    personas, contents = FakePersonas(), FakeContentsWithEvents()
    clock = [NOW]
    persona_cases = PersonaUseCases(personas, lambda: clock[0])
    content_cases = ContentUseCases(contents, personas, FakeProducts(prd(1), prd(2)), lambda: clock[0])
    with caller(MERCHANT, staff_id="stf_op", roles=("OPERATOR",)):
        persona, _ = await persona_cases.upsert(PersonaFields(code="p1", name="小美"))
        made = []
        for n, channels in enumerate([(), ("MINI_PROGRAM",), (), ()]):
            clock[0] += 1000
            item, _ = await content_cases.upsert(ContentFields(
                code=f"c{n}", persona_id=persona.id, type="ARTICLE", title="t", channels=channels,
                product_ids=(prd(1),) if n != 3 else (prd(2),)), "PUBLISHED")
            made.append(item.id)

    class Linking:
        def __init__(self, published):
            self.published = published

        async def linking(self, merchant_id, channel, product_id, below, limit):
            rows = await self.published.published(merchant_id, channel, None, below, 100)
            return [c for c in rows if product_id in c.fields.product_ids][:limit]

    pages = ProductContents(Linking(FakePublished(contents)), personas)
    with caller(MERCHANT, channel="H5"):
        first, found, token = await pages.page(prd(1), 1, "")
        second, _, last = await pages.page(prd(1), 1, token)
        assert [c.id for c in first + second] == [made[2], made[0]] and token and last == ""
        assert [p.id for p in found] == [persona.id]
        with pytest.raises(InvalidArgument) as bad:
            await pages.page("nope", 21, "junk")
    assert {v.field for v in bad.value.violations} == {"product_id", "page_size", "page_token"}
    with caller(MERCHANT, channel="MINI_PROGRAM"):
        assert [c.id for c in (await pages.page(prd(1), 0, ""))[0]] == [made[2], made[1], made[0]]
