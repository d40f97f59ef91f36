"""Live-room announcements of flash sales, on the flash sale's own document
(`flash_sales`): `room_ms` (when the room last heard of the sale; absent until its start
was announced) and `room_units` (the free units it heard of). Each announcement is one
conditional update on those two fields that puts the room event into the document's
outbox. Shapes in tests/conformance/test_live_room_shapes.py."""
from __future__ import annotations

from datetime import datetime, timezone

from pymongo.collection import Collection
from siyu.common.v1 import common_pb2, live_pb2

from siyu_kit.db import run_sync
from siyu_kit.events.outbox import add_to_update, committed, room_event_for
from siyu_kit.protos import aware, timestamp

from services.catalog.adapters.flash_sales import FlashSaleDoc
from services.catalog.domain.live_room import RoomSale

_FIELDS = {f: 1 for f in ("merchant_id", "live_session_id", "product_id", "sku_id", "price", "currency", "units",
                          "available", "ends_at", "room_ms", "room_units")}


def running(col: Collection, now: datetime, limit: int) -> list[dict]:
    """Pooled sales bound to a session whose window holds `now`, of every merchant (the
    tending index's range of sales not yet ended, not every sale ever bound to a session)."""
    return list(col.find({"tending": 1, "live_session_id": {"$gt": ""}, "pooled": 1, "starts_at": {"$lte": now},
                          "ends_at": {"$gt": now}}, _FIELDS).limit(limit))


def _announce(col: Collection, sale: RoomSale, guard: dict, units: int, now_ms: int,
              event: live_pb2.LiveRoomEvent) -> bool:
    update = add_to_update({"$set": {"room_ms": now_ms, "room_units": units}},
                           room_event_for(event, merchant_id=sale.merchant_id, aggregate_id=sale.id,
                                          aggregate_version=0))
    if col.update_one({"_id": sale.id, "merchant_id": sale.merchant_id, **guard}, update).modified_count != 1:
        return False
    committed(col, sale.id)
    return True


def announce_started(col: Collection, sale: RoomSale, now_ms: int, at: datetime) -> bool:
    started = live_pb2.LiveFlashSaleStarted(
        flash_sale_id=sale.id, product_id=sale.product_id, sku_id=sale.sku_id,
        price=common_pb2.Money(amount=sale.price, currency=sale.currency), total_units=sale.units,
        ends_at=timestamp(sale.ends_at))
    event = live_pb2.LiveRoomEvent(live_session_id=sale.live_session_id, at=timestamp(at),
                                   flash_sale_started=started)
    # The room heard of all the units: a sale that sold some before this tells the rest next.
    return _announce(col, sale, {"room_ms": {"$exists": False}}, sale.units, now_ms, event)


def announce_stock(col: Collection, sale: RoomSale, now_ms: int, at: datetime) -> bool:
    event = live_pb2.LiveRoomEvent(live_session_id=sale.live_session_id, at=timestamp(at),
                                   stock_left=live_pb2.LiveStockLeft(flash_sale_id=sale.id,
                                                                     available_units=sale.available))
    return _announce(col, sale, {"room_ms": sale.announced_ms, "room_units": sale.announced_units},
                     sale.available, now_ms, event)


def room_sale(doc: dict) -> RoomSale:
    return RoomSale(id=doc["_id"], merchant_id=doc["merchant_id"], live_session_id=doc["live_session_id"],
                    product_id=doc["product_id"], sku_id=doc["sku_id"], price=int(doc["price"]),
                    currency=doc["currency"], units=int(doc["units"]), available=int(doc["available"]),
                    ends_at=aware(doc["ends_at"]),
                    announced_ms=int(doc["room_ms"]) if doc.get("room_ms") is not None else None,
                    announced_units=int(doc.get("room_units", 0)))


def _sales() -> Collection:
    return FlashSaleDoc._get_collection()


class MongoRoomSales:
    async def running(self, now: datetime, limit: int) -> list[RoomSale]:
        return [room_sale(d) for d in await run_sync(running, _sales(), now, limit)]

    async def announce_started(self, sale: RoomSale, now_ms: int) -> bool:
        return await run_sync(announce_started, _sales(), sale, now_ms, _at(now_ms))

    async def announce_stock(self, sale: RoomSale, now_ms: int) -> bool:
        return await run_sync(announce_stock, _sales(), sale, now_ms, _at(now_ms))


def _at(now_ms: int) -> datetime:
    return datetime.fromtimestamp(now_ms / 1000, timezone.utc)
