"""Flash sales in storage: the sale with its pool, the per-member quotas, and the SKU
stock that follows the pool. The storage calls are synchronous; `MongoFlashSales`
implements the application's port by running them through `db.run_sync`.

Every change of a counter is one conditional atomic write keyed by what it settles (the
reservation's hold, the sale's hold in the stock), so every step can be retried. The pool is
the truth about its units; the SKU's stock catches up with it by compare-and-set on the
pool counters it has already applied (`pool_sync.<sale id>`), owing its ledger movements in
the same write.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import mongoengine as me
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from siyu_kit.aggregate import StaleVersion
from siyu_kit.db import run_sync
from siyu_kit.protos import aware, epoch_ms, now_ms

from services.catalog.adapters import repositories as repo
from services.catalog.adapters.documents import StockDoc
from services.catalog.application.ports import SaleFilter
from services.catalog.domain import flash_sales as rules, stock as stock_rules
from services.catalog.domain.flash_sales import Applied, FlashSale, PoolCounters, PoolHold, SaleHolds, SaleSku
from services.catalog.domain.stock import Movement, StockChange


class FlashSaleDoc(me.Document):
    """A flash sale and its pool. `holds` maps reservation id → {q, member_id, exp_ms}."""
    id = me.StringField(primary_key=True)  # fls_…
    merchant_id = me.StringField(required=True)
    idempotency_key = me.StringField(required=True)
    title = me.StringField(required=True)
    product_id = me.StringField(required=True)
    sku_id = me.StringField(required=True)
    # The SKU as it was when the sale was made, for order lines:
    # {code, attributes, list_price, currency, product_title, tier_prices: [{tier, price}], weight_g}.
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
    # domain.flash_sales.KINDS: only FLASH_SALE pools are listed as flash sales.
    kind = me.StringField(default=rules.FLASH_SALE)
    # domain.flash_sales.sort_key: soonest first, one string for keyset pages.
    sort_key = me.StringField(required=True)
    # 1 once the units are out of the SKU's stock; only then can members buy.
    pooled = me.IntField(default=0)
    # 1 while the SKU's stock has not caught up with `sold` / `returned`.
    unsynced = me.IntField(default=0)
    # 1 until the sale has ended with nothing free or held left: the job's scans of ended
    # and holding sales look only at tending ones, so settled sales are never read again.
    tending = me.IntField(default=1)
    holds = me.DictField()
    created_at = me.DateTimeField(required=True)
    updated_ms = me.IntField(required=True)
    version = me.IntField(default=1)
    # Live-room events of a sale bound to a session (adapters/live_room_store.py).
    outbox = me.DictField()
    outbox_pending = me.IntField(default=0)
    outbox_seq = me.IntField(default=0)
    outbox_ms = me.IntField()

    meta = {
        "collection": "flash_sales",
        "indexes": [
            {"fields": ["merchant_id", "idempotency_key"], "unique": True},
            {"fields": ["merchant_id", "sort_key"]},
            # The staff's list of one product's sales.
            {"fields": ["merchant_id", "product_id", "sort_key"]},
            {"fields": ["pooled", "ends_at"]},
            {"fields": ["tending", "ends_at"]},
            {"fields": ["unsynced"]},
            # The live rooms' announcements (adapters/live_room_store.py), which carry an outbox.
            {"fields": ["live_session_id", "ends_at"]},
            {"fields": ["outbox_pending"]},
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
    # Sales made before pools had kinds are flash sales.
    _sales().update_many({"kind": {"$exists": False}}, {"$set": {"kind": rules.FLASH_SALE}})
    # Sales made before the job settled them are tended until it does.
    _sales().update_many({"tending": {"$exists": False}}, {"$set": {"tending": 1}})


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
               limit: int, product_id: str = "") -> list[dict]:
    """Pooled sales that have not ended, soonest first, strictly after `after_key`."""
    query: dict = {"merchant_id": merchant_id, "pooled": 1, "kind": rules.FLASH_SALE, "ends_at": {"$gt": ends_after}}
    if live_session_id:
        query["live_session_id"] = live_session_id
    if product_id:
        query["product_id"] = product_id
    if after_key:
        query["sort_key"] = {"$gt": after_key}
    return list(_sales().find(query, _NO_HOLDS).sort("sort_key", ASCENDING).limit(limit))


def sales_staff_page(merchant_id: str, where: SaleFilter, after_key: str, descending: bool,
                     limit: int) -> list[dict]:
    """The staff's list: pooled sales in every state, by sort key (their start), strictly
    after `after_key`. Bounds on the start are bounds on the sort key, so a page never
    needs a range on a datetime inside an `$or`."""
    query: dict = {"merchant_id": merchant_id, "pooled": 1, "kind": rules.FLASH_SALE}
    if where.product_id:
        query["product_id"] = where.product_id
    key: dict = {}
    if where.key_from:
        key["$gte"] = where.key_from
    if where.key_before:
        key["$lt"] = where.key_before
    # A page continues strictly after the last key shown, which lies inside the bounds on
    # its side: the cursor replaces that bound.
    if after_key and descending:
        key["$lt"] = after_key
    elif after_key:
        key.pop("$gte", None)
        key["$gt"] = after_key
    if key:
        query["sort_key"] = key
    ends: dict = {}
    if where.ends_after is not None:
        ends["$gt"] = where.ends_after
    if where.ends_by is not None:
        ends["$lte"] = where.ends_by
    if ends:
        query["ends_at"] = ends
    order = DESCENDING if descending else ASCENDING
    return list(_sales().find(query, _NO_HOLDS).sort("sort_key", order).limit(limit))


def sales_unpooled(created_before: datetime, limit: int) -> list[dict]:
    """Sales (of any merchant) whose creation was interrupted."""
    return list(_sales().find({"pooled": 0, "created_at": {"$lte": created_before}}, _NO_HOLDS).limit(limit))


def sales_ended_with_units(now: datetime, limit: int) -> list[dict]:
    """Ended sales (of any merchant) with free units to give back to their SKU."""
    return list(_sales().find({"tending": 1, "pooled": 1, "ends_at": {"$lte": now}, "available": {"$gt": 0}},
                              _NO_HOLDS).limit(limit))


def sales_settle_ended(now: datetime) -> int:
    """Ended sales with nothing free or held are settled: nothing can change them any more
    (units come back only from a hold). A second early, as an update's filter compares
    stored times by the whole second."""
    return _sales().update_many({"tending": 1, "pooled": 1, "ends_at": {"$lte": now - timedelta(seconds=1)},
                                 "available": 0, "reserved": 0}, {"$set": {"tending": 0}}).modified_count


def sales_unsynced(limit: int) -> list[dict]:
    return list(_sales().find({"unsynced": 1}, {"merchant_id": 1}).limit(limit))


def sales_holding(after_id: str, limit: int) -> list[dict]:
    """Sales (of any merchant) with units held by reservations, holds included, in id
    order after `after_id`."""
    query: dict = {"tending": 1, "pooled": 1, "reserved": {"$gt": 0}}
    if after_id:
        query["_id"] = {"$gt": after_id}
    return list(_sales().find(query, {"merchant_id": 1, "holds": 1}).sort("_id", ASCENDING).limit(limit))


# ---- the pool

def pool_take(merchant_id: str, sale_id: str, reservation_id: str, quantity: int, member_id: str,
              expires_ms: int, now: datetime, kind: str = rules.FLASH_SALE) -> dict | None:
    """The hot path: `quantity` free units to this reservation, inside the window, once.
    The sale after the write (without holds), or None when refused."""
    hold = f"holds.{reservation_id}"
    return _sales().find_one_and_update(
        {"_id": sale_id, "merchant_id": merchant_id, "pooled": 1, "kind": kind, "available": {"$gte": quantity},
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


# ---- the SKU's stock

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


def stock_follow_pool(merchant_id: str, sku_id: str, sale_id: str, applied: dict, sold: int,
                      returned: int) -> list[Movement] | None:
    """One compare-and-set on what the stock has followed: units sold since leave on_hand
    and reserved (COMMIT), units returned since go from reserved to available (POOL_IN),
    both out of the sale's hold, owing their movements in the same write. The movements
    owed, or None when another catch-up went first."""
    todo = rules.catch_up(sold, returned, int(applied["sold"]), int(applied["returned"]))
    movements = []
    if todo.sold:
        movements.append(Movement(stock_rules.COMMIT, sku_id, todo.sold, movement_reference(sale_id, sold)))
    if todo.returned:
        movements.append(Movement(stock_rules.POOL_IN, sku_id, todo.returned, movement_reference(sale_id, returned)))
    owed: dict = {}
    for movement in movements:
        owed |= repo._owe(movement)
    sync = f"pool_sync.{sale_id}"
    result = StockDoc._get_collection().update_one(
        {"_id": sku_id, "merchant_id": merchant_id, f"{sync}.sold": applied["sold"],
         f"{sync}.returned": applied["returned"]},
        {"$inc": {"on_hand": -todo.sold, "reserved": -todo.sold - todo.returned, "available": todo.returned,
                  f"holds.{sale_id}": -todo.sold - todo.returned, "pending_count": len(owed)},
         "$set": {sync: {"sold": sold, "returned": returned}, **owed, "updated_ms": now_ms()}})
    return movements if result.modified_count == 1 else None


def sale_mark_synced(merchant_id: str, sale_id: str, sold: int, returned: int) -> None:
    """Unless the pool moved on meanwhile (then it stays marked for the next catch-up)."""
    _sales().update_one({"_id": sale_id, "merchant_id": merchant_id, "sold": sold, "returned": returned,
                         "unsynced": 1}, {"$set": {"unsynced": 0}})


# ---- the port

def sale_of(doc: dict) -> FlashSale:
    sku = doc.get("sku") or {}
    return FlashSale(
        id=doc["_id"], merchant_id=doc["merchant_id"], idempotency_key=doc["idempotency_key"], title=doc["title"],
        product_id=doc["product_id"], sku_id=doc["sku_id"],
        sku=SaleSku(sku["code"], dict(sku.get("attributes") or {}), int(sku["list_price"]), sku.get("currency", ""),
                    sku["product_title"], tuple((t["tier"], int(t["price"])) for t in sku.get("tier_prices") or []),
                    int(sku.get("weight_g") or 0)),
        price=int(doc["price"]), currency=doc["currency"], units=int(doc["units"]),
        per_member_limit=int(doc["per_member_limit"]), starts_at=aware(doc["starts_at"]),
        ends_at=aware(doc["ends_at"]), sort_key=doc["sort_key"], created_at=aware(doc["created_at"]),
        live_session_id=doc.get("live_session_id", ""), available=int(doc["available"]),
        reserved=int(doc.get("reserved", 0)), sold=int(doc.get("sold", 0)), returned=int(doc.get("returned", 0)),
        pooled=bool(doc.get("pooled")), version=int(doc["version"]), kind=doc.get("kind") or rules.FLASH_SALE)


def _hold_of(raw: dict) -> PoolHold:
    return PoolHold(int(raw["q"]), raw["member_id"], int(raw["exp_ms"]))


def _sale_fields(sale: FlashSale) -> dict:
    sku = sale.sku
    return {
        "id": sale.id, "merchant_id": sale.merchant_id, "idempotency_key": sale.idempotency_key, "title": sale.title,
        "product_id": sale.product_id, "sku_id": sale.sku_id,
        "sku": {"code": sku.code, "attributes": sku.attributes, "list_price": sku.list_price,
                "currency": sku.currency, "product_title": sku.product_title,
                "tier_prices": [{"tier": t, "price": p} for t, p in sku.tier_prices], "weight_g": sku.weight_g},
        "price": sale.price, "currency": sale.currency, "units": sale.units, "available": sale.available,
        "reserved": sale.reserved, "sold": sale.sold, "returned": sale.returned,
        "per_member_limit": sale.per_member_limit, "starts_at": sale.starts_at, "ends_at": sale.ends_at,
        "live_session_id": sale.live_session_id, "sort_key": sale.sort_key, "pooled": int(sale.pooled),
        "unsynced": 0, "tending": 1, "holds": {}, "created_at": sale.created_at, "updated_ms": epoch_ms(sale.created_at),
        "version": sale.version, "kind": sale.kind}


def _stock_pool_out(merchant_id: str, change: StockChange) -> bool:
    return repo.stock_apply(merchant_id, change)


class MongoFlashSales:
    async def add(self, sale: FlashSale) -> bool:
        return await run_sync(sale_insert, _sale_fields(sale))

    async def by_key(self, merchant_id: str, key: str) -> FlashSale | None:
        doc = await run_sync(sale_by_key, merchant_id, key)
        return sale_of(doc) if doc else None

    async def get(self, merchant_id: str, sale_id: str) -> FlashSale | None:
        doc = await run_sync(sale_get, merchant_id, sale_id)
        return sale_of(doc) if doc else None

    async def mark_pooled(self, merchant_id: str, sale_id: str) -> None:
        await run_sync(sale_mark_pooled, merchant_id, sale_id)

    async def discard(self, merchant_id: str, sale_id: str) -> None:
        await run_sync(sale_discard, merchant_id, sale_id)

    async def page(self, merchant_id: str, *, live_session_id: str, after_key: str, ends_after: datetime,
                   limit: int, product_id: str = "") -> list[FlashSale]:
        docs = await run_sync(lambda: sales_page(merchant_id, live_session_id=live_session_id, after_key=after_key,
                                                 ends_after=ends_after, limit=limit, product_id=product_id))
        return [sale_of(d) for d in docs]

    async def staff_page(self, merchant_id: str, where: SaleFilter, after_key: str, descending: bool,
                         limit: int) -> list[FlashSale]:
        return [sale_of(d) for d in await run_sync(sales_staff_page, merchant_id, where, after_key, descending, limit)]

    async def unpooled(self, created_before: datetime, limit: int) -> list[FlashSale]:
        return [sale_of(d) for d in await run_sync(sales_unpooled, created_before, limit)]

    async def ended_with_units(self, now: datetime, limit: int) -> list[FlashSale]:
        return [sale_of(d) for d in await run_sync(sales_ended_with_units, now, limit)]

    async def unsynced(self, limit: int) -> list[tuple[str, str]]:
        return [(d["merchant_id"], d["_id"]) for d in await run_sync(sales_unsynced, limit)]

    async def settle_ended(self, now: datetime) -> int:
        return await run_sync(sales_settle_ended, now)

    async def holding(self, after_id: str, limit: int) -> list[SaleHolds]:
        return [SaleHolds(d["_id"], d["merchant_id"], {k: _hold_of(h) for k, h in (d.get("holds") or {}).items()})
                for d in await run_sync(sales_holding, after_id, limit)]

    async def take(self, merchant_id: str, sale_id: str, key: str, hold: PoolHold, now: datetime,
                   kind: str = rules.FLASH_SALE) -> FlashSale | None:
        doc = await run_sync(pool_take, merchant_id, sale_id, key, hold.quantity, hold.member_id, hold.expires_ms, now,
                             kind)
        return sale_of(doc) if doc else None

    async def take_again(self, merchant_id: str, sale_id: str, key: str, hold: PoolHold) -> bool:
        return await run_sync(pool_take_again, merchant_id, sale_id, key, hold.quantity, hold.member_id,
                              hold.expires_ms)

    async def hold_of(self, merchant_id: str, sale_id: str, key: str) -> PoolHold | None:
        raw = await run_sync(pool_hold, merchant_id, sale_id, key)
        return _hold_of(raw) if raw else None

    async def release(self, merchant_id: str, sale_id: str, key: str, quantity: int) -> bool:
        return await run_sync(pool_release, merchant_id, sale_id, key, quantity)

    async def sell(self, merchant_id: str, sale_id: str, key: str, quantity: int) -> bool:
        return await run_sync(pool_commit, merchant_id, sale_id, key, quantity)

    async def give_back(self, merchant_id: str, sale_id: str, quantity: int) -> bool:
        return await run_sync(pool_return, merchant_id, sale_id, quantity)

    async def count(self, merchant_id: str, sale_id: str, member_id: str, key: str, quantity: int,
                    limit: int) -> bool:
        return await run_sync(quota_take, merchant_id, sale_id, member_id, key, quantity, limit) != LIMIT

    async def uncount(self, merchant_id: str, sale_id: str, member_id: str, key: str, quantity: int) -> bool:
        return await run_sync(quota_release, merchant_id, sale_id, member_id, key, quantity)

    async def pool_out(self, merchant_id: str, change: StockChange) -> bool:
        return await run_sync(_stock_pool_out, merchant_id, change)

    async def counters(self, merchant_id: str, sale_id: str) -> PoolCounters | None:
        doc = await run_sync(pool_counters, merchant_id, sale_id)
        return PoolCounters(doc["_id"], doc["sku_id"], doc["product_id"], int(doc["sold"]),
                            int(doc["returned"])) if doc else None

    async def applied(self, merchant_id: str, sku_id: str, sale_id: str) -> Applied | None:
        raw = await run_sync(stock_pool_applied, merchant_id, sku_id, sale_id)
        return Applied(int(raw["sold"]), int(raw["returned"])) if raw else None

    async def follow(self, merchant_id: str, pool: PoolCounters, applied: Applied) -> list[Movement]:
        movements = await run_sync(stock_follow_pool, merchant_id, pool.sku_id, pool.sale_id,
                                   {"sold": applied.sold, "returned": applied.returned}, pool.sold, pool.returned)
        if movements is None:
            raise StaleVersion(f"the stock of {pool.sku_id} followed pool {pool.sale_id} meanwhile")
        return movements

    async def mark_synced(self, merchant_id: str, sale_id: str, sold: int, returned: int) -> None:
        await run_sync(sale_mark_synced, merchant_id, sale_id, sold, returned)
