"""Follows, follower counts and the published-content reads of feeds and persona pages.

A follow is one document per (merchant, member, persona) whose `active` flag is flipped by
conditional updates that carry the event; the persona's follower count then moves by one
conditional $inc. There are no transactions: a process that dies between the two writes
leaves the count one short of the follows (or one over for an unfollow) until staff
recount; the follows themselves, which the feed and the member's list read, are exact."""
from __future__ import annotations

from typing import Callable

from pymongo import ReturnDocument
from pymongo.collection import Collection

from siyu_kit.aggregate import StaleVersion
from siyu_kit.db import run_sync
from siyu_kit.repository import insert_new, save_change

from services.content.adapters.documents import ContentDoc, FollowDoc, PersonaDoc
from services.content.adapters.feed_messages import follow_event
from services.content.adapters.repositories import _content
from services.content.application.feed_ports import Follow
from services.content.domain.contents import Content


def follow_id(merchant_id: str, member_id: str, persona_id: str) -> str:
    return f"{merchant_id}:{member_id}:{persona_id}"


def follow_key(followed_ms: int, persona_id: str) -> str:
    return f"{followed_ms:015d}:{persona_id}"


class FollowStore:
    def __init__(self, collection: Callable[[], Collection] | None = None):
        self._col = collection or FollowDoc._get_collection

    async def follow(self, merchant_id: str, member_id: str, persona_id: str, now_ms: int) -> bool:
        return await run_sync(self._follow, merchant_id, member_id, persona_id, now_ms)

    def _follow(self, merchant_id: str, member_id: str, persona_id: str, now_ms: int) -> bool:
        key = follow_id(merchant_id, member_id, persona_id)
        fresh = {"_id": key, "merchant_id": merchant_id, "member_id": member_id, "persona_id": persona_id,
                 "active": 1, "followed_ms": now_ms, "follow_key": follow_key(now_ms, persona_id),
                 "changed_ms": now_ms, "version": 1}
        if insert_new(self._col(), fresh, [follow_event(True, merchant_id, member_id, persona_id, now_ms, 1)]):
            return True
        # Followed before: only a follow that is not active now flips.
        doc = self._col().find_one({"_id": key, "merchant_id": merchant_id}, {"version": 1, "active": 1})
        if doc is None or int(doc.get("active") or 0) == 1:
            return False
        version = int(doc.get("version") or 1)
        try:
            save_change(self._col(), {"_id": key, "merchant_id": merchant_id, "active": 0},
                        {"$set": {"active": 1, "followed_ms": now_ms, "follow_key": follow_key(now_ms, persona_id),
                                  "changed_ms": now_ms}},
                        [follow_event(True, merchant_id, member_id, persona_id, now_ms, version + 1)],
                        version=version)
        except StaleVersion:
            return False  # a concurrent follow (or unfollow) came first
        return True

    async def unfollow(self, merchant_id: str, member_id: str, persona_id: str, now_ms: int) -> bool:
        return await run_sync(self._unfollow, merchant_id, member_id, persona_id, now_ms)

    def _unfollow(self, merchant_id: str, member_id: str, persona_id: str, now_ms: int) -> bool:
        key = follow_id(merchant_id, member_id, persona_id)
        doc = self._col().find_one({"_id": key, "merchant_id": merchant_id}, {"version": 1, "active": 1})
        if doc is None or int(doc.get("active") or 0) != 1:
            return False
        version = int(doc.get("version") or 1)
        try:
            save_change(self._col(), {"_id": key, "merchant_id": merchant_id, "active": 1},
                        {"$set": {"active": 0, "changed_ms": now_ms}},
                        [follow_event(False, merchant_id, member_id, persona_id, now_ms, version + 1)],
                        version=version)
        except StaleVersion:
            return False
        return True

    async def is_following(self, merchant_id: str, member_id: str, persona_id: str) -> bool:
        doc = await run_sync(self._col().find_one, {"_id": follow_id(merchant_id, member_id, persona_id),
                                                    "merchant_id": merchant_id, "active": 1}, {"_id": 1})
        return doc is not None

    async def followed_ids(self, merchant_id: str, member_id: str, limit: int) -> list[str]:
        return [f.persona_id for _, f in await self.page(merchant_id, member_id, "", limit)]

    async def page(self, merchant_id: str, member_id: str, below: str, limit: int) -> list[tuple[str, Follow]]:
        return await run_sync(self._page, merchant_id, member_id, below, limit)

    def _page(self, merchant_id: str, member_id: str, below: str, limit: int) -> list[tuple[str, Follow]]:
        query: dict = {"merchant_id": merchant_id, "member_id": member_id, "active": 1}
        if below:
            query["follow_key"] = {"$lt": below}
        docs = self._col().find(query, {"persona_id": 1, "followed_ms": 1, "follow_key": 1}).sort(
            "follow_key", -1).limit(limit)
        return [(d["follow_key"], Follow(d["persona_id"], int(d["followed_ms"]))) for d in docs]

    async def remove_member(self, merchant_id: str, member_id: str) -> list[str]:
        return await run_sync(self._remove_member, merchant_id, member_id)

    def _remove_member(self, merchant_id: str, member_id: str) -> list[str]:
        unfollowed = []
        for doc in list(self._col().find({"merchant_id": merchant_id, "member_id": member_id},
                                         {"persona_id": 1, "active": 1})):
            # Conditional: of two deliveries of member.erased only one removes an active follow.
            if self._col().delete_one({"_id": doc["_id"], "merchant_id": merchant_id,
                                       "active": 1}).deleted_count == 1:
                unfollowed.append(doc["persona_id"])
        self._col().delete_many({"merchant_id": merchant_id, "member_id": member_id})
        return unfollowed


class FollowerCountStore:
    def __init__(self, collection: Callable[[], Collection] | None = None):
        self._col = collection or PersonaDoc._get_collection

    async def add(self, merchant_id: str, persona_id: str, delta: int) -> int:
        return await run_sync(self._add, merchant_id, persona_id, delta)

    def _add(self, merchant_id: str, persona_id: str, delta: int) -> int:
        query: dict = {"_id": persona_id, "merchant_id": merchant_id}
        if delta < 0:
            query["follower_count"] = {"$gte": -delta}  # never below zero
        doc = self._col().find_one_and_update(query, {"$inc": {"follower_count": delta}},
                                              projection={"follower_count": 1}, return_document=ReturnDocument.AFTER)
        if doc is None:
            doc = self._col().find_one({"_id": persona_id, "merchant_id": merchant_id}, {"follower_count": 1}) or {}
        return max(0, int(doc.get("follower_count") or 0))


class PublishedStore:
    def __init__(self, collection: Callable[[], Collection] | None = None):
        self._col = collection or ContentDoc._get_collection

    async def published(self, merchant_id: str, channel: str, persona_ids: list[str] | None, below: str,
                        limit: int) -> list[Content]:
        return await run_sync(self._published, merchant_id, channel, persona_ids, below, limit)

    def _published(self, merchant_id: str, channel: str, persona_ids: list[str] | None, below: str,
                   limit: int) -> list[Content]:
        query: dict = {"merchant_id": merchant_id, "status": "PUBLISHED"}
        if persona_ids is not None:
            query["persona_id"] = {"$in": persona_ids}
        if channel:
            query["visible_on"] = {"$in": [channel]}
        if below:
            query["feed_key"] = {"$lt": below}
        return [_content(d) for d in self._col().find(query, {"outbox": 0}).sort("feed_key", -1).limit(limit)]

    async def due(self, now_ms: int, limit: int) -> list[Content]:
        return await run_sync(self._due, now_ms, limit)

    def _due(self, now_ms: int, limit: int) -> list[Content]:
        return [_content(d) for d in self._col().find({"status": "SCHEDULED", "publish_at_ms": {"$lte": now_ms}},
                                                      {"outbox": 0}).sort("publish_at_ms", 1).limit(limit)]


def outbox_collections() -> list:
    return [ContentDoc._get_collection(), FollowDoc._get_collection()]
