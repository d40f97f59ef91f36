"""Engagement over MongoDB, implementing services.content.application.engagement_ports.

Every counter is guarded by a unique key and moves by one `$inc` only when its key
changed: a view (`content_views`, `_id` "<merchant>:<content>:<member>:<day>", inserted
once), a like (`content_likes`, `_id` "<merchant>:<content>:<member>", `liked` 0/1 set
conditionally), a report (`comment_reports`, `_id` "<comment>:<member>"), a click
(`share_open_days`, `_id` "<merchant>:<code>:<opener>:<day>"). Per-content counters live in
`content_stats` (`_id` the content id). Comments (`comments`) change status by
compare-and-set on `version`; reports move `report_count` by `$inc` and hide a comment by
one conditional update. Every shape is in tests/conformance/test_engagement_shapes.py.
"""
from __future__ import annotations

from typing import Sequence

import mongoengine as me
from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from siyu_kit.aggregate import StaleVersion
from siyu_kit.db import run_sync
from siyu_kit.events.documents import OutboxDocument
from siyu_kit.events.outbox import Event
from siyu_kit.ids import new_id
from siyu_kit.repository import insert_new, save_change

from services.content.adapters.share_open_messages import opened_events
from services.content.application.engagement_ports import AuditEntry, Counts
from services.content.domain.engagement import (HELD, HIDDEN, PUBLISHED, REJECTED, Comment, EngagementSettings,
                                                ShareCode, ShareTarget)
from services.content.domain.share_opens import ShareCodeWasOpened

STAT_FIELDS = ("views", "likes", "comments", "shares")


class ContentViewDoc(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    meta = {"collection": "content_views", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "member_id"]}]}


class ContentLikeDoc(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    meta = {"collection": "content_likes", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "member_id"]}]}


class ContentStatsDoc(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    meta = {"collection": "content_stats", "auto_create_index": False}


class CommentDoc(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    key = me.StringField(required=True)  # "<member>:<idempotency key>"
    content_id = me.StringField(required=True)
    member_id = me.StringField()
    status = me.StringField(required=True)
    meta = {"collection": "comments", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "key"], "unique": True},
                        {"fields": ["merchant_id", "content_id"]},
                        {"fields": ["merchant_id", "status"]},
                        {"fields": ["merchant_id", "member_id"]}]}


class CommentReportDoc(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    meta = {"collection": "comment_reports", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "member_id"]}]}


class EngagementSettingsDoc(me.Document):
    id = me.StringField(primary_key=True)  # the merchant id
    meta = {"collection": "engagement_settings", "auto_create_index": False}


class EngagementAuditDoc(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    target_id = me.StringField(required=True)
    meta = {"collection": "engagement_audit", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "target_id"]}]}


class ShareCodeDoc(me.Document):
    id = me.StringField(primary_key=True)  # the code: unique across merchants
    merchant_id = me.StringField(required=True)
    dedup_key = me.StringField(required=True)
    sharer_id = me.StringField()
    meta = {"collection": "share_codes", "auto_create_index": False,
            "indexes": [{"fields": ["dedup_key"], "unique": True}, {"fields": ["merchant_id", "sharer_id"]}]}


class ShareOpenDoc(OutboxDocument):
    """Every open, logged cheaply (one insert); a signed-in member's open carries
    ShareCodeOpened in its outbox."""
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    member_id = me.StringField()
    meta = {"collection": "share_opens", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "member_id"]}, {"fields": ["outbox_pending"]}]}


class ShareOpenDayDoc(me.Document):
    id = me.StringField(primary_key=True)
    meta = {"collection": "share_open_days", "auto_create_index": False}


class ShareMemberOpenDoc(me.Document):
    id = me.StringField(primary_key=True)  # "<merchant>:<code>:<member>"
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    meta = {"collection": "share_member_opens", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "member_id"]}]}


ALL = (ContentViewDoc, ContentLikeDoc, ContentStatsDoc, CommentDoc, CommentReportDoc, EngagementSettingsDoc,
       EngagementAuditDoc, ShareCodeDoc, ShareOpenDoc, ShareOpenDayDoc, ShareMemberOpenDoc)


def ensure_indexes() -> None:
    for doc in ALL:
        doc.ensure_indexes()


def _col(doc) -> Collection:
    return doc._get_collection()


# ---- counters ---------------------------------------------------------------------------

def bump_stat(stats: Collection, merchant_id: str, content_id: str, name: str, by: int) -> None:
    """One `$inc` of a content counter, creating its document on first use. On MongoDB two
    first upserts may race: the loser gets DuplicateKeyError and increments the document
    the winner created."""
    query = {"_id": content_id, "merchant_id": merchant_id}
    try:
        stats.update_one(query, {"$inc": {name: by}}, upsert=True)
    except DuplicateKeyError:
        stats.update_one(query, {"$inc": {name: by}})


def read_counts(stats: Collection, merchant_id: str, content_ids: list[str]) -> dict[str, Counts]:
    docs = stats.find({"merchant_id": merchant_id, "_id": {"$in": list(content_ids)}})
    return {d["_id"]: Counts(*(max(0, int(d.get(n) or 0)) for n in STAT_FIELDS)) for d in docs}


def add_view(views: Collection, stats: Collection, merchant_id: str, content_id: str, member_id: str,
             day: str, at_ms: int) -> bool:
    try:
        views.insert_one({"_id": f"{merchant_id}:{content_id}:{member_id}:{day}", "merchant_id": merchant_id,
                          "member_id": member_id, "content_id": content_id, "day": day, "at_ms": at_ms})
    except DuplicateKeyError:
        return False
    bump_stat(stats, merchant_id, content_id, "views", 1)
    return True


def like_id(merchant_id: str, content_id: str, member_id: str) -> str:
    return f"{merchant_id}:{content_id}:{member_id}"


def set_like(likes: Collection, stats: Collection, merchant_id: str, content_id: str, member_id: str, liked: bool,
             at_ms: int) -> bool:
    """The like's state moves by one conditional write (insert, or `liked` flipped only
    from the other value); the count follows only a real move."""
    key = like_id(merchant_id, content_id, member_id)
    want, other = (1, 0) if liked else (0, 1)
    changed = likes.update_one({"_id": key, "merchant_id": merchant_id, "liked": other},
                               {"$set": {"liked": want, "updated_ms": at_ms}}).modified_count == 1
    if not changed and liked:
        try:
            likes.insert_one({"_id": key, "merchant_id": merchant_id, "member_id": member_id,
                              "content_id": content_id, "liked": 1, "updated_ms": at_ms})
            changed = True
        except DuplicateKeyError:
            changed = False
    if changed:
        bump_stat(stats, merchant_id, content_id, "likes", 1 if liked else -1)
    return changed


class MongoReactions:
    async def add_view(self, merchant_id: str, content_id: str, member_id: str, day: str, at_ms: int) -> bool:
        return await run_sync(add_view, _col(ContentViewDoc), _col(ContentStatsDoc), merchant_id, content_id,
                              member_id, day, at_ms)

    async def set_like(self, merchant_id: str, content_id: str, member_id: str, liked: bool, at_ms: int) -> bool:
        return await run_sync(set_like, _col(ContentLikeDoc), _col(ContentStatsDoc), merchant_id, content_id,
                              member_id, liked, at_ms)

    async def bump(self, merchant_id: str, content_id: str, name: str, by: int) -> None:
        await run_sync(bump_stat, _col(ContentStatsDoc), merchant_id, content_id, name, by)

    async def counts(self, merchant_id: str, content_ids: list[str]) -> dict[str, Counts]:
        return await run_sync(read_counts, _col(ContentStatsDoc), merchant_id, content_ids)

    async def liked(self, merchant_id: str, content_id: str, member_id: str) -> bool:
        doc = await run_sync(_col(ContentLikeDoc).find_one, {"_id": like_id(merchant_id, content_id, member_id),
                                                             "merchant_id": merchant_id})
        return bool(doc and doc.get("liked"))

    async def export_member(self, merchant_id: str, member_id: str) -> tuple[list[dict], list[dict]]:
        query = {"merchant_id": merchant_id, "member_id": member_id}
        views = await run_sync(lambda: list(_col(ContentViewDoc).find(query)))
        likes = await run_sync(lambda: list(_col(ContentLikeDoc).find({**query, "liked": 1})))
        return ([{"content_id": d["content_id"], "day": d["day"], "at_ms": d["at_ms"]} for d in views],
                [{"content_id": d["content_id"], "at_ms": d["updated_ms"]} for d in likes])

    async def erase_member(self, merchant_id: str, member_id: str) -> list[str]:
        return await run_sync(erase_reactions, _col(ContentViewDoc), _col(ContentLikeDoc), merchant_id, member_id)


def erase_reactions(views: Collection, likes: Collection, merchant_id: str, member_id: str) -> list[str]:
    """Deletes the member's views and likes; the content whose like went with them. Each
    like is deleted by one conditional delete, so a rerun takes no like back twice."""
    views.delete_many({"merchant_id": merchant_id, "member_id": member_id})
    taken_back = []
    for doc in list(likes.find({"merchant_id": merchant_id, "member_id": member_id})):
        if likes.delete_one({"_id": doc["_id"], "merchant_id": merchant_id}).deleted_count == 1 and doc.get("liked"):
            taken_back.append(doc["content_id"])
    return taken_back


# ---- comments ---------------------------------------------------------------------------

def comment_doc(c: Comment) -> dict:
    return {"_id": c.id, "merchant_id": c.merchant_id, "version": c.version, "content_id": c.content_id,
            "member_id": c.member_id, "text": c.text, "status": c.status, "created_ms": c.created_ms,
            "matched_words": list(c.matched_words), "report_count": c.report_count,
            "moderation_reason": c.moderation_reason, "moderated_by": c.moderated_by,
            "idempotency_key": c.idempotency_key, "key": f"{c.member_id}:{c.idempotency_key}"}


def comment_of(d: dict) -> Comment:
    return Comment(id=d["_id"], merchant_id=d["merchant_id"], version=int(d["version"]), content_id=d["content_id"],
                   member_id=d.get("member_id", ""), text=d.get("text", ""), status=d["status"],
                   created_ms=int(d["created_ms"]), matched_words=tuple(d.get("matched_words") or ()),
                   report_count=int(d.get("report_count") or 0), moderation_reason=d.get("moderation_reason", ""),
                   moderated_by=d.get("moderated_by", ""), idempotency_key=d.get("idempotency_key", ""))


def visible_query(merchant_id: str, content_id: str, member_id: str, after_id: str) -> dict:
    shown: list[dict] = [{"status": PUBLISHED}]
    if member_id:
        shown.append({"member_id": member_id, "status": {"$in": [HELD, HIDDEN]}})
    query: dict = {"merchant_id": merchant_id, "content_id": content_id, "$or": shown}
    if after_id:
        query["_id"] = {"$lt": after_id}
    return query


def review_query(merchant_id: str, statuses: tuple[str, ...], after_id: str) -> dict:
    query: dict = {"merchant_id": merchant_id, "status": {"$in": list(statuses)}}
    if after_id:
        query["_id"] = {"$gt": after_id}
    return query


def add_report(reports: Collection, comments: Collection, merchant_id: str, comment_id: str, member_id: str,
               reason: str, at_ms: int) -> bool:
    try:
        reports.insert_one({"_id": f"{comment_id}:{member_id}", "merchant_id": merchant_id, "member_id": member_id,
                            "comment_id": comment_id, "reason": reason, "at_ms": at_ms})
    except DuplicateKeyError:
        return False
    comments.update_one({"_id": comment_id, "merchant_id": merchant_id}, {"$inc": {"report_count": 1}})
    return True


def hide_query(merchant_id: str, comment_id: str, threshold: int) -> dict:
    return {"_id": comment_id, "merchant_id": merchant_id, "status": PUBLISHED, "report_count": {"$gte": threshold}}


HIDE_UPDATE = {"$set": {"status": HIDDEN, "moderation_reason": "reported"}, "$inc": {"version": 1}}


class MongoComments:
    async def get(self, merchant_id: str, comment_id: str) -> Comment | None:
        doc = await run_sync(_col(CommentDoc).find_one, {"_id": comment_id, "merchant_id": merchant_id})
        return comment_of(doc) if doc else None

    async def by_key(self, merchant_id: str, member_id: str, idempotency_key: str) -> Comment | None:
        doc = await run_sync(_col(CommentDoc).find_one,
                             {"merchant_id": merchant_id, "key": f"{member_id}:{idempotency_key}"})
        return comment_of(doc) if doc else None

    async def add(self, comment: Comment) -> bool:
        try:
            await run_sync(_col(CommentDoc).insert_one, comment_doc(comment))
        except DuplicateKeyError:
            return False
        return True

    async def save(self, comment: Comment) -> None:
        # The report count moves by $inc of its own and is never written back from here.
        await run_sync(save_change, _col(CommentDoc), {"_id": comment.id, "merchant_id": comment.merchant_id},
                       {"$set": {"status": comment.status, "moderation_reason": comment.moderation_reason,
                                 "moderated_by": comment.moderated_by}}, version=comment.version)
        comment.version = comment.next_version

    async def visible_page(self, merchant_id: str, content_id: str, member_id: str, after_id: str,
                           limit: int) -> list[Comment]:
        query = visible_query(merchant_id, content_id, member_id, after_id)
        docs = await run_sync(lambda: list(_col(CommentDoc).find(query).sort("_id", DESCENDING).limit(limit)))
        return [comment_of(d) for d in docs]

    async def review_page(self, merchant_id: str, statuses: tuple[str, ...], after_id: str,
                          limit: int) -> list[Comment]:
        query = review_query(merchant_id, statuses, after_id)
        docs = await run_sync(lambda: list(_col(CommentDoc).find(query).sort("_id", ASCENDING).limit(limit)))
        return [comment_of(d) for d in docs]

    async def add_report(self, merchant_id: str, comment_id: str, member_id: str, reason: str, at_ms: int) -> bool:
        return await run_sync(add_report, _col(CommentReportDoc), _col(CommentDoc), merchant_id, comment_id,
                              member_id, reason, at_ms)

    async def hide_if_reported(self, merchant_id: str, comment_id: str, threshold: int) -> bool:
        result = await run_sync(_col(CommentDoc).update_one, hide_query(merchant_id, comment_id, threshold),
                                HIDE_UPDATE)
        return result.modified_count == 1

    async def export_member(self, merchant_id: str, member_id: str) -> tuple[list[dict], list[dict]]:
        query = {"merchant_id": merchant_id, "member_id": member_id}
        comments = await run_sync(lambda: list(_col(CommentDoc).find(query).sort("_id", ASCENDING)))
        reports = await run_sync(lambda: list(_col(CommentReportDoc).find(query)))
        return ([{"comment_id": d["_id"], "content_id": d["content_id"], "text": d["text"], "status": d["status"],
                  "created_ms": d["created_ms"]} for d in comments],
                [{"comment_id": d["comment_id"], "reason": d.get("reason", ""), "at_ms": d["at_ms"]}
                 for d in reports])

    async def erase_member(self, merchant_id: str, member_id: str) -> list[tuple[str, str]]:
        return await run_sync(erase_comments, _col(CommentDoc), _col(CommentReportDoc), merchant_id, member_id)


def erase_comments(comments: Collection, reports: Collection, merchant_id: str,
                   member_id: str) -> list[tuple[str, str]]:
    changed = []
    for doc in list(comments.find({"merchant_id": merchant_id, "member_id": member_id})):
        # Conditional on the status read, so a concurrent moderation is not overwritten
        # unseen and each comment's count moves once.
        result = comments.update_one(
            {"_id": doc["_id"], "merchant_id": merchant_id, "member_id": member_id, "status": doc["status"]},
            {"$set": {"member_id": "", "text": "", "status": REJECTED, "moderation_reason": "author erased",
                      "key": f"erased:{doc['_id']}", "idempotency_key": ""}, "$inc": {"version": 1}})
        if result.modified_count == 1:
            changed.append((doc["content_id"], doc["status"]))
    reports.delete_many({"merchant_id": merchant_id, "member_id": member_id})
    return changed


# ---- settings and audit -----------------------------------------------------------------

def settings_of(doc: dict | None) -> tuple[EngagementSettings, int]:
    if not doc:
        return EngagementSettings(), 0
    return EngagementSettings(tuple(doc.get("sensitive_words") or ()), int(doc["report_hide_threshold"]),
                              int(doc["attribution_window_days"])), int(doc["version"])


def save_settings(col: Collection, merchant_id: str, s: EngagementSettings, expected_version: int,
                  updated_ms: int) -> bool:
    fields = {"sensitive_words": list(s.sensitive_words), "report_hide_threshold": s.report_hide_threshold,
              "attribution_window_days": s.attribution_window_days, "updated_ms": updated_ms}
    if expected_version == 0:
        try:
            col.insert_one({"_id": merchant_id, "merchant_id": merchant_id, "version": 1, **fields})
        except DuplicateKeyError:
            return False
        return True
    try:
        save_change(col, {"_id": merchant_id, "merchant_id": merchant_id}, {"$set": fields}, version=expected_version)
    except StaleVersion:
        return False
    return True


class MongoSettings:
    async def get(self, merchant_id: str) -> tuple[EngagementSettings, int]:
        return settings_of(await run_sync(_col(EngagementSettingsDoc).find_one,
                                          {"_id": merchant_id, "merchant_id": merchant_id}))

    async def save(self, merchant_id: str, settings: EngagementSettings, expected_version: int,
                   updated_ms: int) -> bool:
        return await run_sync(save_settings, _col(EngagementSettingsDoc), merchant_id, settings, expected_version,
                              updated_ms)


class MongoAudit:
    async def add(self, e: AuditEntry) -> None:
        await run_sync(_col(EngagementAuditDoc).insert_one, {
            "_id": e.id, "merchant_id": e.merchant_id, "actor_kind": e.actor_kind, "actor_id": e.actor_id,
            "action": e.action, "target_id": e.target_id, "before": e.before, "after": e.after, "at_ms": e.at_ms})


# ---- share codes ------------------------------------------------------------------------

def share_doc(s: ShareCode) -> dict:
    t = s.target
    return {"_id": s.code, "merchant_id": s.merchant_id, "dedup_key": s.dedup_key, "target_kind": t.kind,
            "target_id": t.target_id, "persona_id": t.persona_id, "content_id": t.content_id,
            "product_id": t.product_id, "live_session_id": t.live_session_id, "sharer_kind": s.sharer_kind,
            "sharer_id": s.sharer_id, "created_ms": s.created_ms, "day": s.day, "click_count": 0}


def share_of(d: dict) -> ShareCode:
    return ShareCode(code=d["_id"], merchant_id=d["merchant_id"], target=ShareTarget(
        d["target_kind"], d["target_id"], d.get("persona_id", ""), d.get("content_id", ""), d.get("product_id", ""),
        d.get("live_session_id", "")), sharer_kind=d["sharer_kind"], sharer_id=d.get("sharer_id", ""),
        created_ms=int(d["created_ms"]), day=d["day"], click_count=int(d.get("click_count") or 0))


def add_share(codes: Collection, share: ShareCode) -> str:
    try:
        codes.insert_one(share_doc(share))
    except DuplicateKeyError:
        # Which key clashed: a code is taken when another document holds it.
        taken = codes.find_one({"_id": share.code}, {"dedup_key": 1})
        return "code_taken" if taken is not None and taken.get("dedup_key") != share.dedup_key else "key_taken"
    return "added"


def record_open(codes: Collection, opens: Collection, days: Collection, member_opens: Collection, merchant_id: str,
                code: str, opener: str, member_id: str, day: str, at_ms: int, open_id: str,
                events: Sequence[Event] = ()) -> bool:
    # The open's record and its event are one insert: the event goes out once per open.
    insert_new(opens, {"_id": open_id, "merchant_id": merchant_id, "code": code, "opener": opener,
                       "member_id": member_id, "at_ms": at_ms}, events)
    if member_id:
        key = {"_id": f"{merchant_id}:{code}:{member_id}", "merchant_id": merchant_id}
        try:
            member_opens.update_one(key, {"$set": {"member_id": member_id, "code": code, "last_ms": at_ms}},
                                    upsert=True)
        except DuplicateKeyError:
            member_opens.update_one(key, {"$set": {"member_id": member_id, "code": code, "last_ms": at_ms}})
    try:
        days.insert_one({"_id": f"{merchant_id}:{code}:{opener}:{day}", "merchant_id": merchant_id,
                         "member_id": member_id})
    except DuplicateKeyError:
        return False
    codes.update_one({"_id": code, "merchant_id": merchant_id}, {"$inc": {"click_count": 1}})
    return True


class MongoShareCodes:
    async def get(self, merchant_id: str, code: str) -> ShareCode | None:
        doc = await run_sync(_col(ShareCodeDoc).find_one, {"_id": code, "merchant_id": merchant_id})
        return share_of(doc) if doc else None

    async def by_dedup_key(self, dedup_key: str) -> ShareCode | None:
        doc = await run_sync(_col(ShareCodeDoc).find_one, {"dedup_key": dedup_key})
        return share_of(doc) if doc else None

    async def add(self, share: ShareCode) -> str:
        return await run_sync(add_share, _col(ShareCodeDoc), share)

    async def record_open(self, merchant_id: str, code: str, opener: str, member_id: str, day: str,
                          at_ms: int, opened: ShareCodeWasOpened | None = None) -> bool:
        return await run_sync(record_open, _col(ShareCodeDoc), _col(ShareOpenDoc), _col(ShareOpenDayDoc),
                              _col(ShareMemberOpenDoc), merchant_id, code, opener, member_id, day, at_ms,
                              new_id("sho"), opened_events(merchant_id, opened))

    async def last_opened_ms(self, merchant_id: str, code: str, member_id: str) -> int:
        doc = await run_sync(_col(ShareMemberOpenDoc).find_one,
                             {"_id": f"{merchant_id}:{code}:{member_id}", "merchant_id": merchant_id})
        return int(doc["last_ms"]) if doc else 0

    async def export_member(self, merchant_id: str, member_id: str) -> tuple[list[dict], list[dict]]:
        codes = await run_sync(lambda: list(_col(ShareCodeDoc).find(
            {"merchant_id": merchant_id, "sharer_kind": "member", "sharer_id": member_id})))
        opens = await run_sync(lambda: list(_col(ShareOpenDoc).find(
            {"merchant_id": merchant_id, "member_id": member_id})))
        return ([{"code": d["_id"], "target_kind": d["target_kind"], "target_id": d["target_id"],
                  "created_ms": d["created_ms"]} for d in codes],
                [{"code": d["code"], "at_ms": d["at_ms"]} for d in opens])

    async def erase_member(self, merchant_id: str, member_id: str) -> None:
        await run_sync(erase_shares, _col(ShareCodeDoc), _col(ShareOpenDoc), _col(ShareOpenDayDoc),
                       _col(ShareMemberOpenDoc), merchant_id, member_id)


def erase_shares(codes: Collection, opens: Collection, days: Collection, member_opens: Collection,
                 merchant_id: str, member_id: str) -> None:
    # The code stays (orders carry it); its dedup key named the member, so it is replaced.
    for doc in list(codes.find({"merchant_id": merchant_id, "sharer_kind": "member", "sharer_id": member_id})):
        codes.update_one({"_id": doc["_id"], "merchant_id": merchant_id},
                         {"$set": {"sharer_id": "", "dedup_key": f"erased:{doc['_id']}"}})
    opens.delete_many({"merchant_id": merchant_id, "member_id": member_id})
    days.delete_many({"merchant_id": merchant_id, "member_id": member_id})
    member_opens.delete_many({"merchant_id": merchant_id, "member_id": member_id})


def outbox_collections() -> list:
    """The open records: a member's open carries ShareCodeOpened."""
    return [_col(ShareOpenDoc)]
