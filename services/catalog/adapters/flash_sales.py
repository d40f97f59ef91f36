"""Flash sales in storage: the sale with its pool, the per-member quotas, and the SKU
stock that follows the pool. Synchronous: call through `db.run_sync`.

Every change of a counter is one conditional atomic write keyed by what it settles (the
reservation's hold, the sale's hold in the stock), so every step can be retried. The pool is
the truth about its units; the SKU's stock catches up with it by compare-and-set on the
pool counters it has already applied (`pool_sync.<sale id>`), owing its ledger movements in
the same write.
"""
from __future__ import annotations

from datetime import datetime

import mongoengine as me
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from siyu_kit.events.outbox import Event, for_insert
from siyu_kit.protos import now_ms

from services.catalog.adapters import repositories as repo
from services.catalog.adapters.documents import ReservationDoc, StockDoc
from services.catalog.domain import flash_sales as rules, stock as stock_rules


class FlashSaleDoc(me.Document):
    """A flash sale and its pool. `holds` maps reservation id → {q, member_id, exp_ms}."""
    id = me.StringField(primary_key=True)  # fls_…
    merchant_id = me.StringField(required=True)
    idempotency_key = me.StringField(required=True)
    title = me.StringField(required=True)
    product_id = me.StringField(required=True)
    sku_id = me.StringField(required=True)
    # The SKU as it was when the sale was made, for order lines:
    # {code, attributes, list_price, currency, product_title, tier_prices: [{tier, price}]}.
    sku = me.DictField()
    price = me.IntField(required=True, min_value=0)
    currency = me.StringField(required=True)
    units = me.IntField(required=True, min_value=1)
    available = me.IntField(required=True)
    reserved = me.IntField(default=0)
    sold = me.IntField(default=0)
    returned = me.IntField(default=0)
    per_member_limit = me.IntField(required=True)
    starts_at = me.DateTimeField(required=True)
    ends_at = me.DateTimeField(required=True)
    live_session_id = me.StringField(default="")
    # domain.flash_sales.sort_key: soonest first, one string for keyset pages.
    sort_key = me.StringField(required=True)
    # 1 once the units are out of the SKU's stock; only then can members buy.
    pooled = me.IntField(default=0)
    # 1 while the SKU's stock has not caught up with `sold` / `returned`.
    unsynced = me.IntField(default=0)
    holds = me.DictField()
    created_at = me.DateTimeField(required=True)
    updated_ms = me.IntField(required=True)
    version = me.IntField(default=1)

    meta = {
        "collection": "flash_sales",
        "indexes": [
            {"fields": ["merchant_id", "idempotency_key"], "unique": True},
            {"fields": ["merchant_id", "sort_key"]},
            {"fields": ["pooled", "ends_at"]},
            {"fields": ["unsynced"]},
        ],
        "auto_create_index": False,
    }


class FlashQuotaDoc(me.Document):
    """What one member has of one sale: `_id` is "<sale id>:<member id>"; `holds` maps each
    reservation counted in `used` to its quantity."""
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    flash_sale_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    used = me.IntField(default=0)
    holds = me.DictField()

    meta = {"collection": "flash_quotas", "auto_create_index": False}


def ensure_indexes() -> None:
    for doc in (FlashSaleDoc, FlashQuotaDoc):
        doc.ensure_indexes()


_NO_HOLDS = {"holds": 0}


def _sales():
    return FlashSaleDoc._get_collection()


def _quotas():
    return FlashQuotaDoc._get_collection()


# ---- sales

def sale_insert(fields: dict) -> bool:
    """False when the merchant already used the idempotency key."""
    doc = FlashSaleDoc(**fields)
    doc.validate()
    try:
        _sales().insert_one(doc.to_mongo().to_dict())
        return True
    except DuplicateKeyError:
        return False


def sale_by_key(merchant_id: str, key: str) -> dict | None:
    return _sales().find_one({"merchant_id": merchant_id, "idempotency_key": key}, _NO_HOLDS)


def sale_get(merchant_id: str, sale_id: str) -> dict | None:
    return _sales().find_one({"_id": sale_id, "merchant_id": merchant_id}, _NO_HOLDS)


def pool_hold(merchant_id: str, sale_id: str, reservation_id: str) -> dict | None:
    """This reservation's hold in the pool, if any (a rare read: the holds come whole)."""
    doc = _sales().find_one({"_id": sale_id, "merchant_id": merchant_id,
                             f"holds.{reservation_id}": {"$exists": True}}, {"holds": 1})
    return doc["holds"][reservation_id] if doc else None


def sale_mark_pooled(merchant_id: str, sale_id: str) -> None:
    _sales().update_one({"_id": sale_id, "merchant_id": merchant_id, "pooled": 0},
                        {"$set": {"pooled": 1, "updated_ms": now_ms()}, "$inc": {"version": 1}})


def sale_discard(merchant_id: str, sale_id: str) -> None:
    """A sale whose units could not be taken from stock is not left half-made."""
    _sales().delete_one({"_id": sale_id, "merchant_id": merchant_id, "pooled": 0})


def sales_page(merchant_id: str, *, live_session_id: str, after_key: str, ends_after: datetime,
               limit: int) -> list[dict]:
    """Pooled sales that have not ended, soonest first, strictly after `after_key`."""
    query: dict = {"merchant_id": merchant_id, "pooled": 1, "ends_at": {"$gt": ends_after}}
    if live_session_id:
        query["live_session_id"] = live_session_id
    if after_key:
        query["sort_key"] = {"$gt": after_key}
    return list(_sales().find(query, _NO_HOLDS).sort("sort_key", ASCENDING).limit(limit))


def sales_unpooled(created_before: datetime, limit: int) -> list[dict]:
    """Sales (of any merchant) whose creation was interrupted."""
    return list(_sales().find({"pooled": 0, "created_at": {"$lte": created_before}}, _NO_HOLDS).limit(limit))


def sales_ended_with_units(now: datetime, limit: int) -> list[dict]:
    """Ended sales (of any merchant) with free units to give back to their SKU."""
    return list(_sales().find({"pooled": 1, "ends_at": {"$lte": now}, "available": {"$gt": 0}},
                              _NO_HOLDS).limit(limit))


def sales_unsynced(limit: int) -> list[dict]:
    return list(_sales().find({"unsynced": 1}, {"merchant_id": 1}).limit(limit))


def sales_holding(after_id: str, limit: int) -> list[dict]:
    """Sales (of any merchant) with units held by reservations, holds included, in id
    order after `after_id`."""
    query: dict = {"pooled": 1, "reserved": {"$gt": 0}}
    if after_id:
        query["_id"] = {"$gt": after_id}
    return list(_sales().find(query, {"merchant_id": 1, "holds": 1}).sort("_id", ASCENDING).limit(limit))


# ---- the pool

def pool_take(merchant_id: str, sale_id: str, reservation_id: str, quantity: int, member_id: str,
              expires_ms: int, now: datetime) -> dict | None:
    """The hot path: `quantity` free units to this reservation, inside the window, once.
    The sale after the write (without holds), or None when refused."""
    hold = f"holds.{reservation_id}"
    return _sales().find_one_and_update(
        {"_id": sale_id, "merchant_id": merchant_id, "pooled": 1, "available": {"$gte": quantity},
         "starts_at": {"$lte": now}, "ends_at": {"$gt": now}, hold: {"$exists": False}},
        {"$inc": {"available": -quantity, "reserved": quantity, "version": 1},
         "$set": {hold: {"q": quantity, "member_id": member_id, "exp_ms": expires_ms}}},
        projection=_NO_HOLDS, return_document=ReturnDocument.AFTER)


def pool_take_again(merchant_id: str, sale_id: str, hold_key: str, quantity: int, member_id: str,
                    expires_ms: int) -> bool:
    """A payment that came after its units went back to the pool takes them again, if
    still free; the sale's window does not matter (the member bought inside it)."""
    hold = f"holds.{hold_key}"
    result = _sales().update_one(
        {"_id": sale_id, "merchant_id": merchant_id, "pooled": 1, "available": {"$gte": quantity},
         hold: {"$exists": False}},
        {"$inc": {"available": -quantity, "reserved": quantity, "version": 1},
         "$set": {hold: {"q": quantity, "member_id": member_id, "exp_ms": expires_ms}, "updated_ms": now_ms()}})
    return result.modified_count == 1


def pool_release(merchant_id: str, sale_id: str, reservation_id: str, quantity: int) -> bool:
    """Held units back to free; only while this reservation holds them."""
    hold = f"holds.{reservation_id}"
    result = _sales().update_one(
        {"_id": sale_id, "merchant_id": merchant_id, f"{hold}.q": quantity},
        {"$unset": {hold: ""}, "$inc": {"available": quantity, "reserved": -quantity, "version": 1},
         "$set": {"updated_ms": now_ms()}})
    return result.modified_count == 1


def pool_commit(merchant_id: str, sale_id: str, reservation_id: str, quantity: int) -> bool:
    """Held units are paid: sold, for the SKU's stock to follow."""
    hold = f"holds.{reservation_id}"
    result = _sales().update_one(
        {"_id": sale_id, "merchant_id": merchant_id, f"{hold}.q": quantity},
        {"$unset": {hold: ""}, "$inc": {"reserved": -quantity, "sold": quantity, "version": 1},
         "$set": {"unsynced": 1, "updated_ms": now_ms()}})
    return result.modified_count == 1


def pool_return(merchant_id: str, sale_id: str, quantity: int) -> bool:
    """Free units of an ended sale go back to the SKU (the stock follows)."""
    result = _sales().update_one(
        {"_id": sale_id, "merchant_id": merchant_id, "available": {"$gte": quantity}},
        {"$inc": {"available": -quantity, "returned": quantity, "version": 1},
         "$set": {"unsynced": 1, "updated_ms": now_ms()}})
    return result.modified_count == 1


# ---- per-member quotas

TAKEN, COUNTED, LIMIT = "TAKEN", "COUNTED", "LIMIT"


def quota_take(merchant_id: str, sale_id: str, member_id: str, reservation_id: str, quantity: int,
               limit: int) -> str:
    """Count `quantity` against the member's limit, once per reservation: TAKEN, COUNTED
    (this reservation already is) or LIMIT. One conditional upsert; an existing quota that
    fails the guard makes the upsert collide with its own _id."""
    key = {"_id": f"{sale_id}:{member_id}", "merchant_id": merchant_id, "flash_sale_id": sale_id,
           "member_id": member_id}
    hold = f"holds.{reservation_id}"
    query = {**key, "used": {"$lte": limit - quantity}, hold: {"$exists": False}}
    update = {"$inc": {"used": quantity}, "$set": {hold: quantity}}
    try:
        _quotas().update_one(query, update, upsert=True)
        return TAKEN
    except DuplicateKeyError:
        pass
    # Exists: over the limit, counted already, or created by a concurrent first take.
    if _quotas().update_one(query, update).modified_count == 1:
        return TAKEN
    counted = _quotas().find_one({**key, hold: {"$exists": True}}, {"_id": 1})
    return COUNTED if counted else LIMIT


def quota_release(merchant_id: str, sale_id: str, member_id: str, reservation_id: str, quantity: int) -> bool:
    """A released reservation no longer counts against the member's limit."""
    hold = f"holds.{reservation_id}"
    result = _quotas().update_one(
        {"_id": f"{sale_id}:{member_id}", "merchant_id": merchant_id, hold: quantity},
        {"$unset": {hold: ""}, "$inc": {"used": -quantity}})
    return result.modified_count == 1


# ---- flash reservations

def reservation_insert(fields: dict, event: Event) -> bool:
    """A flash reservation is born holding its units (`confirmed`), with its event."""
    doc = ReservationDoc(**fields)
    doc.validate()
    try:
        ReservationDoc._get_collection().insert_one({**doc.to_mongo().to_dict(), **for_insert(event)})
        return True
    except DuplicateKeyError:
        return False


# ---- the SKU's stock

def stock_pool_out(merchant_id: str, sku_id: str, sale_id: str, units: int) -> bool:
    """Move `units` from the SKU's available stock into the pool, held under the sale id."""
    hold = f"holds.{sale_id}"
    owed, count = repo._owe(sku_id, stock_rules.POOL_OUT, units, sale_id)
    result = StockDoc._get_collection().update_one(
        {"_id": sku_id, "merchant_id": merchant_id, "available": {"$gte": units}, hold: {"$exists": False}},
        {"$inc": {"available": -units, "reserved": units, **count},
         "$set": {hold: units, f"pool_sync.{sale_id}": {"sold": 0, "returned": 0}, **owed,
                  "updated_ms": now_ms()}})
    return result.modified_count == 1


def movement_reference(sale_id: str, counter: int) -> str:
    """A catch-up's movement reference: the sale and the pool counter it brings the stock to."""
    return f"{sale_id}/{counter}"


def pool_counters(merchant_id: str, sale_id: str) -> dict | None:
    return _sales().find_one({"_id": sale_id, "merchant_id": merchant_id},
                             {"sku_id": 1, "product_id": 1, "sold": 1, "returned": 1})


def stock_pool_applied(merchant_id: str, sku_id: str, sale_id: str) -> dict | None:
    """The pool's {sold, returned} the SKU's stock has followed; None if never pooled."""
    stock = StockDoc._get_collection().find_one({"_id": sku_id, "merchant_id": merchant_id}, {"pool_sync": 1})
    return ((stock or {}).get("pool_sync") or {}).get(sale_id)


def stock_follow_pool(merchant_id: str, sku_id: str, sale_id: str, applied: dict, sold: int, returned: int) -> bool:
    """One compare-and-set on what the stock has followed: units sold since leave on_hand
    and reserved (COMMIT), units returned since go from reserved to available (POOL_IN),
    both out of the sale's hold, owing their movements in the same write."""
    todo = rules.catch_up(sold, returned, int(applied["sold"]), int(applied["returned"]))
    owed: dict = {}
    if todo.sold:
        owed |= repo._owe(sku_id, stock_rules.COMMIT, todo.sold, movement_reference(sale_id, sold))[0]
    if todo.returned:
        owed |= repo._owe(sku_id, stock_rules.POOL_IN, todo.returned, movement_reference(sale_id, returned))[0]
    sync = f"pool_sync.{sale_id}"
    result = StockDoc._get_collection().update_one(
        {"_id": sku_id, "merchant_id": merchant_id, f"{sync}.sold": applied["sold"],
         f"{sync}.returned": applied["returned"]},
        {"$inc": {"on_hand": -todo.sold, "reserved": -todo.sold - todo.returned, "available": todo.returned,
                  f"holds.{sale_id}": -todo.sold - todo.returned, "pending_count": len(owed)},
         "$set": {sync: {"sold": sold, "returned": returned}, **owed, "updated_ms": now_ms()}})
    return result.modified_count == 1


def sale_mark_synced(merchant_id: str, sale_id: str, sold: int, returned: int) -> None:
    """Unless the pool moved on meanwhile (then it stays marked for the next catch-up)."""
    _sales().update_one({"_id": sale_id, "merchant_id": merchant_id, "sold": sold, "returned": returned,
                         "unsynced": 1}, {"$set": {"unsynced": 0}})
