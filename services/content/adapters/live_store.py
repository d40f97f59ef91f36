"""Live sessions in MongoDB (`live_sessions`), their like counter and its announcements,
and the like keys that make a tap count once (`live_like_keys`).

A session is one document carrying its room events in its outbox. Staff changes are
compare-and-set on `version`. The like counter is never read and written back: a like is
one conditional `$inc` of `likes` and `likes_pending` on a LIVE session, so the counter
never takes part in the version check and staff edits never collide with likes. The
announcer reads `likes` and `likes_pending` together (one document read) and in one
conditional update on the total announced before moves `likes_announced` to what it read,
takes what it read off `likes_pending` and puts likes_changed in the outbox: likes that
arrive in between stay pending for the next announcement, and of three replicas only one
announces each total."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable

from mongoengine import DateTimeField, Document, IntField, ListField, LongField, StringField
from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync
from siyu_kit.events.documents import OutboxDocument
from siyu_kit.events.outbox import add_to_update, committed
from siyu_kit.repository import insert_new, save_change

from services.content.adapters.live_messages import likes_event, session_events
from services.content.application.live_session_ports import LikesDue
from services.content.domain import live_sessions as rules
from services.content.domain.live_sessions import LineUpItem, LiveSession, SessionFields

# How long a like's key is kept: a client retries a batch of taps within seconds.
LIKE_KEY_TTL = timedelta(hours=1)


class LiveSessionDoc(OutboxDocument):
    meta = {"collection": "live_sessions", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "idempotency_key"], "unique": True},
                        # Staff lists (by persona and state) and the persona page, by schedule.
                        {"fields": ["merchant_id", "persona_id", "state", "schedule_key"]},
                        {"fields": ["merchant_id", "state", "schedule_key"]},
                        # The product screen: sessions whose line-up has a product.
                        {"fields": ["merchant_id", "product_ids", "state"]},
                        # The like announcer, over every merchant.
                        {"fields": ["likes_pending"]},
                        {"fields": ["outbox_pending"]}]}
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    idempotency_key = StringField(required=True)
    persona_id = StringField(required=True)
    title = StringField(required=True)
    cover_url = StringField(default="")
    state = StringField(required=True)
    scheduled_ms = LongField(required=True)
    # "<scheduled_ms, 15 digits>:<id>": the lists page and sort by it.
    schedule_key = StringField(required=True)
    # [{sku_id, product_id, live_price, currency}], replaced whole under the version check.
    line_up = ListField()
    product_ids = ListField(StringField())
    pinned_sku_id = StringField(default="")
    price_grace_minutes = IntField(default=0)
    started_ms = LongField(default=0)
    ended_ms = LongField(default=0)
    likes = LongField(default=0)
    likes_announced = LongField(default=0)
    likes_announced_ms = LongField(default=0)
    likes_pending = LongField(default=0)
    version = IntField(required=True)
    created_ms = LongField(required=True)
    updated_ms = LongField(required=True)


class LiveLikeKeyDoc(Document):
    """One batch of taps, counted: `_id` = merchant:session:member:key."""
    meta = {"collection": "live_like_keys", "auto_create_index": False,
            "indexes": [{"fields": ["expires_at"], "expireAfterSeconds": 0}]}
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    expires_at = DateTimeField(required=True)


def ensure_indexes() -> None:
    LiveSessionDoc.ensure_indexes()
    LiveLikeKeyDoc.ensure_indexes()


def outbox_collections() -> list[Collection]:
    return [LiveSessionDoc._get_collection()]


def _schedule_key(scheduled_ms: int, session_id: str) -> str:
    return f"{scheduled_ms:015d}:{session_id}"


def _fields_doc(session: LiveSession) -> dict:
    f = session.fields
    return {"title": f.title, "cover_url": f.cover_url, "scheduled_ms": f.scheduled_ms,
            "schedule_key": _schedule_key(f.scheduled_ms, session.id),
            "line_up": [{"sku_id": i.sku_id, "product_id": i.product_id, "live_price": i.live_price,
                         "currency": i.currency} for i in f.line_up],
            "product_ids": list(f.product_ids), "price_grace_minutes": f.price_grace_minutes,
            "state": session.state, "pinned_sku_id": session.pinned_sku_id, "started_ms": session.started_ms,
            "ended_ms": session.ended_ms, "updated_ms": session.updated_ms}


def _session(doc: dict) -> LiveSession:
    fields = SessionFields(
        persona_id=doc["persona_id"], title=doc["title"], scheduled_ms=int(doc["scheduled_ms"]),
        cover_url=doc.get("cover_url", ""), price_grace_minutes=int(doc.get("price_grace_minutes") or 0),
        line_up=tuple(LineUpItem(sku_id=i["sku_id"], live_price=int(i["live_price"]), currency=i.get("currency", "CNY"),
                                 product_id=i.get("product_id", "")) for i in doc.get("line_up") or ()))
    return LiveSession(id=doc["_id"], merchant_id=doc["merchant_id"], version=int(doc["version"]), fields=fields,
                       state=doc["state"], created_ms=int(doc["created_ms"]),
                       idempotency_key=doc.get("idempotency_key", ""), started_ms=int(doc.get("started_ms") or 0),
                       ended_ms=int(doc.get("ended_ms") or 0), pinned_sku_id=doc.get("pinned_sku_id", ""),
                       likes=int(doc.get("likes") or 0), updated_ms=int(doc.get("updated_ms") or 0))


_NO_OUTBOX = {"outbox": 0}


class LiveSessionStore:
    def __init__(self, collection: Callable[[], Collection] | None = None):
        self._col = collection or LiveSessionDoc._get_collection

    async def get(self, merchant_id: str, session_id: str) -> LiveSession | None:
        doc = await run_sync(self._col().find_one, {"_id": session_id, "merchant_id": merchant_id}, _NO_OUTBOX)
        return _session(doc) if doc else None

    async def by_key(self, merchant_id: str, idempotency_key: str) -> LiveSession | None:
        doc = await run_sync(self._col().find_one, {"merchant_id": merchant_id, "idempotency_key": idempotency_key},
                             _NO_OUTBOX)
        return _session(doc) if doc else None

    async def add(self, session: LiveSession) -> bool:
        doc = {"_id": session.id, "merchant_id": session.merchant_id, "idempotency_key": session.idempotency_key,
               "persona_id": session.fields.persona_id, **_fields_doc(session), "likes": 0, "likes_announced": 0,
               "likes_announced_ms": 0, "likes_pending": 0, "version": session.version,
               "created_ms": session.created_ms}
        return await run_sync(insert_new, self._col(), doc, session_events(session, session.version))

    async def save(self, session: LiveSession) -> None:
        version = session.next_version
        await run_sync(save_change, self._col(), {"_id": session.id, "merchant_id": session.merchant_id},
                       {"$set": _fields_doc(session)}, session_events(session, version), version=session.version)
        session.version = version

    async def page(self, merchant_id: str, persona_ids: list[str] | None, state: str, below: str,
                   limit: int) -> list[LiveSession]:
        query: dict = {"merchant_id": merchant_id}
        if persona_ids is not None:
            query["persona_id"] = {"$in": persona_ids}
        if state:
            query["state"] = state
        if below:
            query["schedule_key"] = {"$lt": below}
        return await run_sync(self._find, query, -1, limit)

    async def of_persona(self, merchant_id: str, persona_id: str, states: tuple[str, ...],
                         limit: int) -> list[LiveSession]:
        return await run_sync(self._find, {"merchant_id": merchant_id, "persona_id": persona_id,
                                           "state": {"$in": list(states)}}, 1, limit)

    async def of_product(self, merchant_id: str, product_id: str, states: tuple[str, ...],
                         limit: int) -> list[LiveSession]:
        # An indexed array field is matched with $in, never by equality (docs/storage.md).
        return await run_sync(self._find, {"merchant_id": merchant_id, "product_ids": {"$in": [product_id]},
                                           "state": {"$in": list(states)}}, 1, limit)

    def _find(self, query: dict, direction: int, limit: int) -> list[LiveSession]:
        return [_session(d) for d in self._col().find(query, _NO_OUTBOX).sort("schedule_key", direction).limit(limit)]


def like_key_id(merchant_id: str, session_id: str, member_id: str, idempotency_key: str) -> str:
    return f"{merchant_id}:{session_id}:{member_id}:{idempotency_key}"


class LiveLikeStore:
    """The like counter and its announcements (see the module's docstring)."""

    def __init__(self, sessions: Callable[[], Collection] | None = None,
                 keys: Callable[[], Collection] | None = None):
        self._sessions = sessions or LiveSessionDoc._get_collection
        self._keys = keys or LiveLikeKeyDoc._get_collection

    async def like(self, merchant_id: str, session_id: str, member_id: str, idempotency_key: str, taps: int,
                   now_ms: int) -> int | None:
        return await run_sync(self._like, merchant_id, session_id, member_id, idempotency_key, taps, now_ms)

    def _like(self, merchant_id: str, session_id: str, member_id: str, idempotency_key: str, taps: int,
              now_ms: int) -> int | None:
        key = like_key_id(merchant_id, session_id, member_id, idempotency_key)
        expires_at = datetime.fromtimestamp(now_ms / 1000, timezone.utc) + LIKE_KEY_TTL
        try:
            # The key first: a repeat finds it and counts nothing. A process that dies
            # between the two writes loses these taps, never counts them twice.
            self._keys().insert_one({"_id": key, "merchant_id": merchant_id, "expires_at": expires_at})
        except DuplicateKeyError:
            doc = self._sessions().find_one({"_id": session_id, "merchant_id": merchant_id}, {"likes": 1})
            return int(doc.get("likes") or 0) if doc else None
        doc = self._sessions().find_one_and_update(
            {"_id": session_id, "merchant_id": merchant_id, "state": rules.LIVE},
            {"$inc": {"likes": taps, "likes_pending": taps}}, projection={"likes": 1},
            return_document=ReturnDocument.AFTER)
        if doc is None:
            self._keys().delete_one({"_id": key, "merchant_id": merchant_id})  # not counted: the key is free again
            return None
        return int(doc.get("likes") or 0)

    async def due(self, limit: int) -> list[LikesDue]:
        return await run_sync(self._due, limit)

    def _due(self, limit: int) -> list[LikesDue]:
        # Longest unannounced first, so rooms liked right now never crowd the others out.
        docs = self._sessions().find({"likes_pending": {"$gt": 0}},
                                     {"merchant_id": 1, "likes": 1, "likes_announced": 1, "likes_announced_ms": 1,
                                      "version": 1}).sort("likes_announced_ms", 1).limit(limit)
        return [LikesDue(merchant_id=d["merchant_id"], session_id=d["_id"], likes=int(d.get("likes") or 0),
                         announced=int(d.get("likes_announced") or 0),
                         announced_ms=int(d.get("likes_announced_ms") or 0), version=int(d.get("version") or 1))
                for d in docs]

    async def announce(self, due: LikesDue, now_ms: int) -> bool:
        return await run_sync(self._announce, due, now_ms)

    def _announce(self, due: LikesDue, now_ms: int) -> bool:
        update = add_to_update({"$set": {"likes_announced": due.likes, "likes_announced_ms": now_ms},
                                "$inc": {"likes_pending": due.announced - due.likes}},
                               likes_event(due.merchant_id, due.session_id, due.version, due.likes, now_ms))
        result = self._sessions().update_one({"_id": due.session_id, "merchant_id": due.merchant_id,
                                              "likes_announced": due.announced,
                                              "likes_announced_ms": due.announced_ms}, update)
        if result.modified_count != 1:
            return False  # another replica announced first
        committed(self._sessions(), due.session_id)
        return True
