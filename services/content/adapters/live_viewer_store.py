"""Live-session viewers and room purchases over MongoDB, implementing
services.content.application.live_viewer_ports.

- `live_viewers`: one record per member and session (`_id` "<merchant>:<session>:<member>");
  inserted unordered in one batch, a duplicate key means "counted already", and the
  figures' `unique` moves by `$inc` of the number actually inserted.
- `live_viewer_leases`: one per session and gateway process (`_id` "<merchant>:<session>:<gateway>"),
  its `concurrent` and `expires_ms` replaced by each report.
- `live_viewer_stats`: the figures of a session (`_id` "<merchant>:<session>"): `unique` by
  `$inc`, `concurrent` by `$set`, `peak` by `$max`; `ann_*` and `announced_ms` are what the
  room last heard, changed by one conditional update on `announced_ms` that carries the
  viewers_changed event in the same document's outbox.
- `live_purchases`: one per order told in the room (`_id` "<merchant>:<order>"), inserted
  with its someone_bought event; a duplicate key means "told already".

Every shape is in tests/conformance/test_live_room_shapes.py.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Mapping, Sequence

import mongoengine as me
from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError
from siyu.common.v1 import live_pb2

from siyu_kit.aggregate import StaleVersion
from siyu_kit.db import run_sync
from siyu_kit.events.documents import OutboxDocument
from siyu_kit.events.outbox import room_event_for
from siyu_kit.protos import timestamp
from siyu_kit.repository import insert_new, save_change

from services.content.application.clock import Clock, from_ms, now_ms
from services.content.application.live_viewer_ports import ViewerFigures
from services.content.domain.live_room import Figures, Lease, Purchase


LEASE_KEPT_S = 24 * 3600


class LiveViewerDoc(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    live_session_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    meta = {"collection": "live_viewers", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "member_id"]}]}


class LiveViewerLeaseDoc(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    live_session_id = me.StringField(required=True)
    expires_at = me.DateTimeField()
    # A lease a gateway stopped renewing counts for nothing once expired; MongoDB removes it
    # a day later (a restarted gateway takes a new id, so old leases would otherwise pile up).
    meta = {"collection": "live_viewer_leases", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "live_session_id"]},
                        {"fields": ["expires_at"], "expireAfterSeconds": LEASE_KEPT_S}]}


class LiveViewerStatsDoc(OutboxDocument):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    meta = {"collection": "live_viewer_stats", "auto_create_index": False,
            "indexes": [{"fields": ["outbox_pending"]}]}


class LivePurchaseDoc(OutboxDocument):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    meta = {"collection": "live_purchases", "auto_create_index": False,
            "indexes": [{"fields": ["outbox_pending"]}]}


def ensure_indexes() -> None:
    for doc in (LiveViewerDoc, LiveViewerLeaseDoc, LiveViewerStatsDoc, LivePurchaseDoc):
        doc.ensure_indexes()


def outbox_collections() -> list:
    return [LiveViewerStatsDoc._get_collection(), LivePurchaseDoc._get_collection()]


def _viewers():
    return LiveViewerDoc._get_collection()


def _leases():
    return LiveViewerLeaseDoc._get_collection()


def _stats():
    return LiveViewerStatsDoc._get_collection()


def _purchases():
    return LivePurchaseDoc._get_collection()


def stats_id(merchant_id: str, live_session_id: str) -> str:
    return f"{merchant_id}:{live_session_id}"


# ---- the storage calls (synchronous)

def add_viewers(col: Collection, merchant_id: str, live_session_id: str, member_ids: Sequence[str]) -> int:
    """Inserts a record per member not counted yet; the number inserted."""
    docs = [{"_id": f"{merchant_id}:{live_session_id}:{m}", "merchant_id": merchant_id,
             "live_session_id": live_session_id, "member_id": m} for m in member_ids]
    if not docs:
        return 0
    try:
        return len(col.insert_many(docs, ordered=False).inserted_ids)
    except BulkWriteError as error:
        details = error.details or {}
        others = [e for e in details.get("writeErrors", []) if e.get("code") != 11000]
        if others:
            raise
        return int(details.get("nInserted", 0))


def renew_lease(col: Collection, merchant_id: str, live_session_id: str, gateway_id: str, concurrent: int, expires_ms: int) -> None:
    col.update_one({"_id": f"{merchant_id}:{live_session_id}:{gateway_id}", "merchant_id": merchant_id},
                   {"$set": {"live_session_id": live_session_id, "gateway_id": gateway_id,
                             "concurrent": concurrent, "expires_ms": expires_ms,
                             "expires_at": datetime.fromtimestamp(expires_ms / 1000, timezone.utc)}}, upsert=True)


def leases(col: Collection, merchant_id: str, live_session_id: str) -> list[dict]:
    return list(col.find({"merchant_id": merchant_id, "live_session_id": live_session_id},
                               {"gateway_id": 1, "concurrent": 1, "expires_ms": 1}))


def record(col: Collection, merchant_id: str, live_session_id: str, new_unique: int, concurrent: int, now_ms: int) -> dict:
    query = {"_id": stats_id(merchant_id, live_session_id), "merchant_id": merchant_id}
    # No $setOnInsert (the embedded server ignores it): what is not there yet reads as 0.
    update = {"$inc": {"unique": new_unique}, "$max": {"peak": concurrent},
              "$set": {"live_session_id": live_session_id, "concurrent": concurrent, "updated_ms": now_ms}}
    for _ in range(2):
        try:
            return col.find_one_and_update(query, update, upsert=True, return_document=ReturnDocument.AFTER,
                                                projection={"outbox": 0})
        except DuplicateKeyError:
            continue  # two first reports raced: the record exists now, update it
    raise StaleVersion(f"live viewer figures of {live_session_id} could not be written")


def announce(col: Collection, merchant_id: str, live_session_id: str, figures: Figures, announced_ms: int, now_ms: int) -> bool:
    event = live_pb2.LiveRoomEvent(live_session_id=live_session_id, at=timestamp(from_ms(now_ms)),
                                   viewers_changed=live_pb2.LiveViewersChanged(
                                       concurrent_viewers=figures.concurrent, unique_viewers=figures.unique,
                                       peak_concurrent_viewers=figures.peak))
    try:
        # Never announced: the field is absent (never null), which `$exists: false` matches.
        last = announced_ms if announced_ms else {"$exists": False}
        save_change(col, {"_id": stats_id(merchant_id, live_session_id), "merchant_id": merchant_id,
                          "announced_ms": last},
                    {"$set": {"ann_unique": figures.unique, "ann_concurrent": figures.concurrent,
                              "ann_peak": figures.peak, "announced_ms": now_ms}},
                    [room_event_for(event, merchant_id=merchant_id, aggregate_id=live_session_id,
                                    aggregate_version=0, occurred_at=from_ms(now_ms))])
    except StaleVersion:
        return False  # another replica announced first
    return True


def figures_of(col: Collection, merchant_id: str, live_session_ids: Sequence[str]) -> list[dict]:
    ids = [stats_id(merchant_id, s) for s in live_session_ids]
    return list(col.find({"_id": {"$in": ids}, "merchant_id": merchant_id},
                              {"live_session_id": 1, "unique": 1, "concurrent": 1, "peak": 1}))


def add_purchase(col: Collection, purchase: Purchase) -> bool:
    line = live_pb2.LiveSomeoneBought(masked_nickname=purchase.masked_name, product_id=purchase.product_id,
                                      product_title=purchase.product_title, quantity=purchase.quantity)
    event = live_pb2.LiveRoomEvent(live_session_id=purchase.live_session_id, at=timestamp(from_ms(purchase.at_ms)),
                                   someone_bought=line)
    doc = {"_id": f"{purchase.merchant_id}:{purchase.order_id}", "merchant_id": purchase.merchant_id,
           "live_session_id": purchase.live_session_id, "order_id": purchase.order_id,
           "created_ms": purchase.at_ms}
    return insert_new(col, doc, [room_event_for(event, merchant_id=purchase.merchant_id,
                                                         aggregate_id=purchase.order_id, aggregate_version=1,
                                                         occurred_at=from_ms(purchase.at_ms))])


# ---- the ports

def _figures(doc: dict) -> Figures:
    return Figures(int(doc.get("unique", 0)), int(doc.get("concurrent", 0)), int(doc.get("peak", 0)))


class MongoLiveViewerStats:
    """LiveViewerStats (what the live sessions read) and ViewerReports (what reports write)."""

    def __init__(self, clock: Clock = now_ms):
        self.clock = clock

    async def figures(self, merchant_id: str, live_session_ids: Sequence[str]) -> Mapping[str, ViewerFigures]:
        if not live_session_ids:
            return {}
        docs = await run_sync(figures_of, _stats(), merchant_id, list(live_session_ids))
        return {d["live_session_id"]: ViewerFigures(unique=f.unique, concurrent=f.concurrent, peak=f.peak)
                for d in docs for f in [_figures(d)]}

    async def add_viewers(self, merchant_id: str, live_session_id: str, member_ids: Sequence[str]) -> int:
        return await run_sync(add_viewers, _viewers(), merchant_id, live_session_id, list(member_ids))

    async def renew_lease(self, merchant_id: str, live_session_id: str, lease: Lease) -> None:
        await run_sync(renew_lease, _leases(), merchant_id, live_session_id, lease.gateway_id, lease.concurrent,
                       lease.expires_ms)

    async def leases(self, merchant_id: str, live_session_id: str) -> list[Lease]:
        return [Lease(d.get("gateway_id", ""), int(d.get("concurrent", 0)), int(d.get("expires_ms", 0)))
                for d in await run_sync(leases, _leases(), merchant_id, live_session_id)]

    async def record(self, merchant_id: str, live_session_id: str, new_unique: int,
                     concurrent: int) -> tuple[Figures, Figures, int]:
        doc = await run_sync(record, _stats(), merchant_id, live_session_id, new_unique, concurrent, self.clock())
        announced = Figures(int(doc.get("ann_unique", 0)), int(doc.get("ann_concurrent", 0)),
                            int(doc.get("ann_peak", 0)))
        return _figures(doc), announced, int(doc.get("announced_ms", 0))

    async def announce(self, merchant_id: str, live_session_id: str, figures: Figures, announced_ms: int,
                       now_ms: int) -> bool:
        return await run_sync(announce, _stats(), merchant_id, live_session_id, figures, announced_ms, now_ms)


def sessions_watched(col: Collection, merchant_id: str, member_id: str) -> list[str]:
    return sorted(d["live_session_id"] for d in col.find({"merchant_id": merchant_id, "member_id": member_id},
                                                         {"live_session_id": 1}))


def forget_viewer(col: Collection, merchant_id: str, member_id: str) -> None:
    col.delete_many({"merchant_id": merchant_id, "member_id": member_id})


class MongoLiveViewing:
    """The sessions each member watched (who counted as a unique viewer): personal data."""

    async def sessions_watched(self, merchant_id: str, member_id: str) -> list[str]:
        return await run_sync(sessions_watched, _viewers(), merchant_id, member_id)

    async def forget(self, merchant_id: str, member_id: str) -> None:
        await run_sync(forget_viewer, _viewers(), merchant_id, member_id)


class MongoRoomPurchases:
    async def announce_once(self, purchase: Purchase) -> bool:
        try:
            return await run_sync(add_purchase, _purchases(), purchase)
        except DuplicateKeyError:
            return False
