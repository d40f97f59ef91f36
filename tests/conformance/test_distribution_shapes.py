"""The query and update shapes of distribution storage
(services/member/adapters/distribution_store.py): the settings' versioned insert and update,
levels once per idempotency key, one distributor per member with its versioned save (the
ancestors list replaced whole), the lists' keyset pages and the `count` command, the
customer's ties (created empty, then one conditional update per binding change, also
under concurrent writers), the spend's per-order map entry (`$exists` false, then equality)
and the guide's store label."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from pymongo import ASCENDING, DESCENDING

from siyu_kit.aggregate import StaleVersion
from siyu_kit.repository import insert_new, save_change
from tests.support import new_merchant_id

from services.member.adapters.distribution_store import (add_level, bind, bind_distributor_change,
                                                         bind_guide_change, count, distributor_doc, distributor_of,
                                                         downline_query, list_query, page_query, put_settings,
                                                         record_spend, set_store, settings_of, ties_id, ties_of)
from services.member.domain.distribution import Binding, DistributionSettings, Distributor, DistributorLevel
from datetime import datetime, timezone

AT = datetime(2026, 5, 1, 8, 0, tzinfo=timezone.utc)


def mem(n: int) -> str:
    return f"mem_{n:026d}"


def test_settings_are_inserted_at_version_zero_and_changed_on_their_version(coll):
    m = new_merchant_id()
    s = DistributionSettings(enabled=True, levels=1, level2_rate_bp=0, binding_rule="LATEST_WINS")
    assert put_settings(coll, m, s, 0) == 1
    assert put_settings(coll, m, s, 0) is None
    assert put_settings(coll, m, DistributionSettings(enabled=True, binding_days=7), 1) == 2
    assert put_settings(coll, m, s, 1) is None
    doc = coll.find_one({"_id": m, "merchant_id": m})
    assert (settings_of(doc), doc["version"]) == (DistributionSettings(enabled=True, binding_days=7), 2)
    assert coll.find_one({"_id": m, "merchant_id": new_merchant_id()}) is None


def test_levels_once_per_key_oldest_first_and_saved_on_their_version(coll):
    coll.create_index([("merchant_id", ASCENDING), ("key", ASCENDING)], unique=True)
    m = new_merchant_id()
    first, created = add_level(coll, DistributorLevel("dlv_1", m, "银牌", 800, 400), "k1")
    again, created_again = add_level(coll, DistributorLevel("dlv_2", m, "银牌", 800, 400), "k1")
    assert created and not created_again and again.id == "dlv_1"
    add_level(coll, DistributorLevel("dlv_3", m, "金牌", 1200, 300), "k2")
    names = [d["name"] for d in coll.find({"merchant_id": m}).sort("created_ms", ASCENDING)]
    assert names == ["银牌", "金牌"]
    save_change(coll, {"_id": "dlv_1", "merchant_id": m}, {"$set": {"name": "银牌+"}}, version=1)
    with pytest.raises(StaleVersion):
        save_change(coll, {"_id": "dlv_1", "merchant_id": m}, {"$set": {"name": "x"}}, version=1)
    assert coll.find_one({"_id": "dlv_1"})["version"] == 2


def _distributor(m: str, n: int, upline: Distributor | None = None, state: str = "ACTIVE") -> Distributor:
    d = Distributor.applied(f"dst_{n:026d}", m, mem(n), "", AT)
    if state != "PENDING":
        d.activate(upline, AT)
    return d


def test_one_distributor_per_member_saved_on_its_version(coll):
    coll.create_index([("merchant_id", ASCENDING), ("member_id", ASCENDING)], unique=True)
    m = new_merchant_id()
    top = _distributor(m, 1)
    below = _distributor(m, 2, top)
    assert insert_new(coll, distributor_doc(top)) and insert_new(coll, distributor_doc(below))
    assert not insert_new(coll, {**distributor_doc(_distributor(m, 2)), "_id": "dst_other", "dst_id": "dst_other"})
    found = {d["member_id"]: distributor_of(d) for d in coll.find({"merchant_id": m,
                                                                   "member_id": {"$in": [mem(1), mem(2), mem(9)]}})}
    assert set(found) == {mem(1), mem(2)}
    assert (found[mem(2)].ancestors, found[mem(2)].activated_at) == ((mem(1),), AT)
    stored = found[mem(2)]
    stored.disable(AT)
    stored.level_id = "dlv_1"
    save_change(coll, {"_id": stored.id, "merchant_id": m},
                {"$set": {"state": stored.state, "level_id": stored.level_id, "ancestors": ["mem_a", "mem_b"]}},
                version=1)
    with pytest.raises(StaleVersion):
        save_change(coll, {"_id": stored.id, "merchant_id": m}, {"$set": {"state": "ACTIVE"}}, version=1)
    again = distributor_of(coll.find_one({"merchant_id": m, "member_id": mem(2)}))
    assert (again.state, again.level_id, again.ancestors, again.version) == ("DISABLED", "dlv_1",
                                                                             ("mem_a", "mem_b"), 2)


def test_distributor_pages_by_state_and_upline_and_counts(coll):
    coll.create_index([("merchant_id", ASCENDING), ("state", ASCENDING), ("dst_id", ASCENDING)])
    coll.create_index([("merchant_id", ASCENDING), ("upline_id", ASCENDING), ("dst_id", ASCENDING)])
    m, other = new_merchant_id(), new_merchant_id()
    top = _distributor(m, 1)
    docs = [distributor_doc(top)] + [distributor_doc(_distributor(m, n, top)) for n in range(2, 6)] \
        + [distributor_doc(_distributor(m, 6, state="PENDING")), distributor_doc(_distributor(other, 7))]
    coll.insert_many(docs)

    def page(query: dict, limit: int) -> list[str]:
        return [d["member_id"] for d in coll.find(query).sort("dst_id", DESCENDING).limit(limit)]

    assert page(page_query(m, "ACTIVE", ""), 3) == [mem(5), mem(4), mem(3)]
    assert page(page_query(m, "ACTIVE", f"dst_{3:026d}"), 3) == [mem(2), mem(1)]
    assert page(page_query(m, "PENDING", ""), 10) == [mem(6)]
    assert page(page_query(m, "", ""), 10) == [mem(n) for n in range(6, 0, -1)]
    assert page(downline_query(m, mem(1), f"dst_{4:026d}"), 10) == [mem(3), mem(2)]
    assert count(coll, {"merchant_id": m, "upline_id": mem(1)}) == 4
    assert count(coll, {"merchant_id": other, "upline_id": mem(1)}) == 0


def test_a_binding_change_is_one_conditional_update(coll):
    m = new_merchant_id()
    first = Binding(mem(1), 1_000)
    assert bind(coll, bind_distributor_change(m, mem(9), Binding(), first, ""), m, mem(9), True)
    # A second writer that read the empty binding loses.
    assert not bind(coll, bind_distributor_change(m, mem(9), Binding(), Binding(mem(2), 1_001), ""), m, mem(9),
                    True)
    assert bind(coll, bind_distributor_change(m, mem(9), first, Binding(mem(2), 2_000), mem(1)), m, mem(9), False)
    ties = ties_of(coll.find_one({"_id": ties_id(m, mem(9)), "merchant_id": m}))
    assert (ties.binding, ties.upline_id, ties.guide_id) == (Binding(mem(2), 2_000), mem(1), "")
    assert bind(coll, bind_guide_change(m, mem(9), "", "stf_1", 3_000), m, mem(9), True)
    assert not bind(coll, bind_guide_change(m, mem(9), "", "stf_2", 3_001), m, mem(9), True)
    ties = ties_of(coll.find_one({"_id": ties_id(m, mem(9)), "merchant_id": m}))
    assert (ties.binding.distributor_id, ties.guide_id, ties.guide_ms) == (mem(2), "stf_1", 3_000)
    assert ties_of(coll.find_one({"_id": ties_id(m, mem(8)), "merchant_id": m})).binding == Binding()


def test_concurrent_first_bindings_leave_exactly_one_winner(coll):
    m = new_merchant_id()

    def attempt(n: int) -> bool:
        return bind(coll, bind_distributor_change(m, mem(9), Binding(), Binding(mem(n), n), ""), m, mem(9), True)

    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(attempt, range(1, 9)))
    assert won.count(True) == 1
    winner = won.index(True) + 1
    assert ties_of(coll.find_one({"_id": ties_id(m, mem(9))})).binding == Binding(mem(winner), winner)


def test_binding_lists_page_newest_first_and_count_the_unexpired(coll):
    coll.create_index([("merchant_id", ASCENDING), ("distributor_id", ASCENDING), ("dist_key", ASCENDING)])
    m = new_merchant_id()
    for n in range(1, 6):
        bind(coll, bind_distributor_change(m, mem(n), Binding(), Binding(mem(100), n * 1_000), ""), m, mem(n), True)
    bind(coll, bind_distributor_change(m, mem(6), Binding(), Binding(mem(200), 9_000), ""), m, mem(6), True)

    def page(after: str, limit: int) -> list[tuple[str, int, str]]:
        docs = coll.find(list_query(m, "distributor_id", mem(100), "dist_key", after),
                         {"member_id": 1, "bound_ms": 1, "dist_key": 1}).sort("dist_key", DESCENDING).limit(limit)
        return [(d["member_id"], d["bound_ms"], d["dist_key"]) for d in docs]

    first = page("", 2)
    assert [r[0] for r in first] == [mem(5), mem(4)]
    assert [r[0] for r in page(first[-1][2], 10)] == [mem(3), mem(2), mem(1)]
    assert count(coll, {"merchant_id": m, "distributor_id": mem(100), "bound_ms": {"$gte": 3_000}}) == 3
    bind(coll, bind_guide_change(m, mem(2), "", "stf_1", 5_000), m, mem(2), False)
    guides = coll.find(list_query(m, "guide_id", "stf_1", "guide_key", "")).sort("guide_key", DESCENDING)
    assert [d["member_id"] for d in guides] == [mem(2)]


def test_spend_counts_an_order_once_and_only_lowers_it_later(coll):
    m = new_merchant_id()
    assert record_spend(coll, m, mem(1), "ord_1", 6_000) == 6_000
    assert record_spend(coll, m, mem(1), "ord_1", 6_000) == 6_000
    assert record_spend(coll, m, mem(1), "ord_2", 1_000) == 7_000
    assert record_spend(coll, m, mem(1), "ord_1", 2_000) == 3_000
    assert record_spend(coll, m, mem(1), "ord_1", 6_000) == 3_000  # a late paid event raises nothing
    assert record_spend(coll, m, mem(2), "ord_3", 500) == 500
    doc = coll.find_one({"_id": f"{m}:{mem(1)}", "merchant_id": m})
    assert (doc["spend"], doc["orders"]) == (3_000, {"ord_1": 2_000, "ord_2": 1_000})


def test_concurrent_deliveries_of_one_order_count_it_once(coll):
    m = new_merchant_id()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: record_spend(coll, m, mem(1), "ord_1", 700), range(8)))
    assert coll.find_one({"_id": f"{m}:{mem(1)}"})["spend"] == 700


def test_a_guides_store_label_is_set_and_replaced(coll):
    m = new_merchant_id()
    set_store(coll, m, "stf_1", "南京西路店")
    set_store(coll, m, "stf_1", "淮海路店")
    assert coll.find_one({"_id": f"{m}:stf_1", "merchant_id": m})["store"] == "淮海路店"
    assert coll.count_documents({"merchant_id": m}) == 1
