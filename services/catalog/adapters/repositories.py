"""The catalog's MongoDB repositories: the storage calls, synchronous, and the classes
implementing the application's ports, which run them through `db.run_sync`.

Every query filters by merchant_id, except the sweeper's scans, which are system-wide
and hand each document's own merchant to the write that follows. Counters change by one
conditional atomic update; aggregates change by compare-and-set on `version`.
"""
from __future__ import annotations

from datetime import datetime, timezone

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync
from siyu_kit.protos import aware, epoch_ms, now_ms, utcnow
from siyu_kit.repository import insert_new, save_change

from services.catalog.adapters import messages
from services.catalog.adapters.documents import CategoryDoc, MovementDoc, ProductDoc, ReservationDoc, StockDoc
from services.catalog.application.ports import ProductFilter, SkuFilter
from services.catalog.domain import stock as rules
from services.catalog.domain.listing import Key, Sort
from services.catalog.domain.reservations import Line, Reservation
from services.catalog.domain.stock import Movement, Stock, StockChange


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


def categories_page(merchant_id: str, parent_id: str | None, after_id: str, limit: int) -> list[dict]:
    """The staff's category list: by id (creation order), after `after_id`; one parent's
    children when `parent_id` is given ("" for the roots)."""
    query: dict = {"merchant_id": merchant_id}
    if parent_id is not None:
        query["parent_id"] = parent_id
    if after_id:
        query["_id"] = {"$gt": after_id}
    return list(CategoryDoc._get_collection().find(query).sort("_id", ASCENDING).limit(limit))


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


def _owe(movement: Movement) -> dict:
    """The $set part of a stock update that owes this movement to the ledger."""
    entry = {"kind": movement.kind, "quantity": movement.quantity, "reference": movement.reference,
             "reason": movement.reason, "at_ms": now_ms()}
    return {f"pending.{movement.id}": entry}


def _change(merchant_id: str, change: StockChange) -> tuple[dict, dict]:
    """The one conditional update a StockChange is: its guard, its counters and marker, and
    the movement it owes."""
    mark = change.mark
    marker = f"{mark.book}.{mark.key}"
    query: dict = {"_id": change.sku_id, "merchant_id": merchant_id,
                   marker: {"$exists": False} if mark.before is None else mark.before}
    if change.min_available:
        query["available"] = {"$gte": change.min_available}
    d = change.deltas
    inc = {name: value for name, value in (("on_hand", d.on_hand), ("reserved", d.reserved),
                                           ("available", d.available)) if value}
    update: dict = {"$inc": {**inc, "pending_count": 1}, "$set": {**_owe(change.movement), "updated_ms": now_ms()}}
    if mark.after is None:
        update["$unset"] = {marker: ""}
    else:
        update["$set"][marker] = mark.after
    if change.movement.kind == rules.POOL_OUT:
        # The stock starts following the pool the units went to (adapters.flash_sales).
        update["$set"][f"pool_sync.{mark.key}"] = {"sold": 0, "returned": 0}
    return query, update


def stock_apply(merchant_id: str, change: StockChange) -> bool:
    query, update = _change(merchant_id, change)
    return StockDoc._get_collection().update_one(query, update).modified_count == 1


def stock_apply_and_read(merchant_id: str, change: StockChange) -> dict | None:
    """The SKU's product id and levels after the change (None if its guard did not hold),
    saving a read for the sales count."""
    query, update = _change(merchant_id, change)
    return StockDoc._get_collection().find_one_and_update(query, update, projection=_LEVELS,
                                                          return_document=ReturnDocument.AFTER)


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


def stock_has_hold(merchant_id: str, sku_id: str, key: str) -> bool:
    return StockDoc._get_collection().find_one(
        {"_id": sku_id, "merchant_id": merchant_id, f"holds.{key}": {"$exists": True}}, {"_id": 1}) is not None


def stock_consume(merchant_id: str, sku_id: str, reservation_id: str, quantity: int) -> dict | None:
    """A held quantity is sold (None if this reservation no longer holds it)."""
    return stock_apply_and_read(merchant_id, StockChange.sell(sku_id, reservation_id, quantity))


def stock_adjust(merchant_id: str, sku_id: str, key: str, delta: int, reason: str) -> dict | None:
    """Restock or write off once per key; the levels after, or None."""
    return stock_apply_and_read(merchant_id, StockChange.adjust(sku_id, key, delta, reason))


def stock_return(merchant_id: str, sku_id: str, return_id: str, quantity: int) -> dict | None:
    """Refunded units back on hand, once per return id; the levels after, or None."""
    return stock_apply_and_read(merchant_id, StockChange.give_back(sku_id, return_id, quantity))


def stock_owing(limit: int) -> list[dict]:
    """SKUs (of any merchant) with ledger entries not yet stored."""
    return list(StockDoc._get_collection().find({"pending_count": {"$gt": 0}},
                                                {"merchant_id": 1, "product_id": 1, "pending": 1}).limit(limit))


def stock_page(merchant_id: str, where: SkuFilter, after_sku_id: str, descending: bool, limit: int) -> list[dict]:
    """The staff's SKU list: stock documents by SKU id, strictly after `after_sku_id`."""
    query: dict = {"merchant_id": merchant_id}
    if where.product_id:
        query["product_id"] = where.product_id
    if where.max_available is not None:
        query["available"] = {"$lte": where.max_available}
    if after_sku_id:
        query["_id"] = {"$lt" if descending else "$gt": after_sku_id}
    cursor = StockDoc._get_collection().find(query, {"pending": 0, "adjustments": 0, "returns": 0})
    return list(cursor.sort("_id", DESCENDING if descending else ASCENDING).limit(limit))


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

def _reservations():
    return ReservationDoc._get_collection()


def reservation_get(merchant_id: str, reservation_id: str) -> dict | None:
    return _reservations().find_one({"_id": reservation_id, "merchant_id": merchant_id})


def reservation_mark_settled(merchant_id: str, reservation_id: str) -> None:
    _reservations().update_one({"_id": reservation_id, "merchant_id": merchant_id, "settled": 0},
                               {"$set": {"settled": 1}})


def reservations_expired(now: datetime, limit: int, after_id: str = "") -> list[dict]:
    """RESERVED reservations past their expiry, in id order after `after_id` (the sweeper
    walks them a batch per pass, so ones it must leave alone do not block the rest)."""
    query: dict = {"state": rules.RESERVED, "expires_at": {"$lte": now}}
    if after_id:
        query["_id"] = {"$gt": after_id}
    return list(_reservations().find(query, {"outbox": 0}).sort("_id", ASCENDING).limit(limit))


def reservations_unsettled(before: datetime, limit: int) -> list[dict]:
    """COMMITTED/RELEASED reservations whose stock move was interrupted."""
    return list(_reservations().find(
        {"state": {"$in": [rules.COMMITTED, rules.RELEASED]}, "settled": 0, "updated_ms": {"$lte": epoch_ms(before)}},
        {"outbox": 0}).limit(limit))


def reservation_of(doc: dict) -> Reservation:
    return Reservation(
        id=doc["_id"], merchant_id=doc["merchant_id"], order_id=doc["order_id"],
        lines=tuple(Line(line["sku_id"], int(line["quantity"])) for line in doc["lines"]),
        expires_at=aware(doc["expires_at"]), state=doc["state"], confirmed=bool(doc.get("confirmed")),
        settled=bool(doc.get("settled", 1)), flash_sale_id=doc.get("flash_sale_id") or "",
        member_id=doc.get("member_id") or "", hold_key=doc.get("hold_key") or "",
        unfulfillable=bool(doc.get("unfulfillable")), last_event_id=doc.get("last_event_id") or "",
        created_at=aware(doc["created_at"]) if doc.get("created_at") else None, version=int(doc["version"]))


def _reservation_insert(reservation: Reservation) -> bool:
    created_at = reservation.created_at or utcnow()
    fields = {"id": reservation.id, "merchant_id": reservation.merchant_id, "order_id": reservation.order_id,
              "state": reservation.state,
              "lines": [{"sku_id": line.sku_id, "quantity": line.quantity} for line in reservation.lines],
              "expires_at": reservation.expires_at, "confirmed": int(reservation.confirmed),
              "settled": int(reservation.settled), "created_at": created_at, "updated_ms": epoch_ms(created_at),
              "version": reservation.version}
    if reservation.flash_sale_id:
        fields |= {"flash_sale_id": reservation.flash_sale_id, "member_id": reservation.member_id}
    doc = ReservationDoc(**fields)
    doc.validate()
    events = messages.reservation_events(reservation, reservation.pull_events(), reservation.version)
    return insert_new(_reservations(), doc.to_mongo().to_dict(), events)


def _reservation_save(reservation: Reservation) -> None:
    """The change with its events, on the version read (StaleVersion when it lost)."""
    events = messages.reservation_events(reservation, reservation.pull_events(), reservation.next_version)
    sets = {"state": reservation.state, "confirmed": int(reservation.confirmed), "settled": int(reservation.settled),
            "last_event_id": reservation.last_event_id, "updated_ms": now_ms()}
    if reservation.hold_key:
        sets["hold_key"] = reservation.hold_key
    if reservation.unfulfillable:
        sets["unfulfillable"] = 1
    save_change(_reservations(), {"_id": reservation.id, "merchant_id": reservation.merchant_id}, {"$set": sets},
                events, version=reservation.version)


# ---- the ports

def stock_of(doc: dict, merchant_id: str = "") -> Stock:
    sku_id = doc["_id"]
    owed = tuple((Movement(e["kind"], sku_id, int(e["quantity"]), e.get("reference", ""), e.get("reason", "")),
                  int(e["at_ms"])) for e in (doc.get("pending") or {}).values())
    return Stock(sku_id, doc.get("merchant_id") or merchant_id, doc["product_id"], int(doc.get("on_hand", 0)),
                 int(doc.get("reserved", 0)), int(doc.get("available", 0)), holds=dict(doc.get("holds") or {}),
                 adjustments=dict(doc.get("adjustments") or {}), owed=owed)


class MongoProducts:
    async def by_code(self, merchant_id: str, code: str) -> dict | None:
        return await run_sync(product_by_code, merchant_id, code)

    async def get(self, merchant_id: str, product_id: str) -> dict | None:
        return await run_sync(product_get, merchant_id, product_id)

    async def get_many(self, merchant_id: str, product_ids: list[str]) -> list[dict]:
        return await run_sync(products_get_many, merchant_id, product_ids)

    async def add(self, fields: dict) -> bool:
        return await run_sync(product_insert, fields)

    async def update(self, merchant_id: str, product_id: str, version: int, fields: dict) -> bool:
        return await run_sync(product_update, merchant_id, product_id, version, fields)

    async def page(self, merchant_id: str, where: ProductFilter, sort: Sort, after: Key | None,
                   limit: int) -> list[dict]:
        return await run_sync(products_page, merchant_id, where, sort, after, limit)


class MongoCategories:
    async def get(self, merchant_id: str, category_id: str) -> dict | None:
        return await run_sync(category_get, merchant_id, category_id)

    async def all_of(self, merchant_id: str) -> list[dict]:
        return await run_sync(categories_of, merchant_id)

    async def add(self, fields: dict) -> bool:
        return await run_sync(category_insert, fields)

    async def name_taken(self, merchant_id: str, parent_id: str, name: str, other_than: str) -> bool:
        return await run_sync(category_name_taken, merchant_id, parent_id, name, other_than)

    async def update(self, merchant_id: str, category_id: str, version: int, fields: dict) -> dict | None:
        return await run_sync(category_update, merchant_id, category_id, version, fields)

    async def page(self, merchant_id: str, parent_id: str | None, after_id: str, limit: int) -> list[dict]:
        return await run_sync(categories_page, merchant_id, parent_id, after_id, limit)


class MongoStock:
    async def add(self, stock: Stock) -> bool:
        return await run_sync(stock_insert, {
            "id": stock.sku_id, "merchant_id": stock.merchant_id, "product_id": stock.product_id,
            "on_hand": stock.on_hand, "reserved": stock.reserved, "available": stock.available, "holds": {},
            "updated_ms": now_ms()}, stock.on_hand)

    async def get(self, merchant_id: str, sku_id: str) -> Stock | None:
        doc = await run_sync(stock_get, merchant_id, sku_id)
        return stock_of(doc) if doc else None

    async def get_many(self, merchant_id: str, sku_ids: list[str]) -> list[Stock]:
        return [stock_of(d) for d in await run_sync(stock_get_many, merchant_id, sku_ids)]

    async def apply(self, merchant_id: str, change: StockChange) -> bool:
        return await run_sync(stock_apply, merchant_id, change)

    async def apply_and_read(self, merchant_id: str, change: StockChange) -> Stock | None:
        doc = await run_sync(stock_apply_and_read, merchant_id, change)
        return stock_of(doc, merchant_id) if doc else None

    async def holds(self, merchant_id: str, sku_id: str, key: str) -> bool:
        return await run_sync(stock_has_hold, merchant_id, sku_id, key)

    async def page(self, merchant_id: str, where: SkuFilter, after_sku_id: str, descending: bool,
                   limit: int) -> list[Stock]:
        return [stock_of(d) for d in await run_sync(stock_page, merchant_id, where, after_sku_id, descending, limit)]

    async def owing(self, limit: int) -> list[Stock]:
        return [stock_of(d) for d in await run_sync(stock_owing, limit)]


class MongoLedger:
    async def record(self, merchant_id: str, movement: Movement, at_ms: int | None = None) -> bool:
        return await run_sync(movement_record, merchant_id, movement.sku_id, movement.kind, movement.quantity,
                              movement.reference, movement.reason, at_ms)

    async def movements_of(self, merchant_id: str, sku_id: str) -> list[dict]:
        return await run_sync(movements_of, merchant_id, sku_id)

    async def add_sales(self, merchant_id: str, product_id: str, quantity: int) -> None:
        await run_sync(product_add_sales, merchant_id, product_id, quantity)


class MongoReservations:
    async def get(self, merchant_id: str, reservation_id: str) -> Reservation | None:
        doc = await run_sync(reservation_get, merchant_id, reservation_id)
        return reservation_of(doc) if doc else None

    async def add(self, reservation: Reservation) -> bool:
        return await run_sync(_reservation_insert, reservation)

    async def save(self, reservation: Reservation) -> None:
        await run_sync(_reservation_save, reservation)
        reservation.version += 1

    async def mark_settled(self, reservation: Reservation) -> None:
        await run_sync(reservation_mark_settled, reservation.merchant_id, reservation.id)

    async def expired(self, now: datetime, limit: int, after_id: str = "") -> list[Reservation]:
        return [reservation_of(d) for d in await run_sync(reservations_expired, now, limit, after_id)]

    async def unsettled(self, before: datetime, limit: int) -> list[Reservation]:
        return [reservation_of(d) for d in await run_sync(reservations_unsettled, before, limit)]
