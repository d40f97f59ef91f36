"""Every storage call of the catalog, synchronous (run them through `db.run_sync`).

Every query filters by merchant_id, except the sweeper's scans, which are system-wide
and hand each document's own merchant to the write that follows. Counters change by one
conditional atomic update; aggregates change by compare-and-set on `version`.
"""
from __future__ import annotations

from datetime import datetime

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from siyu_kit.events.outbox import Event, add_to_update, for_insert
from siyu_kit.protos import epoch_ms, now_ms, utcnow

from services.catalog.adapters.documents import MovementDoc, ProductDoc, ReservationDoc, StockDoc
from services.catalog.domain import stock as rules


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


def products_page(merchant_id: str, *, status: str | None, terms: list[str], category_id: str, tag: str,
                  before_id: str, limit: int) -> list[dict]:
    """Newest first by `_id` (ULIDs sort by time), strictly older than `before_id`."""
    query: dict = {"merchant_id": merchant_id}
    if status:
        query["status"] = status
    if terms:
        query["search_terms"] = {"$all": terms}
    if category_id:
        query["category_id"] = category_id
    if tag:
        query["tags"] = {"$in": [tag]}
    if before_id:
        query["_id"] = {"$lt": before_id}
    cursor = ProductDoc._get_collection().find(query, {"search_terms": 0})
    return list(cursor.sort("_id", DESCENDING).limit(limit))


# ---- stock

def stock_insert(fields: dict) -> bool:
    return _insert(StockDoc, fields)


def stock_get(merchant_id: str, sku_id: str) -> dict | None:
    return StockDoc._get_collection().find_one({"_id": sku_id, "merchant_id": merchant_id})


def stock_get_many(merchant_id: str, sku_ids: list[str]) -> list[dict]:
    if not sku_ids:
        return []
    return list(StockDoc._get_collection().find({"_id": {"$in": sku_ids}, "merchant_id": merchant_id}))


def stock_hold(merchant_id: str, sku_id: str, reservation_id: str, quantity: int) -> bool:
    """Take `quantity` from available into reserved, once per reservation."""
    hold = f"holds.{reservation_id}"
    result = StockDoc._get_collection().update_one(
        {"_id": sku_id, "merchant_id": merchant_id, "available": {"$gte": quantity}, hold: {"$exists": False}},
        {"$inc": {"available": -quantity, "reserved": quantity},
         "$set": {hold: quantity, "updated_ms": now_ms()}})
    return result.modified_count == 1


def stock_has_hold(merchant_id: str, sku_id: str, reservation_id: str) -> bool:
    return StockDoc._get_collection().find_one(
        {"_id": sku_id, "merchant_id": merchant_id, f"holds.{reservation_id}": {"$exists": True}},
        {"_id": 1}) is not None


def stock_unhold(merchant_id: str, sku_id: str, reservation_id: str, quantity: int) -> bool:
    """Give a held quantity back to available; only if this reservation still holds it."""
    hold = f"holds.{reservation_id}"
    result = StockDoc._get_collection().update_one(
        {"_id": sku_id, "merchant_id": merchant_id, hold: quantity},
        {"$inc": {"available": quantity, "reserved": -quantity},
         "$unset": {hold: ""}, "$set": {"updated_ms": now_ms()}})
    return result.modified_count == 1


def stock_consume(merchant_id: str, sku_id: str, reservation_id: str, quantity: int) -> bool:
    """A held quantity is sold: it leaves on_hand and reserved."""
    hold = f"holds.{reservation_id}"
    result = StockDoc._get_collection().update_one(
        {"_id": sku_id, "merchant_id": merchant_id, hold: quantity},
        {"$inc": {"on_hand": -quantity, "reserved": -quantity},
         "$unset": {hold: ""}, "$set": {"updated_ms": now_ms()}})
    return result.modified_count == 1


# ---- stock ledger

def movement_record(merchant_id: str, sku_id: str, kind: str, quantity: int, reservation_id: str = "") -> bool:
    d = rules.deltas(kind, quantity)
    return _insert(MovementDoc, {
        "id": rules.movement_id(kind, sku_id, reservation_id), "merchant_id": merchant_id, "sku_id": sku_id,
        "kind": kind, "reservation_id": reservation_id, "on_hand_delta": d.on_hand,
        "reserved_delta": d.reserved, "available_delta": d.available, "at": utcnow()})


def movements_of(merchant_id: str, sku_id: str) -> list[dict]:
    return list(MovementDoc._get_collection().find({"merchant_id": merchant_id, "sku_id": sku_id}))


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


def reservations_expired(now: datetime, limit: int) -> list[dict]:
    return list(ReservationDoc._get_collection().find(
        {"state": rules.RESERVED, "expires_at": {"$lte": now}}, {"outbox": 0}).limit(limit))


def reservations_unsettled(before: datetime, limit: int) -> list[dict]:
    """COMMITTED/RELEASED reservations whose stock move was interrupted."""
    return list(ReservationDoc._get_collection().find(
        {"state": {"$in": [rules.COMMITTED, rules.RELEASED]}, "settled": 0, "updated_ms": {"$lte": epoch_ms(before)}},
        {"outbox": 0}).limit(limit))
