"""One test per query/update shape the repositories use. Expectations follow MongoDB's
documented semantics; a failure here means the store diverges and the shape must not be
used until it is fixed or replaced."""
from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta, timezone

import mongoengine as me
import pytest
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from siyu_kit.events import outbox
from siyu_kit.ids import new_id
from tests.conformance.conftest import ALIAS
from tests.support import new_merchant_id


class UniqueCode(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    code = me.StringField(required=True)
    meta = {"collection": "conf_unique_code", "db_alias": ALIAS,
            "indexes": [{"fields": ["merchant_id", "code"], "unique": True}]}


class SparseKey(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    idempotency_key = me.StringField()
    meta = {"collection": "conf_sparse_key", "db_alias": ALIAS,
            "indexes": [{"fields": ["merchant_id", "idempotency_key"], "unique": True, "sparse": True}]}


class Tagged(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    title = me.StringField()
    tags = me.ListField(me.StringField())
    meta = {"collection": "conf_tagged", "db_alias": ALIAS, "indexes": ["merchant_id", "tags"]}


def _ids(cursor) -> list[str]:
    return [d["_id"] for d in cursor]


def _names(found) -> list[str]:
    """Sorted short names of documents whose _id is "<merchant>:<name>"."""
    return sorted((d if isinstance(d, str) else d["_id"]).split(":", 1)[1] for d in found)


# ---- identity and indexes ---------------------------------------------------------


def test_insert_one_then_find_one_by_string_id(coll):
    merchant = new_merchant_id()
    pid = new_id("prd")
    result = coll.insert_one({"_id": pid, "merchant_id": merchant, "title": "茶", "price": 1999})
    assert result.inserted_id == pid
    found = coll.find_one({"_id": pid, "merchant_id": merchant})
    assert found == {"_id": pid, "merchant_id": merchant, "title": "茶", "price": 1999}
    assert coll.find_one({"_id": pid, "merchant_id": new_merchant_id()}) is None
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": pid, "merchant_id": merchant})


def test_unique_compound_index_rejects_a_second_insert(db):
    UniqueCode.ensure_indexes()
    merchant = new_merchant_id()
    UniqueCode(id=new_id("prd"), merchant_id=merchant, code="TEA-1").save(force_insert=True)
    coll = UniqueCode._get_collection()
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": new_id("prd"), "merchant_id": merchant, "code": "TEA-1"})
    with pytest.raises(me.NotUniqueError):
        UniqueCode(id=new_id("prd"), merchant_id=merchant, code="TEA-1").save(force_insert=True)
    # The same code under another merchant, or another code, is fine.
    UniqueCode(id=new_id("prd"), merchant_id=new_merchant_id(), code="TEA-1").save(force_insert=True)
    UniqueCode(id=new_id("prd"), merchant_id=merchant, code="TEA-2").save(force_insert=True)
    assert coll.count_documents({"merchant_id": merchant}) == 2


def test_sparse_unique_index_allows_many_documents_without_the_field(db):
    SparseKey.ensure_indexes()
    coll = SparseKey._get_collection()
    merchant = new_merchant_id()
    for _ in range(3):
        coll.insert_one({"_id": new_id("ord"), "merchant_id": merchant})
    coll.insert_one({"_id": new_id("ord"), "merchant_id": merchant, "idempotency_key": "k1"})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": new_id("ord"), "merchant_id": merchant, "idempotency_key": "k1"})
    coll.insert_one({"_id": new_id("ord"), "merchant_id": new_merchant_id(), "idempotency_key": "k1"})
    assert coll.count_documents({"merchant_id": merchant}) == 4


# ---- counters ---------------------------------------------------------------------


def test_conditional_counter_gte_inc_matches_only_while_enough(coll):
    merchant = new_merchant_id()
    coll.insert_one({"_id": "sku_1", "merchant_id": merchant, "available": 5, "reserved": 0})

    def reserve(n):
        return coll.update_one({"_id": "sku_1", "merchant_id": merchant, "available": {"$gte": n}},
                               {"$inc": {"available": -n, "reserved": n}})

    first = reserve(3)
    assert (first.matched_count, first.modified_count) == (1, 1)
    too_many = reserve(3)
    assert (too_many.matched_count, too_many.modified_count) == (0, 0)
    exact = reserve(2)
    assert (exact.matched_count, exact.modified_count) == (1, 1)
    assert reserve(1).matched_count == 0
    doc = coll.find_one({"_id": "sku_1"})
    assert (doc["available"], doc["reserved"]) == (0, 5)
    # Releasing is the mirror image, guarded by what is reserved.
    release = coll.update_one({"_id": "sku_1", "merchant_id": merchant, "reserved": {"$gte": 4}},
                              {"$inc": {"available": 4, "reserved": -4}})
    assert release.modified_count == 1
    doc = coll.find_one({"_id": "sku_1"})
    assert (doc["available"], doc["reserved"]) == (4, 1)


def test_conditional_counter_concurrent_threads_modify_exactly_the_available_units(coll):
    merchant = new_merchant_id()
    units, buyers = 7, 24
    coll.insert_one({"_id": "sku_hot", "merchant_id": merchant, "available": units, "reserved": 0})
    start = threading.Barrier(buyers)
    won: list[int] = []
    lock = threading.Lock()

    def buy():
        start.wait()
        result = coll.update_one({"_id": "sku_hot", "merchant_id": merchant, "available": {"$gte": 1}},
                                 {"$inc": {"available": -1, "reserved": 1}})
        with lock:
            won.append(result.modified_count)

    threads = [threading.Thread(target=buy) for _ in range(buyers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(won) == buyers
    assert sum(won) == units
    doc = coll.find_one({"_id": "sku_hot"})
    assert (doc["available"], doc["reserved"]) == (0, units)


def test_upsert_inc_creates_then_adds_to_counters(coll):
    merchant = new_merchant_id()
    key = {"_id": f"{merchant}:2024-06-01", "merchant_id": merchant}
    first = coll.update_one(key, {"$inc": {"orders": 1, "amount": 1999}}, upsert=True)
    assert first.upserted_id == key["_id"] and first.matched_count == 0
    second = coll.update_one(key, {"$inc": {"orders": 1, "amount": 500}}, upsert=True)
    assert second.upserted_id is None and second.modified_count == 1
    # Equality fields of the filter are copied into the inserted document.
    assert coll.find_one({"_id": key["_id"]}) == {**key, "orders": 2, "amount": 2499}


def test_upsert_set_on_insert_does_not_overwrite_on_the_second_upsert(coll):
    merchant = new_merchant_id()
    key = {"_id": "mem_1", "merchant_id": merchant}
    coll.update_one(key, {"$setOnInsert": {"level": "SILVER", "points": 0}, "$set": {"nickname": "a"}}, upsert=True)
    second = coll.update_one(key, {"$setOnInsert": {"level": "GOLD", "points": 100}, "$set": {"nickname": "b"}},
                             upsert=True)
    assert second.upserted_id is None and second.matched_count == 1
    assert coll.find_one({"_id": "mem_1"}) == {**key, "level": "SILVER", "points": 0, "nickname": "b"}


def test_upsert_guarded_by_a_seen_event_key_applies_each_event_once(coll):
    merchant = new_merchant_id()
    key = f"{merchant}:mem_1"

    def apply(eid: str, points: int) -> bool:
        try:
            result = coll.update_one({"_id": key, "merchant_id": merchant, f"seen.{eid}": {"$exists": False}},
                                     {"$set": {f"seen.{eid}": 1}, "$inc": {"points": points}}, upsert=True)
        except DuplicateKeyError:
            return False  # the document exists and has seen this event
        return result.upserted_id is not None or result.modified_count == 1

    e1, e2 = new_id("evt"), new_id("evt")
    assert apply(e1, 10) is True
    assert apply(e1, 10) is False
    assert apply(e2, 5) is True
    assert apply(e2, 5) is False
    assert apply(e1, 10) is False
    doc = coll.find_one({"_id": key})
    assert doc["points"] == 15
    assert doc["seen"] == {e1: 1, e2: 1}


# ---- map keys, outbox, flags ------------------------------------------------------


def test_map_key_guard_set_if_absent_then_unset_if_equal_are_idempotent(coll):
    merchant = new_merchant_id()
    coll.insert_one({"_id": "sku_1", "merchant_id": merchant, "holds": {}})
    hold = "res_01"

    def put(q):
        return coll.update_one({"_id": "sku_1", "merchant_id": merchant, f"holds.{hold}": {"$exists": False}},
                               {"$set": {f"holds.{hold}": q}}).modified_count

    def take(q):
        return coll.update_one({"_id": "sku_1", "merchant_id": merchant, f"holds.{hold}": q},
                               {"$unset": {f"holds.{hold}": ""}}).modified_count

    assert put(3) == 1
    assert put(3) == 0
    assert put(9) == 0
    assert coll.find_one({"_id": "sku_1"})["holds"] == {hold: 3}
    assert take(2) == 0  # another quantity is not this hold
    assert take(3) == 1
    assert take(3) == 0
    assert coll.find_one({"_id": "sku_1"})["holds"] == {}
    assert put(4) == 1  # absent again: may be set again


def test_dotted_set_and_unset_into_the_outbox_map(coll):
    merchant = new_merchant_id()
    e1, e2, e3 = (outbox.Event(new_id("evt"), "siyu.order.order.placed", bytes([0, 1, 255, i])) for i in range(3))
    coll.insert_one({"_id": "ord_1", "merchant_id": merchant, "version": 1, **outbox.for_insert(e1)})
    update = outbox.add_to_update({"$set": {"state": "PAID"}, "$inc": {"version": 1}}, e2, e3)
    assert coll.update_one({"_id": "ord_1", "merchant_id": merchant, "version": 1}, update).modified_count == 1
    doc = coll.find_one({"_id": "ord_1"})
    assert set(doc["outbox"]) == {e1.event_id, e2.event_id, e3.event_id}
    assert bytes(doc["outbox"][e3.event_id]["data"]) == e3.data
    assert doc["outbox"][e2.event_id]["subject"] == e2.subject
    assert (doc["version"], doc["state"], doc["outbox_pending"], doc["outbox_seq"]) == (2, "PAID", 1, 2)
    coll.update_one({"_id": "ord_1"}, {"$unset": {f"outbox.{e1.event_id}": ""}})
    assert set(coll.find_one({"_id": "ord_1"})["outbox"]) == {e2.event_id, e3.event_id}


def test_unset_several_dotted_keys_at_once(coll):
    merchant = new_merchant_id()
    coll.insert_one({"_id": "ord_1", "merchant_id": merchant, "outbox": {"a": {"s": 1}, "b": {"s": 2}, "c": {"s": 3}}})
    result = coll.update_one({"_id": "ord_1", "merchant_id": merchant},
                             {"$unset": {"outbox.a": "", "outbox.c": "", "outbox.missing": ""}})
    assert result.modified_count == 1
    assert coll.find_one({"_id": "ord_1"})["outbox"] == {"b": {"s": 2}}


def test_int_flag_query_outbox_pending_equals_1(coll):
    merchant = new_merchant_id()
    coll.insert_many([{"_id": f"o{i}", "merchant_id": merchant, "outbox_pending": i % 2} for i in range(6)])
    assert sorted(_ids(coll.find({"outbox_pending": 1}))) == ["o1", "o3", "o5"]
    coll.update_one({"_id": "o3"}, {"$set": {"outbox_pending": 0}})
    coll.update_one({"_id": "o0"}, {"$set": {"outbox_pending": 1}})
    assert sorted(_ids(coll.find({"outbox_pending": 1}))) == ["o0", "o1", "o5"]
    flag = coll.find_one({"_id": "o0"})["outbox_pending"]
    assert flag == 1 and type(flag) is int


def test_find_int_flag_with_projection_and_limit(coll):
    """The relay's read: pending documents, only the outbox fields, a batch at a time."""
    merchant = new_merchant_id()
    coll.insert_many([{"_id": f"o{i}", "merchant_id": merchant, "title": "x", "outbox_pending": 1,
                       "outbox_seq": i, "outbox": {f"e{i}": {"subject": "s", "data": b"d"}}} for i in range(5)])
    docs = list(coll.find({"outbox_pending": 1}, {"outbox": 1, "outbox_seq": 1}).limit(3))
    assert len(docs) == 3
    for doc in docs:
        assert set(doc) == {"_id", "outbox", "outbox_seq"}
    # Clear pending only if no write added events since the read.
    assert coll.update_one({"_id": "o2", "outbox_seq": 2}, {"$set": {"outbox_pending": 0}}).modified_count == 1
    assert coll.update_one({"_id": "o3", "outbox_seq": 2}, {"$set": {"outbox_pending": 0}}).matched_count == 0
    assert coll.count_documents({"outbox_pending": 1}) == 4


# ---- compare-and-set and state transitions ---------------------------------------


def test_compare_and_set_on_version_stale_writer_matches_nothing(coll):
    merchant = new_merchant_id()
    coll.insert_one({"_id": "ord_1", "merchant_id": merchant, "version": 1, "note": ""})
    seen_a = coll.find_one({"_id": "ord_1"})["version"]
    seen_b = coll.find_one({"_id": "ord_1"})["version"]
    a = coll.update_one({"_id": "ord_1", "merchant_id": merchant, "version": seen_a},
                        {"$set": {"note": "a"}, "$inc": {"version": 1}})
    b = coll.update_one({"_id": "ord_1", "merchant_id": merchant, "version": seen_b},
                        {"$set": {"note": "b"}, "$inc": {"version": 1}})
    assert (a.matched_count, b.matched_count) == (1, 0)
    assert coll.find_one({"_id": "ord_1"}) == {"_id": "ord_1", "merchant_id": merchant, "version": 2, "note": "a"}


def test_find_one_and_update_returns_the_document_after_a_state_conditioned_change(coll):
    merchant = new_merchant_id()
    coll.insert_one({"_id": "ord_1", "merchant_id": merchant, "state": "PENDING_PAYMENT", "version": 1})
    after = coll.find_one_and_update(
        {"_id": "ord_1", "merchant_id": merchant, "state": "PENDING_PAYMENT"},
        {"$set": {"state": "PAID"}, "$inc": {"version": 1}}, return_document=ReturnDocument.AFTER)
    assert after == {"_id": "ord_1", "merchant_id": merchant, "state": "PAID", "version": 2}
    again = coll.find_one_and_update(
        {"_id": "ord_1", "merchant_id": merchant, "state": "PENDING_PAYMENT"},
        {"$set": {"state": "PAID"}, "$inc": {"version": 1}}, return_document=ReturnDocument.AFTER)
    assert again is None
    assert coll.find_one({"_id": "ord_1"})["version"] == 2


# ---- reads ------------------------------------------------------------------------


def test_find_date_range_lte_gt_with_state_equality(coll):
    merchant = new_merchant_id()
    now = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
    rows = [("r1", "HELD", -120), ("r2", "HELD", -1), ("r3", "HELD", 0), ("r4", "HELD", 60),
            ("r5", "COMMITTED", -60), ("r6", "HELD", -3600)]
    coll.insert_many([{"_id": rid, "merchant_id": merchant, "state": state, "expires_at": now + timedelta(seconds=s)}
                      for rid, state, s in rows])
    coll.insert_one({"_id": "other", "merchant_id": new_merchant_id(), "state": "HELD", "expires_at": now})
    due = coll.find({"merchant_id": merchant, "state": "HELD", "expires_at": {"$lte": now}})
    assert sorted(_ids(due)) == ["r1", "r2", "r3", "r6"]
    window = coll.find({"merchant_id": merchant, "state": "HELD",
                        "expires_at": {"$gt": now - timedelta(minutes=5), "$lte": now}})
    assert sorted(_ids(window)) == ["r1", "r2", "r3"]
    later = coll.find({"merchant_id": merchant, "expires_at": {"$gt": now}})
    assert _ids(later) == ["r4"]
    back = coll.find_one({"_id": "r4"})["expires_at"]
    assert back == now + timedelta(seconds=60) and back.tzinfo is not None


def test_sort_by_id_descending_with_limit_and_lt_cursor_pagination(coll):
    merchant = new_merchant_id()
    made = [new_id("ord") for _ in range(11)]
    coll.insert_many([{"_id": i, "merchant_id": merchant} for i in made])
    coll.insert_one({"_id": new_id("ord"), "merchant_id": new_merchant_id()})
    pages, cursor = [], None
    while True:
        query = {"merchant_id": merchant}
        if cursor:
            query["_id"] = {"$lt": cursor}
        page = _ids(coll.find(query).sort("_id", DESCENDING).limit(4))
        if not page:
            break
        pages.append(page)
        cursor = page[-1]
    assert [len(p) for p in pages] == [4, 4, 3]
    assert [i for p in pages for i in p] == sorted(made, reverse=True)


def test_array_membership_in_and_all_on_an_indexed_array(db):
    Tagged.ensure_indexes()
    coll = Tagged._get_collection()
    merchant, other = new_merchant_id(), new_merchant_id()
    coll.insert_many([
        {"_id": f"{merchant}:p1", "merchant_id": merchant, "tags": ["tea", "gift"]},
        {"_id": f"{merchant}:p2", "merchant_id": merchant, "tags": ["tea"]},
        {"_id": f"{merchant}:p3", "merchant_id": merchant, "tags": ["gift", "new"]},
        {"_id": f"{merchant}:p4", "merchant_id": merchant, "tags": []},
        {"_id": f"{other}:p5", "merchant_id": other, "tags": ["tea", "gift"]},
    ])
    assert _names(coll.find({"merchant_id": merchant, "tags": {"$in": ["tea"]}})) == ["p1", "p2"]
    assert _names(coll.find({"merchant_id": merchant, "tags": {"$in": ["new", "tea"]}})) == ["p1", "p2", "p3"]
    assert _names(coll.find({"merchant_id": merchant, "tags": {"$all": ["gift", "tea"]}})) == ["p1"]
    assert _names(d.id for d in Tagged.objects(merchant_id=merchant, tags__in=["gift"])) == ["p1", "p3"]
    assert _names(d.id for d in Tagged.objects(merchant_id=merchant, tags__all=["gift", "new"])) == ["p3"]


def test_raw_regex_with_case_insensitive_option(db):
    Tagged.ensure_indexes()
    coll = Tagged._get_collection()
    merchant, other = new_merchant_id(), new_merchant_id()
    coll.insert_many([
        {"_id": f"{merchant}:p1", "merchant_id": merchant, "title": "Oolong Tea 乌龙茶"},
        {"_id": f"{merchant}:p2", "merchant_id": merchant, "title": "green TEA"},
        {"_id": f"{merchant}:p3", "merchant_id": merchant, "title": "Coffee 1.5kg"},
        {"_id": f"{merchant}:p4", "merchant_id": merchant, "title": "Coffee 105kg"},
        {"_id": f"{other}:p5", "merchant_id": other, "title": "tea"},
    ])
    by_tea = Tagged.objects(merchant_id=merchant, __raw__={"title": {"$regex": "tea", "$options": "i"}})
    assert _names(d.id for d in by_tea) == ["p1", "p2"]
    assert _names(coll.find({"merchant_id": merchant, "title": {"$regex": "乌龙", "$options": "i"}})) == ["p1"]
    # A keyword is escaped before it becomes a pattern: "1.5" must not match "105".
    literal = {"$regex": re.escape("1.5"), "$options": "i"}
    assert _names(coll.find({"merchant_id": merchant, "title": literal})) == ["p3"]
    anchored = {"$regex": "^coffee", "$options": "i"}
    assert _names(coll.find({"merchant_id": merchant, "title": anchored})) == ["p3", "p4"]


def test_count_documents_with_a_filter(coll):
    merchant = new_merchant_id()
    coll.insert_many([{"_id": f"o{i}", "merchant_id": merchant, "state": "PAID" if i < 3 else "CLOSED",
                       "amount": i * 100} for i in range(7)])
    coll.insert_one({"_id": "x", "merchant_id": new_merchant_id(), "state": "PAID", "amount": 0})
    assert coll.count_documents({"merchant_id": merchant}) == 7
    assert coll.count_documents({"merchant_id": merchant, "state": "PAID"}) == 3
    assert coll.count_documents({"merchant_id": merchant, "state": "PAID", "amount": {"$gte": 100}}) == 2
    assert coll.count_documents({"merchant_id": merchant, "state": "REFUNDED"}) == 0


def test_ensure_indexes_is_safe_to_repeat(db):
    for _ in range(2):
        UniqueCode.ensure_indexes()
    info = UniqueCode._get_collection().index_information()
    unique = [spec for spec in info.values() if spec.get("key") == [("merchant_id", ASCENDING), ("code", ASCENDING)]]
    assert len(unique) == 1 and unique[0].get("unique") is True


def test_time_set_later_as_epoch_ms_is_found_by_range(coll):
    """Times written by $set are stored as integer epoch milliseconds (siyu_kit.protos.epoch_ms)
    so that range queries on them compare numbers."""
    coll.insert_many([{"_id": "r1", "state": "COMMITTED", "settled": 0, "updated_ms": 0},
                      {"_id": "r2", "state": "COMMITTED", "settled": 0, "updated_ms": 0}])
    coll.update_one({"_id": "r1"}, {"$set": {"updated_ms": 1_700_000_000_000}})
    coll.update_one({"_id": "r2"}, {"$set": {"updated_ms": 1_700_000_060_000}})
    found = coll.find({"state": {"$in": ["COMMITTED", "RELEASED"]}, "settled": 0,
                       "updated_ms": {"$lte": 1_700_000_030_000}})
    assert _ids(found) == ["r1"]


def test_whole_array_of_subdocuments_replaced_by_set_under_a_version_check(coll):
    """Products keep their SKUs as an array of sub-documents, replaced whole (never $push)."""
    coll.insert_one({"_id": "p1", "merchant_id": "m", "version": 1,
                     "skus": [{"sku_id": "s1", "code": "red", "attributes": {"颜色": "红"}, "price": 100}]})
    skus = [{"sku_id": "s1", "code": "red", "attributes": {"颜色": "红"}, "price": 120},
            {"sku_id": "s2", "code": "blue", "attributes": {"颜色": "蓝"}, "price": 130}]
    done = coll.update_one({"_id": "p1", "merchant_id": "m", "version": 1},
                           {"$set": {"skus": skus, "tags": ["a", "b"]}, "$inc": {"version": 1}})
    stale = coll.update_one({"_id": "p1", "merchant_id": "m", "version": 1},
                            {"$set": {"skus": []}, "$inc": {"version": 1}})
    assert (done.modified_count, stale.modified_count) == (1, 0)
    doc = coll.find_one({"_id": "p1"})
    assert doc["skus"] == skus and doc["tags"] == ["a", "b"] and doc["version"] == 2


def test_find_by_id_in_a_list_within_a_merchant(coll):
    coll.insert_many([{"_id": f"s{i}", "merchant_id": "m" if i < 3 else "other"} for i in range(5)])
    found = coll.find({"_id": {"$in": ["s0", "s2", "s3", "missing"]}, "merchant_id": "m"})
    assert sorted(_ids(found)) == ["s0", "s2"]


def test_exclusion_projection_leaves_out_only_the_named_fields(coll):
    coll.insert_one({"_id": "o1", "state": "PAID", "outbox": {"evt_1": {"subject": "x"}}, "search_terms": ["ab"]})
    doc = coll.find_one({"_id": "o1"}, {"outbox": 0, "search_terms": 0})
    assert doc == {"_id": "o1", "state": "PAID"}


def test_exists_true_on_a_map_key(coll):
    coll.insert_many([{"_id": "s1", "merchant_id": "m", "holds": {"rsv_1": 2}},
                      {"_id": "s2", "merchant_id": "m", "holds": {}}])
    assert _ids(coll.find({"merchant_id": "m", "holds.rsv_1": {"$exists": True}}, {"_id": 1})) == ["s1"]


def test_scalar_in_with_date_range_sorted_ascending_with_limit(coll):
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    coll.insert_many([{"_id": f"o{i}", "state": "PENDING_PAYMENT" if i % 2 == 0 else "PAID",
                       "expires_at": start + timedelta(minutes=10 - i)} for i in range(6)])
    due = coll.find({"state": {"$in": ["PENDING_PAYMENT"]}, "expires_at": {"$lte": start + timedelta(minutes=9)}})
    assert _ids(due.sort("expires_at", ASCENDING).limit(2)) == ["o4", "o2"]


def test_set_a_nested_document_and_inc_beside_it(coll):
    coll.insert_one({"_id": "pay1", "state": "PENDING", "version": 1, "failures": 0})
    at = datetime(2026, 1, 1, 8, tzinfo=timezone.utc)
    coll.update_one({"_id": "pay1", "state": "PENDING", "version": 1},
                    {"$set": {"last_failure": {"provider_txn_id": "t1", "at": at}},
                     "$inc": {"version": 1, "failures": 1}})
    doc = coll.find_one({"_id": "pay1"})
    assert doc["last_failure"] == {"provider_txn_id": "t1", "at": at}
    assert (doc["version"], doc["failures"]) == (2, 1)


def test_mongoengine_insert_of_a_duplicate_unique_key_raises_not_unique(db):
    merchant = new_merchant_id()
    UniqueCode(id=new_id("per"), merchant_id=merchant, code="xiaomei").save(force_insert=True)
    with pytest.raises(me.NotUniqueError):
        UniqueCode(id=new_id("per"), merchant_id=merchant, code="xiaomei").save(force_insert=True)
