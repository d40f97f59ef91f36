"""Every storage call of the catalog, synchronous (run them through `db.run_sync`).

Every query filters by merchant_id, except the sweeper's scans, which are system-wide
and hand each document's own merchant to the write that follows. Counters change by one
conditional atomic update; aggregates change by compare-and-set on `version`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from siyu_kit.events.outbox import Event, add_to_update, for_insert
from siyu_kit.protos import epoch_ms, now_ms, utcnow

from services.catalog.adapters.documents import CategoryDoc, MovementDoc, ProductDoc, ReservationDoc, StockDoc
from services.catalog.domain import stock as rules
from services.catalog.domain.listing import Key, Sort


def _insert(doc_cls, fields: dict, extra: dict | None = None) -> bool:
    """Insert a schema-checked document; False when its `_id` or unique key exists."""
    doc = doc_cls(**fields)
    doc.validate()
    raw = doc.to_mongo().to_dict()
    raw.update(extra or {})
    try:
        doc_cls._get_collection().insert_one(raw)
        return True
    except DuplicateKeyError:
        return False


# ---- products

def product_by_code(merchant_id: str, code: str) -> dict | None:
    return ProductDoc._get_collection().find_one({"merchant_id": merchant_id, "code": code})


def product_get(merchant_id: str, product_id: str) -> dict | None:
    return ProductDoc._get_collection().find_one({"_id": product_id, "merchant_id": merchant_id})


def products_get_many(merchant_id: str, product_ids: list[str]) -> list[dict]:
    if not product_ids:
        return []
    return list(ProductDoc._get_collection().find({"_id": {"$in": product_ids}, "merchant_id": merchant_id}))


def product_insert(fields: dict) -> bool:
    return _insert(ProductDoc, fields)


def product_update(merchant_id: str, product_id: str, version: int, fields: dict) -> bool:
    """Compare-and-set on version; False when someone else changed the product first."""
    result = ProductDoc._get_collection().update_one(
        {"_id": product_id, "merchant_id": merchant_id, "version": version},
        {"$set": fields, "$inc": {"version": 1}})
    return result.modified_count == 1


def product_add_sales(merchant_id: str, product_id: str, quantity: int) -> None:
    ProductDoc._get_collection().update_one({"_id": product_id, "merchant_id": merchant_id},
                                            {"$inc": {"sales": quantity}})


@dataclass(frozen=True)
class ProductFilter:
    status: str | None = None
    terms: tuple[str, ...] = ()
    category_id: str = ""
    tag: str = ""
    min_price: int | None = None
    max_price: int | None = None


def products_page(merchant_id: str, where: ProductFilter, sort: Sort, after: Key | None, limit: int) -> list[dict]:
    """Products in (sort value, id) order, strictly after the key `after`."""
    query: dict = {"merchant_id": merchant_id}
    if where.status:
        query["status"] = where.status
    if where.terms:
        query["search_terms"] = {"$all": list(where.terms)}
    if where.category_id:
        # Equality on an array field is broken in the embedded server: $in is portable.
        query["category_path"] = {"$in": [where.category_id]}
    if where.tag:
        query["tags"] = {"$in": [where.tag]}
    price = {}
    if where.min_price is not None:
        price["$gte"] = where.min_price
    if where.max_price is not None:
        price["$lte"] = where.max_price
    if price:
        query["min_price"] = price
    direction = DESCENDING if sort.descending else ASCENDING
    beyond = "$lt" if sort.descending else "$gt"
    if sort.field == "_id":
        order = [("_id", direction)]
        if after is not None:
            query["_id"] = {beyond: after.product_id}
    else:
        order = [(sort.field, direction), ("_id", direction)]
        if after is not None:
            query["$or"] = [{sort.field: {beyond: after.value}},
                            {sort.field: after.value, "_id": {beyond: after.product_id}}]
    cursor = ProductDoc._get_collection().find(query, {"search_terms": 0})
    return list(cursor.sort(order).limit(limit))


# ---- categories

def category_get(merchant_id: str, category_id: str) -> dict | None:
    return CategoryDoc._get_collection().find_one({"_id": category_id, "merchant_id": merchant_id})


def categories_of(merchant_id: str) -> list[dict]:
    return list(CategoryDoc._get_collection().find({"merchant_id": merchant_id}))


def category_insert(fields: dict) -> bool:
    """False when a sibling already has the name."""
    return _insert(CategoryDoc, fields)


def category_name_taken(merchant_id: str, parent_id: str, name: str, other_than: str) -> bool:
    return CategoryDoc._get_collection().find_one(
        {"merchant_id": merchant_id, "parent_id": parent_id, "name": name, "_id": {"$ne": other_than}},
        {"_id": 1}) is not None


def category_update(merchant_id: str, category_id: str, version: int, fields: dict) -> dict | None:
    """Compare-and-set on version; the category after the change, or None if it lost."""
    try:
        return CategoryDoc._get_collection().find_one_and_update(
            {"_id": category_id, "merchant_id": merchant_id, "version": version},
            {"$set": fields, "$inc": {"version": 1}}, return_document=ReturnDocument.AFTER)
    except DuplicateKeyError:  # MongoDB enforces the sibling-name index on updates too
        return None


# ---- stock
#
# Every write that moves a SKU's counters also records, in the same write, the movement it
# owes the ledger (`pending.<movement id>`). `movement_record` stores the movement and then
# clears the entry; entries left behind by a crash are stored by `ledger_repair`.

_LEVELS = {"product_id": 1, "on_hand": 1, "reserved": 1, "available": 1}


def _owe(sku_id: str, kind: str, quantity: int, reference: str = "", reason: str = "") -> tuple[dict, dict]:
    """The $set and $inc parts of a stock update that owes this movement to the ledger."""
    entry = {"kind": kind, "quantity": quantity, "reference": reference, "reason": reason, "at_ms": now_ms()}
    return {f"pending.{rules.movement_id(kind, sku_id, reference)}": entry}, {"pending_count": 1}


def stock_insert(fields: dict, quantity: int) -> bool:
    """A SKU's first stock, owing its INITIAL movement."""
    mid = rules.movement_id(rules.INITIAL, fields["id"])
    pending = {mid: {"kind": rules.INITIAL, "quantity": quantity, "reference": "", "reason": "", "at_ms": now_ms()}}
    return _insert(StockDoc, {**fields, "pending": pending, "pending_count": 1})


def stock_get(merchant_id: str, sku_id: str) -> dict | None:
    return StockDoc._get_collection().find_one({"_id": sku_id, "merchant_id": merchant_id})


def stock_get_many(merchant_id: str, sku_ids: list[str]) -> list[dict]:
    if not sku_ids:
        return []
    return list(StockDoc._get_collection().find({"_id": {"$in": sku_ids}, "merchant_id": merchant_id}))


def stock_hold(merchant_id: str, sku_id: str, reservation_id: str, quantity: int) -> bool:
    """Take `quantity` from available into reserved, once per reservation."""
    hold = f"holds.{reservation_id}"
    owed, count = _owe(sku_id, rules.RESERVE, quantity, reservation_id)
    result = StockDoc._get_collection().update_one(
        {"_id": sku_id, "merchant_id": merchant_id, "available": {"$gte": quantity}, hold: {"$exists": False}},
        {"$inc": {"available": -quantity, "reserved": quantity, **count},
         "$set": {hold: quantity, **owed, "updated_ms": now_ms()}})
    return result.modified_count == 1


def stock_has_hold(merchant_id: str, sku_id: str, reservation_id: str) -> bool:
    return StockDoc._get_collection().find_one(
        {"_id": sku_id, "merchant_id": merchant_id, f"holds.{reservation_id}": {"$exists": True}},
        {"_id": 1}) is not None


def stock_unhold(merchant_id: str, sku_id: str, reservation_id: str, quantity: int) -> bool:
    """Give a held quantity back to available; only if this reservation still holds it."""
    hold = f"holds.{reservation_id}"
    owed, count = _owe(sku_id, rules.RELEASE, quantity, reservation_id)
    result = StockDoc._get_collection().update_one(
        {"_id": sku_id, "merchant_id": merchant_id, hold: quantity},
        {"$inc": {"available": quantity, "reserved": -quantity, **count},
         "$unset": {hold: ""}, "$set": {**owed, "updated_ms": now_ms()}})
    return result.modified_count == 1


def stock_consume(merchant_id: str, sku_id: str, reservation_id: str, quantity: int) -> dict | None:
    """A held quantity is sold: it leaves on_hand and reserved. Returns the SKU's product id
    and levels (None if this reservation no longer holds it), saving a read for the sales count."""
    hold = f"holds.{reservation_id}"
    owed, count = _owe(sku_id, rules.COMMIT, quantity, reservation_id)
    return StockDoc._get_collection().find_one_and_update(
        {"_id": sku_id, "merchant_id": merchant_id, hold: quantity},
        {"$inc": {"on_hand": -quantity, "reserved": -quantity, **count},
         "$unset": {hold: ""}, "$set": {**owed, "updated_ms": now_ms()}},
        projection=_LEVELS, return_document=ReturnDocument.AFTER)


def stock_adjust(merchant_id: str, sku_id: str, key: str, delta: int, reason: str) -> dict | None:
    """Restock (+) or write off (−, only out of available), once per idempotency key. The
    levels after, or None when the key was used already or too little is available."""
    marker = f"adjustments.{key}"
    guard = {"_id": sku_id, "merchant_id": merchant_id, marker: {"$exists": False}}
    if delta < 0:
        guard["available"] = {"$gte": -delta}
    owed, count = _owe(sku_id, rules.ADJUST, delta, key, reason)
    return StockDoc._get_collection().find_one_and_update(
        guard, {"$inc": {"on_hand": delta, "available": delta, **count},
                "$set": {marker: delta, **owed, "updated_ms": now_ms()}},
        projection=_LEVELS, return_document=ReturnDocument.AFTER)


def stock_return(merchant_id: str, sku_id: str, return_id: str, quantity: int) -> dict | None:
    """Refunded units back on hand, once per return id. The levels after, or None if done already."""
    marker = f"returns.{return_id}"
    owed, count = _owe(sku_id, rules.RETURN, quantity, return_id)
    return StockDoc._get_collection().find_one_and_update(
        {"_id": sku_id, "merchant_id": merchant_id, marker: {"$exists": False}},
        {"$inc": {"on_hand": quantity, "available": quantity, **count},
         "$set": {marker: quantity, **owed, "updated_ms": now_ms()}},
        projection=_LEVELS, return_document=ReturnDocument.AFTER)


def stock_owing(limit: int) -> list[dict]:
    """SKUs (of any merchant) with ledger entries not yet stored."""
    return list(StockDoc._get_collection().find({"pending_count": {"$gt": 0}},
                                                {"merchant_id": 1, "product_id": 1, "pending": 1}).limit(limit))


# ---- stock ledger

def movement_record(merchant_id: str, sku_id: str, kind: str, quantity: int, reference: str = "",
                    reason: str = "", at_ms: int | None = None) -> bool:
    """Store a movement (once: its id is deterministic) and clear the stock's entry owing it.
    True when this call stored it."""
    mid = rules.movement_id(kind, sku_id, reference)
    d = rules.deltas(kind, quantity)
    at = datetime.fromtimestamp(at_ms / 1000, timezone.utc) if at_ms is not None else utcnow()
    fresh = _insert(MovementDoc, {
        "id": mid, "merchant_id": merchant_id, "sku_id": sku_id, "kind": kind, "reference": reference,
        "reason": reason, "on_hand_delta": d.on_hand, "reserved_delta": d.reserved, "available_delta": d.available,
        "at": at})
    owed = f"pending.{mid}"
    StockDoc._get_collection().update_one({"_id": sku_id, "merchant_id": merchant_id, owed: {"$exists": True}},
                                          {"$unset": {owed: ""}, "$inc": {"pending_count": -1}})
    return fresh


def movements_of(merchant_id: str, sku_id: str) -> list[dict]:
    """The SKU's whole ledger, oldest first."""
    return list(MovementDoc._get_collection().find({"merchant_id": merchant_id, "sku_id": sku_id})
                .sort("at", ASCENDING))


# ---- reservations

def reservation_get(merchant_id: str, reservation_id: str) -> dict | None:
    return ReservationDoc._get_collection().find_one({"_id": reservation_id, "merchant_id": merchant_id})


def reservation_insert(fields: dict) -> bool:
    return _insert(ReservationDoc, fields, for_insert())


def reservation_update(merchant_id: str, reservation_id: str, *, version: int, expect: dict, sets: dict,
                       event: Event) -> bool:
    """Compare-and-set on version and the expected fields, with the event in the same write."""
    update = add_to_update({"$set": {**sets, "updated_ms": now_ms()}, "$inc": {"version": 1}}, event)
    result = ReservationDoc._get_collection().update_one(
        {"_id": reservation_id, "merchant_id": merchant_id, "version": version, **expect}, update)
    return result.modified_count == 1


def reservation_mark_settled(merchant_id: str, reservation_id: str) -> None:
    ReservationDoc._get_collection().update_one(
        {"_id": reservation_id, "merchant_id": merchant_id, "settled": 0}, {"$set": {"settled": 1}})


def reservations_expired(now: datetime, limit: int, after_id: str = "") -> list[dict]:
    """RESERVED reservations past their expiry, in id order after `after_id` (the sweeper
    walks them a batch per pass, so ones it must leave alone do not block the rest)."""
    query: dict = {"state": rules.RESERVED, "expires_at": {"$lte": now}}
    if after_id:
        query["_id"] = {"$gt": after_id}
    return list(ReservationDoc._get_collection().find(query, {"outbox": 0}).sort("_id", ASCENDING).limit(limit))


def reservations_unsettled(before: datetime, limit: int) -> list[dict]:
    """COMMITTED/RELEASED reservations whose stock move was interrupted."""
    return list(ReservationDoc._get_collection().find(
        {"state": {"$in": [rules.COMMITTED, rules.RELEASED]}, "settled": 0, "updated_ms": {"$lte": epoch_ms(before)}},
        {"outbox": 0}).limit(limit))
