"""Query and update shapes added for coupon template keys, the member's coupon centre and
growth that refunds lower (services/member/adapters/coupon_store.py, repositories.py)."""
from __future__ import annotations

import pytest
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError


def _tpl(n: int, merchant: str = "mch_a", state: str = "ACTIVE", self_claim: int = 1, **extra) -> dict:
    return {"_id": f"cpt_{n:02d}", "merchant_id": merchant, "state": state, "self_claim": self_claim,
            "total": 0, "issued": 0, "version": 1, **extra}


def test_a_templates_creation_key_is_unique_per_merchant_and_absent_on_old_templates(coll):
    coll.create_index([("merchant_id", ASCENDING), ("creation_key", ASCENDING)], unique=True, sparse=True)
    coll.insert_many([_tpl(1), _tpl(2)])  # from before keys: no creation_key
    coll.insert_one(_tpl(3, creation_key="k1", fingerprint="f1"))
    with pytest.raises(DuplicateKeyError):
        coll.insert_one(_tpl(4, creation_key="k1", fingerprint="f2"))
    coll.insert_one(_tpl(5, merchant="mch_b", creation_key="k1"))
    found = coll.find_one({"merchant_id": "mch_a", "creation_key": "k1"}, {"outbox": 0, "claiming": 0})
    assert (found["_id"], found["fingerprint"]) == ("cpt_03", "f1")
    assert coll.find_one({"merchant_id": "mch_a", "creation_key": "k9"}) is None


def test_claimable_templates_active_self_claim_newest_first_with_keyset(coll):
    coll.insert_many([_tpl(1), _tpl(2, state="PAUSED"), _tpl(3, self_claim=0), _tpl(4), _tpl(5),
                      _tpl(6, merchant="mch_b"), _tpl(7, state="DRAFT")])
    query = {"merchant_id": "mch_a", "state": "ACTIVE", "self_claim": 1}
    first = list(coll.find(query, {"outbox": 0}).sort("_id", DESCENDING).limit(2))
    rest = list(coll.find({**query, "_id": {"$lt": first[-1]["_id"]}}, {"outbox": 0}).sort("_id", DESCENDING)
                .limit(2))
    assert [d["_id"] for d in first] == ["cpt_05", "cpt_04"]
    assert [d["_id"] for d in rest] == ["cpt_01"]


def test_a_members_coupons_of_some_templates_by_in(coll):
    rows = [("cpn_1", "mem_1", "cpt_1"), ("cpn_2", "mem_1", "cpt_1"), ("cpn_3", "mem_1", "cpt_2"),
            ("cpn_4", "mem_1", "cpt_3"), ("cpn_5", "mem_2", "cpt_1")]
    coll.insert_many([{"_id": i, "merchant_id": "mch_a", "member_id": m, "template_id": t, "slot": 1}
                      for i, m, t in rows])
    coll.insert_one({"_id": "cpn_6", "merchant_id": "mch_b", "member_id": "mem_1", "template_id": "cpt_1"})
    docs = list(coll.find({"merchant_id": "mch_a", "member_id": "mem_1", "template_id": {"$in": ["cpt_1", "cpt_2"]}},
                          {"template_id": 1}))
    assert sorted(d["template_id"] for d in docs) == ["cpt_1", "cpt_1", "cpt_2"]


def test_growth_is_written_only_over_a_smaller_count_of_entries(coll):
    key = {"_id": "mem_1", "merchant_id": "mch_a"}
    coll.insert_one({**key, "growth": 0})  # registered: no count yet

    def sync(total: int, seen: int) -> None:
        update = {"$set": {"growth": total, "growth_entries": seen}}
        coll.update_one({**key, "growth_entries": {"$exists": False}}, update)
        coll.update_one({**key, "growth_entries": {"$lt": seen}}, update)

    sync(1500, 1)
    sync(900, 2)  # a refund took growth back: the lower sum of more entries wins
    assert (coll.find_one(key)["growth"], coll.find_one(key)["growth_entries"]) == (900, 2)
    sync(1500, 1)  # a stale sync that counted fewer entries changes nothing
    assert coll.find_one(key)["growth"] == 900
    coll.update_one({**key, "growth_entries": {"$lt": 2}}, {"$set": {"growth": 1}})
    assert coll.find_one(key)["growth"] == 900
