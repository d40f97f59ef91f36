"""The storage shapes of settlement, the payment split, suppliers and the finance desk
(services/order/adapters/split_store.py and supplier_store.py): the settle job's scan and
its conditional writes, split records with whole arrays replaced on the version, postings
by business day, the ledger read by a day's bounds, supplier keyset pages and SKU links."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from siyu_kit.protos import aware

from services.order.adapters.split_store import (LEDGER_DAY_INDEX, SETTLE_SCAN_INDEX, figures_doc, figures_of,
                                                 split_doc, split_of)
from services.order.domain.finance import day_bounds
from services.order.domain.split import SettledLine, SettledOrder, SplitRecord, SplitSettings, SupplyTerms

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def test_the_settle_scan_finds_open_orders_due_oldest_first_and_not_settled_or_postponed_ones(coll):
    coll.create_index(SETTLE_SCAN_INDEX)
    coll.insert_many([{"_id": f"ord_{n}", "merchant_id": "mch_a", "state": "SHIPPED", "version": 1,
                       "outbox": [{"id": "evt_1"}]} for n in range(4)])
    # Completion writes completed_at (a datetime by $set) and the scan fields.
    for n in range(4):
        at = T0 - timedelta(minutes=n)
        coll.update_one({"_id": f"ord_{n}", "merchant_id": "mch_a", "version": 1},
                        {"$set": {"state": "COMPLETED", "completed_at": at, "settle_open": 1, "settle_ms": ms(at)},
                         "$inc": {"version": 1}})
    coll.insert_one({"_id": "ord_never", "merchant_id": "mch_a", "state": "PAID"})  # no scan fields at all

    def scan(now: datetime, limit: int = 10) -> list[tuple[str, datetime]]:
        cursor = coll.find({"settle_open": 1, "settle_ms": {"$lte": ms(now)}},
                           {"outbox": 0}).sort("settle_ms", ASCENDING).limit(limit)
        return [(d["_id"], aware(d["completed_at"])) for d in cursor]

    assert scan(T0) == [(f"ord_{n}", T0 - timedelta(minutes=n)) for n in (3, 2, 1, 0)]
    assert "outbox" not in coll.find_one({"settle_open": 1}, {"outbox": 0})
    assert [i for i, _ in scan(T0, 2)] == ["ord_3", "ord_2"]
    assert [i for i, _ in scan(T0 - timedelta(minutes=2))] == ["ord_3", "ord_2"]
    # Postponed while the window is open (no version: only the scan time moves), while the
    # order is as due as the scan saw it.
    assert coll.update_one({"_id": "ord_3", "merchant_id": "mch_a", "settle_open": 1, "settle_ms": {"$lte": ms(T0)}},
                           {"$set": {"settle_ms": ms(T0 + timedelta(days=7))}}).modified_count == 1
    # Settled: one conditional write on the version closes it for the scan.
    done = coll.update_one({"_id": "ord_2", "merchant_id": "mch_a", "version": 2},
                           {"$set": {"settled_at": T0, "settled_ms": ms(T0), "settle_open": 0}, "$inc": {"version": 1}})
    assert done.modified_count == 1
    again = coll.update_one({"_id": "ord_2", "merchant_id": "mch_a", "version": 2},
                            {"$set": {"settled_at": T0, "settle_open": 0}, "$inc": {"version": 1}})
    assert again.modified_count == 0
    assert [i for i, _ in scan(T0)] == ["ord_1", "ord_0"]
    assert [i for i, _ in scan(T0 + timedelta(days=7))] == ["ord_1", "ord_0", "ord_3"]
    # A postpone of a settled order changes nothing.
    assert coll.update_one({"_id": "ord_2", "merchant_id": "mch_a", "settle_open": 1},
                           {"$set": {"settle_ms": 1}}).modified_count == 0
    # A shortened window: every open order of the merchant postponed past now is due now
    # (update_many on a range); settled orders and other merchants' stay as they are.
    coll.insert_one({"_id": "ord_other", "merchant_id": "mch_b", "settle_open": 1,
                     "settle_ms": ms(T0 + timedelta(days=7))})
    moved = coll.update_many({"merchant_id": "mch_a", "settle_open": 1, "settle_ms": {"$gt": ms(T0)}},
                             {"$set": {"settle_ms": ms(T0) + 1}})
    assert moved.modified_count == 1
    assert sorted(i for i, _ in scan(T0 + timedelta(milliseconds=1))) == ["ord_0", "ord_1", "ord_3"]
    # A scan made before the recheck cannot postpone the order again.
    assert coll.update_one({"_id": "ord_3", "merchant_id": "mch_a", "settle_open": 1, "settle_ms": {"$lte": ms(T0)}},
                           {"$set": {"settle_ms": ms(T0 + timedelta(days=7))}}).modified_count == 0
    assert coll.find_one({"_id": "ord_other"})["settle_ms"] == ms(T0 + timedelta(days=7))


def _record() -> SplitRecord:
    order = SettledOrder("ord_1", "mch_a", "pay_1", balance_paid=2000, provider_paid=8000,
                         lines=(SettledLine("oln_1", "sku_1", 2),))
    return SplitRecord.write(order, {"sku_1": SupplyTerms("sup_1", 1500)}, SplitSettings(platform_fee_bp=100),
                             {"sup_1": "1900001"}, 10000, T0)


def test_a_split_record_is_one_per_order_its_arrays_replaced_on_the_version_and_found_while_work_is_left(coll):
    coll.create_index([("merchant_id", ASCENDING), ("order_id", ASCENDING)], unique=True)
    coll.create_index([("work", ASCENDING)])
    record = _record()
    coll.insert_one(split_doc(record))
    twin = split_doc(record)
    twin["_id"] = "spl_other"
    with pytest.raises(DuplicateKeyError):
        coll.insert_one(twin)
    stored = split_of(coll.find_one({"merchant_id": "mch_a", "order_id": "ord_1"}))
    assert stored.initial == record.initial and stored.shares == record.shares and stored.lines == record.lines
    assert stored.seen == record.seen and stored.settings == record.settings and stored.settled_at == T0
    assert [d["_id"] for d in coll.find({"work": 1})] == [record.id]

    later = SettledOrder("ord_1", "mch_a", "pay_1", balance_paid=2000, provider_paid=8000, provider_refunded=5000,
                         lines=(SettledLine("oln_1", "sku_1", 2, 1),))
    stored.reverse("rfd_1", later, T0 + timedelta(days=1))
    stored.share_moved("FINISHED", T0)
    changed = split_doc(stored)
    update = {k: changed[k] for k in ("seen", "current", "share_state", "shares", "reversals", "returns", "work")}
    done = coll.update_one({"_id": record.id, "merchant_id": "mch_a", "version": 1},
                           {"$set": update, "$inc": {"version": 1}})
    assert done.modified_count == 1
    back = split_of(coll.find_one({"_id": record.id}))
    assert back.version == 2 and back.reversals == stored.reversals and back.returns == stored.returns
    assert back.current == stored.current and back.seen == stored.seen
    assert [d["_id"] for d in coll.find({"work": 1})] == [record.id]  # a return is still open
    assert coll.update_one({"_id": record.id, "merchant_id": "mch_a", "version": 1},
                           {"$set": {"work": 0}, "$inc": {"version": 1}}).modified_count == 0


def test_postings_are_found_by_merchant_and_a_range_of_business_days(coll):
    coll.create_index([("merchant_id", ASCENDING), ("day", ASCENDING)])
    figures = figures_doc(_record().initial)
    for pid, mid, day in [("p1", "mch_a", "2026-02-28"), ("p2", "mch_a", "2026-03-01"), ("p3", "mch_a", "2026-03-02"),
                          ("p4", "mch_b", "2026-03-01"), ("p5", "mch_a", "2026-03-10")]:
        coll.insert_one({"_id": pid, "merchant_id": mid, "order_id": "ord_1", "kind": "SPLIT", "day": day,
                         "figures": figures, "shared": {"sup_1": 10}})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "p1", "merchant_id": "mch_a", "day": "2026-02-28"})
    found = coll.find({"merchant_id": "mch_a", "day": {"$gte": "2026-03-01", "$lte": "2026-03-02"}})
    docs = sorted(found, key=lambda d: d["_id"])
    assert [d["_id"] for d in docs] == ["p2", "p3"]
    assert figures_of(docs[0]["figures"]) == _record().initial and docs[0]["shared"] == {"sup_1": 10}


def test_split_settings_are_upserted_by_merchant(coll):
    coll.update_one({"_id": "mch_a"}, {"$set": {"platform_fee_bp": 100, "platform_account": ""}}, upsert=True)
    coll.update_one({"_id": "mch_a"}, {"$set": {"platform_fee_bp": 200, "platform_account": "19"}}, upsert=True)
    assert coll.find_one({"_id": "mch_a"}) == {"_id": "mch_a", "platform_fee_bp": 200, "platform_account": "19"}
    assert coll.find_one({"_id": "mch_b"}) is None


def test_the_ledger_of_a_business_day_is_read_by_its_utc_bounds(coll):
    coll.create_index(LEDGER_DAY_INDEX)
    start, end = day_bounds(date(2026, 3, 2))
    assert (start, end) == (datetime(2026, 3, 1, 16, tzinfo=timezone.utc), datetime(2026, 3, 2, 16, tzinfo=timezone.utc))
    entries = [("e0", "mch_a", start - timedelta(milliseconds=1)), ("e1", "mch_a", start),
               ("e2", "mch_a", end - timedelta(milliseconds=1)), ("e3", "mch_a", end), ("e4", "mch_b", start)]
    coll.insert_many([{"_id": i, "merchant_id": m, "kind": "ORDER_PAYMENT", "amount": 1, "at": at}
                      for i, m, at in entries])
    found = coll.find({"merchant_id": "mch_a", "at": {"$gte": start, "$lt": end}})
    assert sorted(d["_id"] for d in found) == ["e1", "e2"]


def test_suppliers_page_by_id_and_are_read_among_ids_of_their_merchant(coll):
    coll.create_index([("merchant_id", ASCENDING), ("idempotency_key", ASCENDING)], unique=True)
    ids = [f"sup_0{n}" for n in range(5)]
    coll.insert_many([{"_id": i, "merchant_id": "mch_a", "idempotency_key": i} for i in ids]
                     + [{"_id": "sup_00x", "merchant_id": "mch_b", "idempotency_key": "k"}])
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "sup_99", "merchant_id": "mch_a", "idempotency_key": "sup_01"})
    first = [d["_id"] for d in coll.find({"merchant_id": "mch_a"}).sort("_id", ASCENDING).limit(2)]
    rest = [d["_id"] for d in coll.find({"merchant_id": "mch_a", "_id": {"$gt": first[-1]}}).sort("_id", ASCENDING)]
    assert first + rest == ids
    among = coll.find({"merchant_id": "mch_a", "_id": {"$in": ["sup_01", "sup_00x", "sup_04"]}})
    assert sorted(d["_id"] for d in among) == ["sup_01", "sup_04"]
    coll.update_one({"_id": "sup_02"}, {"$set": {"version": 1}})
    assert coll.update_one({"_id": "sup_02", "merchant_id": "mch_a", "version": 1},
                           {"$set": {"state": "DISABLED"}, "$inc": {"version": 1}}).modified_count == 1


def test_sku_links_are_upserted_by_sku_paged_by_sku_and_removed(coll):
    coll.create_index([("merchant_id", ASCENDING), ("supplier_id", ASCENDING), ("sku_id", ASCENDING)])

    def put(sku: str, supplier: str, price: int, merchant: str = "mch_a") -> None:
        coll.update_one({"_id": f"{merchant}:{sku}", "merchant_id": merchant},
                        {"$set": {"sku_id": sku, "supplier_id": supplier, "supply_price": price, "updated_ms": 1}},
                        upsert=True)

    for n in range(4):
        put(f"sku_{n}", "sup_a" if n % 2 == 0 else "sup_b", 100 * n)
    put("sku_0", "sup_b", 999)  # relinked
    put("sku_0", "sup_a", 5, merchant="mch_b")
    assert coll.count_documents({"merchant_id": "mch_a"}) == 4
    doc = coll.find_one({"_id": "mch_a:sku_0"})
    assert (doc["merchant_id"], doc["supplier_id"], doc["supply_price"]) == ("mch_a", "sup_b", 999)
    page = coll.find({"merchant_id": "mch_a", "supplier_id": "sup_b", "sku_id": {"$gt": "sku_0"}}).sort(
        "sku_id", ASCENDING).limit(5)
    assert [d["sku_id"] for d in page] == ["sku_1", "sku_3"]
    terms = coll.find({"merchant_id": "mch_a", "sku_id": {"$in": ["sku_0", "sku_2", "sku_9"]}})
    assert sorted((d["sku_id"], d["supply_price"]) for d in terms) == [("sku_0", 999), ("sku_2", 200)]
    assert coll.delete_one({"_id": "mch_a:sku_0", "merchant_id": "mch_a"}).deleted_count == 1
    assert coll.delete_one({"_id": "mch_a:sku_0", "merchant_id": "mch_a"}).deleted_count == 0
    assert coll.find_one({"_id": "mch_b:sku_0"})["supply_price"] == 5
