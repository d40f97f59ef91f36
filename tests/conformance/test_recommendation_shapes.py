"""The query and update shapes of the recommendation data
(services/content/adapters/recommendation_store.py): counting map entries once per event
through the funnel buckets' marks (several `$inc`s of one map and a `$set` of another in the
same upsert), reading documents by `_id $in` with the merchant, the switch's newest-version
upsert, the member's deletion, and the content that links a product (`$in` on the array of
product ids, channel, keyset on the feed key, newest first)."""
from __future__ import annotations

import asyncio

import pytest

from tests.support import new_merchant_id

from services.content.adapters import recommendation_store as rs
from services.content.application.recommendation_ports import PaidOrderFact


@pytest.fixture
def store(db, coll):
    names = ("pairs", "purchases", "units", "guards", "switches")
    collections = {n: db[f"{coll.name}_{n}"] for n in names}
    yield rs.RecommendationStore(**collections)
    for c in collections.values():
        c.drop()


def run(coro):
    return asyncio.run(coro)


def test_a_paid_order_counts_once_per_event_in_every_map(store):
    m = new_merchant_id()
    fact = PaidOrderFact("evt_1", m, "mem_1", 1_780_000_000_000, {"prd_A": 2, "prd_B": 1, "prd_C": 1})
    assert run(store.record_paid(fact)) == 5  # three products' pairs, the member, the day
    assert run(store.record_paid(fact)) == 0  # a redelivery adds nothing
    run(store.record_paid(PaidOrderFact("evt_2", m, "mem_2", 1_780_000_100_000, {"prd_A": 1, "prd_B": 3})))
    co = run(store.co_purchased(m, ["prd_A", "prd_B", "prd_X"]))
    assert co == {"prd_A": {"prd_B": 2, "prd_C": 1}, "prd_B": {"prd_A": 2, "prd_C": 1}}
    assert run(store.bought(m, "mem_1")) == {"prd_A": 1_780_000_000_000, "prd_B": 1_780_000_000_000,
                                             "prd_C": 1_780_000_000_000}
    day = rs.rules.day_of(1_780_000_000_000)
    assert run(store.units_sold(m, [day, "2000-01-01"])) == [{"prd_A": 3, "prd_B": 4, "prd_C": 1}]
    # Another merchant reads none of it.
    other = new_merchant_id()
    assert run(store.co_purchased(other, ["prd_A"])) == {} and run(store.bought(other, "mem_1")) == {}
    assert run(store.units_sold(other, [day])) == []


def test_the_switch_keeps_the_newest_version_and_the_member_is_forgotten(store):
    m = new_merchant_id()
    assert run(store.personalised(m, "mem_1")) is True  # nothing said: on
    assert run(store.set_personalised(m, "mem_1", False, 3)) is True
    assert run(store.set_personalised(m, "mem_1", True, 2)) is False  # late: changes nothing
    assert run(store.set_personalised(m, "mem_1", False, 3)) is False  # repeated
    assert run(store.personalised(m, "mem_1")) is False
    assert run(store.set_personalised(m, "mem_1", True, 4)) is True and run(store.personalised(m, "mem_1"))
    run(store.record_paid(PaidOrderFact("evt_9", m, "mem_1", 1_780_000_000_000, {"prd_A": 1})))
    run(store.set_personalised(m, "mem_1", False, 5))
    assert run(store.bought(m, "mem_1")) == {"prd_A": 1_780_000_000_000}
    run(store.forget_member(m, "mem_1"))
    assert run(store.bought(m, "mem_1")) == {} and run(store.personalised(m, "mem_1")) is True


def test_content_linking_a_product_newest_first_on_the_channel(coll):
    coll.create_index(rs.PRODUCT_CONTENTS_INDEX, name="product_contents")
    m = new_merchant_id()

    def doc(n: int, products: list[str], status: str = "PUBLISHED", visible: tuple = ("H5", "LIVE"), merchant=m):
        return {"_id": f"cnt_{n}", "merchant_id": merchant, "status": status, "product_ids": products,
                "visible_on": list(visible), "feed_key": f"{n:015d}:cnt_{n}" if status == "PUBLISHED" else ""}

    coll.insert_many([doc(1, ["prd_A"]), doc(2, ["prd_B", "prd_A"]), doc(3, ["prd_B"]), doc(4, ["prd_A"], "DRAFT"),
                      doc(5, ["prd_A"], visible=("MINI_PROGRAM",)), doc(6, ["prd_A"], merchant=new_merchant_id()),
                      doc(7, ["prd_A", "prd_C"])])

    def ids(channel: str, below: str = "", limit: int = 10) -> list[str]:
        return [d["_id"] for d in coll.find(rs.linking_query(m, channel, "prd_A", below), {"_id": 1}).sort(
            "feed_key", -1).limit(limit)]

    assert ids("H5") == ["cnt_7", "cnt_2", "cnt_1"]
    assert ids("MINI_PROGRAM") == ["cnt_5"]
    assert ids("") == ["cnt_7", "cnt_5", "cnt_2", "cnt_1"]
    assert ids("H5", below=f"{7:015d}:cnt_7", limit=1) == ["cnt_2"]
