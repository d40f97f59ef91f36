"""The query shapes of guide performance (services/content/adapters/guide_performance_store.py):
an order's credit inserted once by `_id` (a second insert is a duplicate key, the first one
is read back), and the totals of one dimension's funnels over a day range by key, with a
key floor (`$gt` a page's last key), a key prefix (`$gte`/`$lt`), sorted by key and limited."""
from __future__ import annotations

import pytest
from pymongo.errors import DuplicateKeyError

from tests.support import new_merchant_id

from services.content.adapters import guide_performance_store as gs
from services.content.domain.guide_performance import OrderCredit

G1, G2, G3 = (f"stf_{c * 26}" for c in "ABC")


def test_a_credit_is_inserted_once_and_the_first_one_is_read_back(coll):
    merchant = new_merchant_id()
    first = OrderCredit("ord_1", (G1, G2), referral_guide=G1, store="SH-01")
    assert gs.add_credit(coll, merchant, first) == first
    # Another delivery resolved other guides meanwhile: the stored answer wins.
    assert gs.add_credit(coll, merchant, OrderCredit("ord_1", (G3,))) == first
    with pytest.raises(DuplicateKeyError):
        coll.insert_one(gs.credit_doc(merchant, first))
    assert coll.find_one({"_id": gs.credit_id(merchant, "ord_1"), "merchant_id": "mch_other"}) is None
    assert gs.credit_of(coll.find_one({"_id": gs.credit_id(merchant, "ord_1"), "merchant_id": merchant})) == first


def _bucket(merchant: str, dimension: str, ref_id: str, day: str, gmv: int) -> dict:
    return {"_id": f"{merchant}:{dimension}:{ref_id}:{day}", "merchant_id": merchant, "dimension": dimension,
            "ref_id": ref_id, "day": day, "paid_orders": 1, "gmv": gmv, "currency": "CNY", "gen": 0, "marks_n": 0,
            "marks": {}}


def test_totals_by_key_over_a_day_range_page_by_key(coll):
    merchant = new_merchant_id()
    coll.insert_many([_bucket(merchant, "guide", g, day, gmv)
                      for g, gmv in ((G1, 100), (G2, 200), (G3, 300))
                      for day in ("2026-05-31", "2026-06-01", "2026-06-02")]
                     + [_bucket(merchant, "store", "SH-01", "2026-06-01", 999),
                        _bucket(new_merchant_id(), "guide", G1, "2026-06-01", 5)])
    rows, currency = gs.totals_page(coll, merchant, "guide", "2026-06-01", "2026-06-02", "", 2)
    assert currency == "CNY"
    assert [(ref, c.gmv, c.paid_orders) for ref, c in rows] == [(G1, 200, 2), (G2, 400, 2)]
    rows, _ = gs.totals_page(coll, merchant, "guide", "2026-06-01", "2026-06-02", G2, 2)
    assert [(ref, c.gmv) for ref, c in rows] == [(G3, 600)]
    rows, _ = gs.totals_page(coll, merchant, "guide", "2026-06-03", "2026-06-09", "", 2)
    assert rows == []


def test_totals_of_keys_with_a_prefix(coll):
    merchant = new_merchant_id()
    coll.insert_many([_bucket(merchant, "guide_store", ref, "2026-06-01", gmv) for ref, gmv in (
        (f"SH-01_{G1}", 10), (f"SH-01_{G2}", 20), (f"SH-010_{G3}", 30), (f"SH-0_{G3}", 40), (f"BJ_{G1}", 50))])
    rows, _ = gs.totals_page(coll, merchant, "guide_store", "2026-06-01", "2026-06-01", "", 10, ref_prefix="SH-01_")
    assert [(ref, c.gmv) for ref, c in rows] == [(f"SH-01_{G1}", 10), (f"SH-01_{G2}", 20)]
    rows, _ = gs.totals_page(coll, merchant, "guide_store", "2026-06-01", "2026-06-01", f"SH-01_{G1}", 10,
                             ref_prefix="SH-01_")
    assert [ref for ref, _ in rows] == [f"SH-01_{G2}"]


def test_erasure_removes_a_members_marks_and_guards_and_keeps_the_counts(db, coll):
    from services.content.adapters import funnel_store as fs
    from services.content.domain.funnels import Counters

    guards = db[coll.name + "_g"]
    merchant, other = new_merchant_id(), new_merchant_id()
    buckets = fs.Buckets(coll, guards, mark_limit=3)
    member, keep = "mem_01J0000000000000000000000A", "mem_01J0000000000000000000000B"

    def fields(m: str, ref: str) -> dict:
        return {"merchant_id": m, "dimension": "guide", "ref_id": ref, "day": "2026-06-01", "currency": "CNY"}

    key = f"{merchant}:guide:{G1}:2026-06-01"
    # Three causes move the bucket's marks out to guards; two more stay marked.
    for cause in (f"v:{member}", f"c:{member}-e1", "evt_1", f"c:{member}-e2", f"v:{keep}"):
        assert buckets.apply_once(key, fields(merchant, G1), cause, Counters(unique_viewers=1))
    other_key = f"{other}:guide:{G1}:2026-06-01"
    assert buckets.apply_once(other_key, fields(other, G1), f"v:{member}", Counters(unique_viewers=1))

    assert fs.forget_member_marks(coll, guards, merchant, member) == 1  # c:<member>-e2, still marked
    doc = coll.find_one({"_id": key})
    assert sorted(doc["marks"]) == [f"v:{keep}"] and doc["unique_viewers"] == 5 and doc["marks_n"] == 1
    assert sorted(g["_id"] for g in guards.find({"merchant_id": merchant})) == [f"{key}|evt_1"]
    # Another merchant's member of the same id is theirs to erase.
    assert f"v:{member}" in coll.find_one({"_id": other_key})["marks"]
    assert fs.forget_member_marks(coll, guards, merchant, member) == 0  # a rerun removes nothing more
    guards.drop()
