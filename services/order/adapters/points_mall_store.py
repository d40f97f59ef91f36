"""Points mall items over MongoDB (collection points_mall_items), implementing
services.order.application.points_mall.PointsMallItems.

Units are not kept here: they are the item's catalog pool's. The document carries the
item's terms, its window also as epoch milliseconds (`starts_ms`, `ends_ms`, exact
ranges), `version` for staff edits, and `key` "<merchant>:<idempotency key>" (unique), so
a retried create answers the first item. Every shape is in
tests/conformance/test_points_mall_shapes.py.
"""
from __future__ import annotations

from datetime import datetime

from mongoengine import Document, IntField, StringField
from pymongo import DESCENDING
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from siyu_kit.aggregate import StaleVersion
from siyu_kit.db import run_sync
from siyu_kit.protos import aware, epoch_ms

from services.order.application.points_mall import PointsMallItems
from services.order.domain.points_mall import ItemState, PointsMallItem


class PointsMallItemDoc(Document):
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    key = StringField(required=True, unique=True)
    state = StringField(required=True)
    ends_ms = IntField()
    meta = {"collection": "points_mall_items", "strict": False,
            "indexes": [{"fields": ["merchant_id", "state", "ends_ms"]}]}


def ensure_indexes() -> None:
    PointsMallItemDoc.ensure_indexes()


def _items() -> Collection:
    return PointsMallItemDoc._get_collection()


def item_doc(item: PointsMallItem) -> dict:
    return {"_id": item.id, "merchant_id": item.merchant_id, "key": f"{item.merchant_id}:{item.idempotency_key}",
            "pool_id": item.pool_id, "sku_id": item.sku_id, "product_id": item.product_id, "title": item.title,
            "points_price": item.points_price, "cash_price": item.cash_price, "list_price": item.list_price,
            "total_units": item.total_units, "per_member_limit": item.per_member_limit,
            "starts_at": item.starts_at, "ends_at": item.ends_at, "starts_ms": epoch_ms(item.starts_at),
            "ends_ms": epoch_ms(item.ends_at), "state": item.state.value, "version": item.version,
            "created_at": item.created_at}


def item_of(doc: dict) -> PointsMallItem:
    return PointsMallItem(
        id=doc["_id"], merchant_id=doc["merchant_id"], version=int(doc["version"]), pool_id=doc["pool_id"],
        sku_id=doc["sku_id"], product_id=doc.get("product_id") or "", title=doc.get("title") or "",
        points_price=int(doc["points_price"]), cash_price=int(doc["cash_price"]),
        list_price=int(doc.get("list_price") or 0), total_units=int(doc["total_units"]),
        per_member_limit=int(doc["per_member_limit"]), starts_at=aware(doc["starts_at"]),
        ends_at=aware(doc["ends_at"]), state=ItemState(doc["state"]), created_at=aware(doc["created_at"]),
        idempotency_key=doc["key"].split(":", 1)[1])


# ---- the query shapes (tests/conformance/test_points_mall_shapes.py runs each) ----------------

def save_update(item: PointsMallItem) -> tuple[dict, dict]:
    return ({"_id": item.id, "merchant_id": item.merchant_id, "version": item.version},
            {"$set": {"title": item.title, "points_price": item.points_price, "state": item.state.value},
             "$inc": {"version": 1}})


def page_query(merchant_id: str, after: str, open_ms: int | None) -> dict:
    query: dict = {"merchant_id": merchant_id}
    if after:
        query["_id"] = {"$lt": after}
    if open_ms is not None:
        query.update({"state": ItemState.ACTIVE.value, "starts_ms": {"$lte": open_ms}, "ends_ms": {"$gt": open_ms}})
    return query


class MongoPointsMallItems(PointsMallItems):
    async def add(self, item: PointsMallItem) -> PointsMallItem:
        def insert() -> dict:
            try:
                _items().insert_one(item_doc(item))
                return item_doc(item)
            except DuplicateKeyError:
                return _items().find_one({"key": f"{item.merchant_id}:{item.idempotency_key}"})
        return item_of(await run_sync(insert))

    async def get(self, merchant_id: str, item_id: str) -> PointsMallItem | None:
        doc = await run_sync(_items().find_one, {"_id": item_id, "merchant_id": merchant_id})
        return item_of(doc) if doc else None

    async def save(self, item: PointsMallItem) -> None:
        if (await run_sync(_items().update_one, *save_update(item))).modified_count != 1:
            raise StaleVersion(f"points-mall item {item.id} changed since it was read")

    async def page(self, merchant_id: str, after: str, limit: int,
                   open_at: datetime | None) -> list[PointsMallItem]:
        def read() -> list[dict]:
            query = page_query(merchant_id, after, epoch_ms(open_at) if open_at else None)
            return list(_items().find(query).sort("_id", DESCENDING).limit(limit))
        return [item_of(d) for d in await run_sync(read)]
