"""The query shapes of the catalog's staff lists: SKUs (stock documents by id, with a
product and a low-stock bound, either direction, an exclusion projection), categories by
id with a parent (or the roots, parent ""), and flash sales in every state by their sort
key with bounds on the start, a range on the end and a cursor replacing one bound."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pymongo import ASCENDING, DESCENDING

from siyu_kit.ids import new_id
from tests.support import new_merchant_id


def test_stock_by_id_both_ways_with_product_low_stock_and_an_exclusion_projection(coll):
    coll.create_index([("merchant_id", ASCENDING), ("available", ASCENDING)])
    coll.create_index([("merchant_id", ASCENDING), ("product_id", ASCENDING)])
    merchant = new_merchant_id()
    skus = [new_id("sku") for _ in range(5)]
    levels = [(skus[0], "prd_a", 0), (skus[1], "prd_a", 3), (skus[2], "prd_b", 10), (skus[3], "prd_a", 2),
              (skus[4], "prd_b", 1)]
    coll.insert_many([{"_id": s, "merchant_id": merchant, "product_id": p, "available": n, "on_hand": n,
                       "reserved": 0, "pending": {"m:1": {"kind": "INITIAL"}}, "adjustments": {}, "returns": {}}
                      for s, p, n in levels])
    coll.insert_one({"_id": new_id("sku"), "merchant_id": new_merchant_id(), "product_id": "prd_a", "available": 0})
    hide = {"pending": 0, "adjustments": 0, "returns": 0}

    def ids(query, direction, limit=10):
        found = list(coll.find({"merchant_id": merchant, **query}, hide).sort("_id", direction).limit(limit))
        assert all("pending" not in d and "available" in d for d in found)
        return [d["_id"] for d in found]

    assert ids({}, DESCENDING) == skus[::-1]
    assert ids({"_id": {"$lt": skus[3]}}, DESCENDING, 2) == [skus[2], skus[1]]
    assert ids({"_id": {"$gt": skus[1]}}, ASCENDING, 2) == [skus[2], skus[3]]
    assert ids({"product_id": "prd_a"}, DESCENDING) == [skus[3], skus[1], skus[0]]
    assert ids({"available": {"$lte": 2}}, ASCENDING) == [skus[0], skus[3], skus[4]]
    assert ids({"product_id": "prd_a", "available": {"$lte": 2}, "_id": {"$lt": skus[3]}}, DESCENDING) == [skus[0]]


def test_categories_by_id_after_a_gt_cursor_with_a_parent_or_the_roots(coll):
    coll.create_index([("merchant_id", ASCENDING), ("parent_id", ASCENDING), ("name", ASCENDING)], unique=True)
    merchant = new_merchant_id()
    root_a, child, root_b, grandchild = (new_id("cat") for _ in range(4))
    coll.insert_many([
        {"_id": root_a, "merchant_id": merchant, "parent_id": "", "name": "A", "ancestor_ids": []},
        {"_id": child, "merchant_id": merchant, "parent_id": root_a, "name": "A1", "ancestor_ids": [root_a]},
        {"_id": root_b, "merchant_id": merchant, "parent_id": "", "name": "B", "ancestor_ids": []},
        {"_id": grandchild, "merchant_id": merchant, "parent_id": child, "name": "A11",
         "ancestor_ids": [root_a, child]},
        {"_id": new_id("cat"), "merchant_id": new_merchant_id(), "parent_id": "", "name": "A", "ancestor_ids": []},
    ])

    def ids(**query):
        return [d["_id"] for d in coll.find({"merchant_id": merchant, **query}).sort("_id", ASCENDING).limit(10)]

    assert ids() == [root_a, child, root_b, grandchild]
    assert ids(_id={"$gt": child}) == [root_b, grandchild]
    assert ids(parent_id="") == [root_a, root_b]
    assert ids(parent_id="", _id={"$gt": root_a}) == [root_b]
    assert ids(parent_id=root_a) == [child]


def test_flash_sales_by_sort_key_bounds_and_cursor_with_product_and_an_end_range(coll):
    coll.create_index([("merchant_id", ASCENDING), ("product_id", ASCENDING), ("sort_key", ASCENDING)])
    merchant = new_merchant_id()
    t0 = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
    ms0 = int(t0.timestamp() * 1000)

    def sale(name: str, product: str, start_h: int, end_h: int, **extra) -> dict:
        sale_id = new_id("fls")
        starts = t0 + timedelta(hours=start_h)
        return {"_id": sale_id, "name": name, "merchant_id": merchant, "product_id": product, "pooled": 1,
                "starts_at": starts, "ends_at": t0 + timedelta(hours=end_h),
                "sort_key": f"{int(starts.timestamp() * 1000):013d}:{sale_id}", **extra}

    coll.insert_many([sale("ended", "prd_a", -3, -2), sale("running", "prd_a", -1, 1), sale("soon", "prd_a", 2, 3),
                      sale("later", "prd_b", 5, 6), sale("unpooled", "prd_a", 1, 2, pooled=0),
                      {**sale("theirs", "prd_a", 1, 2), "merchant_id": new_merchant_id()}])

    def names(key=None, direction=DESCENDING, limit=10, **query):
        full = {"merchant_id": merchant, "pooled": 1, **query}
        if key:
            full["sort_key"] = key
        found = list(coll.find(full, {"holds": 0}).sort("sort_key", direction).limit(limit))
        return [d["name"] for d in found]

    def bound(hours: float) -> str:
        return f"{ms0 + int(hours * 3600_000):013d}"

    assert names() == ["later", "soon", "running", "ended"]
    assert names(direction=ASCENDING) == ["ended", "running", "soon", "later"]
    # SCHEDULED: the key from just after now; RUNNING: below it and ending after now; ENDED.
    now_key = f"{ms0 + 1:013d}"
    assert names({"$gte": now_key}) == ["later", "soon"]
    assert names({"$lt": now_key}, ends_at={"$gt": t0}) == ["running"]
    assert names(ends_at={"$lte": t0}) == ["ended"]
    # A start window, then with a product, then continued by a cursor on either side.
    assert names({"$gte": bound(-1), "$lt": bound(5)}) == ["soon", "running"]
    assert names({"$gte": bound(-1), "$lt": bound(5)}, product_id="prd_a") == ["soon", "running"]
    first = list(coll.find({"merchant_id": merchant, "pooled": 1, "sort_key": {"$gte": bound(-3)}})
                 .sort("sort_key", ASCENDING).limit(2))
    assert [d["name"] for d in first] == ["ended", "running"]
    assert names({"$gt": first[-1]["sort_key"]}, ASCENDING) == ["soon", "later"]
    assert names({"$gte": bound(-1), "$lt": first[-1]["sort_key"]}) == []
    assert names({"$lt": first[-1]["sort_key"]}, product_id="prd_a") == ["ended"]
    assert names({"$gte": bound(-5), "$lt": bound(5)}, ends_at={"$gt": t0 - timedelta(hours=1)}) == \
        ["soon", "running"]
    # A viewer's list of one product's sales (sales_page): not ended, soonest first, after a cursor.
    assert names(direction=ASCENDING, product_id="prd_a", ends_at={"$gt": t0}) == ["running", "soon"]
    running_key = first[-1]["sort_key"]
    assert names({"$gt": running_key}, ASCENDING, product_id="prd_a", ends_at={"$gt": t0}) == ["soon"]
    assert names(direction=ASCENDING, product_id="prd_b", ends_at={"$gt": t0}) == ["later"]


def test_pools_of_other_kinds_are_left_out_of_flash_sale_lists_and_old_sales_read_as_flash_sales(coll):
    merchant = new_merchant_id()
    coll.insert_many([{"_id": "old", "merchant_id": merchant, "pooled": 1, "sort_key": "1"},
                      {"_id": "flash", "merchant_id": merchant, "pooled": 1, "kind": "FLASH_SALE", "sort_key": "2"},
                      {"_id": "group", "merchant_id": merchant, "pooled": 1, "kind": "GROUP_BUY", "sort_key": "3"}])
    # The start-up backfill (flash_sales.ensure_indexes): an absent kind becomes FLASH_SALE.
    coll.update_many({"kind": {"$exists": False}}, {"$set": {"kind": "FLASH_SALE"}})
    listed = coll.find({"merchant_id": merchant, "pooled": 1, "kind": "FLASH_SALE"}).sort("sort_key", ASCENDING)
    assert [d["_id"] for d in listed] == ["old", "flash"]
    # A take names its kind: a group-buy pool is not taken as a flash sale.
    assert coll.find_one_and_update({"_id": "group", "merchant_id": merchant, "kind": "FLASH_SALE"},
                                    {"$inc": {"available": -1}}) is None
    assert coll.find_one_and_update({"_id": "group", "merchant_id": merchant, "kind": "GROUP_BUY"},
                                    {"$inc": {"available": -1}}) is not None
