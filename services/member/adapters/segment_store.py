"""Member statistics, facts and RFM settings over MongoDB (services.member.application.segment_ports).

- `member_stats`: one per member (`_id` "<merchant>:<member>"): daily buckets
  `days.<YYYYMMDD>.{o,a}`, `channels.<channel>`, lifetime counters, first/last paid time
  (epoch ms), the causes applied (`causes.<order id>:<kind>`), `version` and `dirty`. An
  event is ONE update guarded by its cause being absent: `$inc` of the counters, `$min` /
  `$max` of the times, `$set` of the cause and `dirty`. `follows.<persona id>`: the
  follow mark of the newest follow event (domain.segments.follow_mark), set by ONE update
  guarded by the stored mark being smaller.
- `member_facts`: one per member, the denormalised facts segments query: RFM scores and
  group, tags, 365-day figures, last order, channel, followed personas (and tier, registration, birthday month
  and consent as other parts keep them). Always written whole-field, every field present.
- `rfm_settings`: one per merchant.

Every shape is in tests/conformance/test_segment_shapes.py.
"""
from __future__ import annotations

from typing import Any

import mongoengine as me
from pymongo import InsertOne, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from services.member.domain.segments import MemberStats, RfmSettings, Segment, Tag, TagGroup, rule_doc, rule_of, tags_after
from services.member.adapters.documents import MemberDoc
from siyu_kit.db import run_sync
from siyu_kit.protos import aware, epoch_ms
from siyu_kit.repository import insert_new


class MemberStatsDoc(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    dirty = me.IntField(default=0)
    meta = {"collection": "member_stats", "strict": False, "indexes": [{"fields": ["dirty"]}]}


class MemberFactsDoc(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    rfm_group = me.StringField(default="")
    tags = me.ListField(me.StringField())
    last_paid_ms = me.IntField(default=0)
    followed_personas = me.ListField(me.StringField())
    meta = {"collection": "member_facts", "strict": False,
            "indexes": [{"fields": ["merchant_id", "rfm_group"]}, {"fields": ["merchant_id", "tags"]},
                        {"fields": ["merchant_id", "last_paid_ms"]}, {"fields": ["merchant_id", "member_id"]},
                        {"fields": ["merchant_id", "followed_personas"]}]}


class RfmSettingsDoc(me.Document):
    id = me.StringField(primary_key=True)
    settings = me.DictField()
    meta = {"collection": "rfm_settings"}


class FactsSweepDoc(me.Document):
    id = me.StringField(primary_key=True)
    meta = {"collection": "member_facts_sweep", "strict": False}


class TagGroupDoc(me.Document):
    id = me.StringField(primary_key=True)  # tgg_…
    merchant_id = me.StringField(required=True)
    name = me.StringField(required=True)
    meta = {"collection": "tag_groups", "indexes": [{"fields": ["merchant_id", "name"], "unique": True}]}


class TagDoc(me.Document):
    id = me.StringField(primary_key=True)  # tag_…
    merchant_id = me.StringField(required=True)
    group_id = me.StringField(required=True)
    name = me.StringField(required=True)
    meta = {"collection": "member_tags", "indexes": [{"fields": ["merchant_id", "name"], "unique": True}]}


class SegmentDoc(me.Document):
    id = me.StringField(primary_key=True)  # seg_…
    merchant_id = me.StringField(required=True)
    meta = {"collection": "segments", "strict": False, "indexes": [{"fields": ["merchant_id"]}]}


class GrantTargetDoc(me.Document):
    """A member of a coupon grant's audience as taken when the grant started: `_id`
    "<grant id>:<member id>", so one grant's members are one `_id` range in member order."""
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    grant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    meta = {"collection": "coupon_grant_targets"}


def ensure_indexes() -> None:
    for doc in (MemberStatsDoc, MemberFactsDoc, RfmSettingsDoc, FactsSweepDoc, TagGroupDoc, TagDoc, SegmentDoc,
                GrantTargetDoc):
        doc.ensure_indexes()


def _stats() -> Collection:
    return MemberStatsDoc._get_collection()


def _facts() -> Collection:
    return MemberFactsDoc._get_collection()


def _settings() -> Collection:
    return RfmSettingsDoc._get_collection()


def _progress() -> Collection:
    return FactsSweepDoc._get_collection()


def _tag_groups() -> Collection:
    return TagGroupDoc._get_collection()


def _tags() -> Collection:
    return TagDoc._get_collection()


def _segments() -> Collection:
    return SegmentDoc._get_collection()


# Every field of a facts document, present from its first write (queries never meet a
# missing field).
FACTS_DEFAULTS: dict[str, Any] = {
    "tags": [], "manual_tags": [], "auto_tags": [], "rfm_r": 0, "rfm_f": 0, "rfm_m": 0, "rfm_group": "",
    "tier": "", "spend_365": 0, "orders_365": 0, "first_paid_ms": 0, "last_paid_ms": 0, "refunds": 0,
    "registered_ms": 0, "channel": "", "birthday_month": 0, "consent": 0, "rfm_day": "", "stats_version": 0, "tags_version": 0,
    "followed_personas": []}


# ---- shapes (module functions: tests/conformance runs them against the embedded server) -----
def apply_event(coll: Collection, merchant_id: str, member_id: str, cause: str, day: str, orders: int,
                amount: int, paid_ms: int, channel: str, refunds: int) -> bool:
    key = f"{merchant_id}:{member_id}"
    insert_new(coll, {"_id": key, "merchant_id": merchant_id, "member_id": member_id, "paid_orders": 0,
                      "refunds": 0, "refunded_amount": 0, "days": {}, "channels": {}, "causes": {},
                      "version": 0, "dirty": 0})
    inc: dict[str, int] = {"version": 1, f"days.{day}.o": orders, f"days.{day}.a": amount}
    if orders:
        inc["paid_orders"] = orders
        if channel:
            inc[f"channels.{channel}"] = orders
    if refunds:
        inc["refunds"] = refunds
        inc["refunded_amount"] = -amount
    update: dict[str, Any] = {"$inc": inc, "$set": {f"causes.{cause}": 1, "dirty": 1}}
    if paid_ms:
        update["$min"] = {"first_paid_ms": paid_ms}
        update["$max"] = {"last_paid_ms": paid_ms}
    return coll.update_one({"_id": key, f"causes.{cause}": {"$exists": False}}, update).modified_count == 1


def apply_follow(coll: Collection, merchant_id: str, member_id: str, persona_id: str, mark: int) -> bool:
    """A follow event's mark stored unless a newer event's is: the member's document and
    the persona's entry (mark 0) are created first when missing, then ONE update guarded by
    the stored mark being smaller sets it, bumps the version and marks the facts due. False
    for an event as old as or older than the one stored (a replay or a late delivery)."""
    key = f"{merchant_id}:{member_id}"
    insert_new(coll, {"_id": key, "merchant_id": merchant_id, "member_id": member_id, "paid_orders": 0,
                      "refunds": 0, "refunded_amount": 0, "days": {}, "channels": {}, "causes": {},
                      "follows": {}, "version": 0, "dirty": 0})
    entry = f"follows.{persona_id}"
    coll.update_one({"_id": key, entry: {"$exists": False}}, {"$set": {entry: 0}})
    return coll.update_one({"_id": key, entry: {"$lt": mark}},
                           {"$set": {entry: mark, "dirty": 1}, "$inc": {"version": 1}}).modified_count == 1


def stats_of(doc: dict) -> MemberStats:
    return MemberStats(merchant_id=doc["merchant_id"], member_id=doc["member_id"],
                       first_paid_ms=int(doc.get("first_paid_ms") or 0),
                       last_paid_ms=int(doc.get("last_paid_ms") or 0),
                       paid_orders=int(doc.get("paid_orders") or 0), refunds=int(doc.get("refunds") or 0),
                       refunded_amount=int(doc.get("refunded_amount") or 0),
                       days={d: {"o": int(b.get("o", 0)), "a": int(b.get("a", 0))}
                             for d, b in (doc.get("days") or {}).items()},
                       channels={c: int(n) for c, n in (doc.get("channels") or {}).items()},
                       version=int(doc.get("version") or 0),
                       follows={p: int(n) for p, n in (doc.get("follows") or {}).items()})


STATS_PROJECTION = {"causes": 0}


def changed(coll: Collection, limit: int) -> list[MemberStats]:
    return [stats_of(d) for d in coll.find({"dirty": 1}, STATS_PROJECTION).limit(limit)]


def stats_for(coll: Collection, merchant_id: str, member_ids: list[str]) -> dict[str, MemberStats]:
    # By _id alone (the key holds the merchant): the embedded server would scan the merchant's
    # index for an `_id $in` filter that also names the merchant.
    docs = coll.find({"_id": {"$in": [f"{merchant_id}:{m}" for m in member_ids]}}, STATS_PROJECTION)
    return {d["member_id"]: stats_of(d) for d in docs if d["merchant_id"] == merchant_id}


def settle(coll: Collection, stats: MemberStats, expired_days: list[str]) -> bool:
    update: dict[str, Any] = {"$set": {"dirty": 0}}
    if expired_days:
        update["$unset"] = {f"days.{d}": "" for d in expired_days}
    return coll.update_one({"_id": f"{stats.merchant_id}:{stats.member_id}", "version": stats.version},
                           update).modified_count == 1


def _settle_update(expired_days: list[str]) -> dict[str, Any]:
    update: dict[str, Any] = {"$set": {"dirty": 0}}
    if expired_days:
        update["$unset"] = {f"days.{d}": "" for d in expired_days}
    return update


def settle_many(coll: Collection, items: list[tuple[MemberStats, list[str]]]) -> int:
    """`settle` for a batch: one unordered bulk write of the same conditional updates; how
    many were still at the version read (the others are changed and come again)."""
    if not items:
        return 0
    ops = [UpdateOne({"_id": f"{s.merchant_id}:{s.member_id}", "version": s.version}, _settle_update(expired))
           for s, expired in items]
    return coll.bulk_write(ops, ordered=False).modified_count


ATTEMPTS = 8


def put_facts(coll: Collection, merchant_id: str, member_id: str, stats_version: int, facts: dict[str, Any]) -> bool:
    """Sets the facts unless facts of newer statistics are stored (a slower replica loses).
    `tags` is the manual tags and the automatic ones, so the write is a compare-and-set on
    `tags_version`, which tagging bumps too."""
    key = f"{merchant_id}:{member_id}"
    fields = {k: v for k, v in facts.items() if k in FACTS_DEFAULTS and k not in ("manual_tags", "tags")}
    fields["auto_tags"] = sorted(facts.get("auto_tags") or [])
    fields["stats_version"] = stats_version
    for _ in range(ATTEMPTS):
        current = coll.find_one({"_id": key}, {"manual_tags": 1, "tags_version": 1, "stats_version": 1})
        if current is None:
            # The first facts of the member: one insert (a racing writer's insert wins, then we retry).
            if insert_new(coll, {**FACTS_DEFAULTS, **fields, "_id": key, "merchant_id": merchant_id,
                                 "member_id": member_id, "tags": list(fields["auto_tags"])}):
                return True
            continue
        if int(current.get("stats_version") or 0) > stats_version:
            return False
        version = int(current.get("tags_version") or 0)
        fields["tags"] = sorted(set(current.get("manual_tags") or []) | set(fields["auto_tags"]))
        if coll.update_one({"_id": key, "tags_version": version, "stats_version": {"$lte": stats_version}},
                           {"$set": fields, "$inc": {"tags_version": 1}}).modified_count == 1:
            return True
    return False


def _fact_fields(facts: dict[str, Any], stats_version: int) -> dict[str, Any]:
    fields = {k: v for k, v in facts.items() if k in FACTS_DEFAULTS and k not in ("manual_tags", "tags")}
    fields["auto_tags"] = sorted(facts.get("auto_tags") or [])
    fields["stats_version"] = stats_version
    return fields


def _holds(doc: dict | None, fields: dict[str, Any]) -> bool:
    return doc is not None and all(doc.get(k) == v for k, v in fields.items())


def put_facts_many(coll: Collection, merchant_id: str, items: list[tuple[str, int, dict[str, Any]]]) -> int:
    """`put_facts` for a batch of the merchant's members: one read of their facts, then one
    unordered bulk write of the same guarded writes (insert for a first fact; otherwise the
    compare-and-set on `tags_version` and older-or-equal statistics). Facts already stored
    as computed are not written again (the daily sweep over unchanged members only reads).
    A member whose write lost to a racing writer is done again one at a time by
    `put_facts`; how many members hold facts at least as new as these."""
    if not items:
        return 0
    keys = [f"{merchant_id}:{m}" for m, _, _ in items]
    current = {d["_id"]: d for d in coll.find({"_id": {"$in": keys}}, {"outbox": 0})}
    ops: list[Any] = []
    wanted: dict[str, tuple[str, int, dict[str, Any], dict[str, Any]]] = {}
    done = 0
    for key, (member_id, stats_version, facts) in zip(keys, items):
        fields = _fact_fields(facts, stats_version)
        doc = current.get(key)
        if doc is None:
            ops.append(InsertOne({**FACTS_DEFAULTS, **fields, "_id": key, "merchant_id": merchant_id,
                                  "member_id": member_id, "tags": list(fields["auto_tags"])}))
        else:
            if int(doc.get("stats_version") or 0) > stats_version:
                continue                       # newer statistics' facts are stored
            if _holds(doc, fields):
                done += 1
                continue
            fields_with_tags = {**fields, "tags": sorted(set(doc.get("manual_tags") or []) | set(fields["auto_tags"]))}
            ops.append(UpdateOne({"_id": key, "tags_version": int(doc.get("tags_version") or 0),
                                  "stats_version": {"$lte": stats_version}},
                                 {"$set": fields_with_tags, "$inc": {"tags_version": 1}}))
        wanted[key] = (member_id, stats_version, facts, fields)
    if not ops:
        return done
    try:
        result = coll.bulk_write(ops, ordered=False)
        written = result.inserted_count + result.matched_count
    except BulkWriteError as failed:       # a racing writer inserted first
        written = int(failed.details.get("nInserted") or 0) + int(failed.details.get("nMatched") or 0)
    if written == len(ops):
        return done + written
    # Some condition lost: whoever's facts are stored now, ours are written again where not held.
    after = {d["_id"]: d for d in coll.find({"_id": {"$in": list(wanted)}}, {"outbox": 0})}
    for key, (member_id, stats_version, facts, fields) in wanted.items():
        if _holds(after.get(key), fields) or put_facts(coll, merchant_id, member_id, stats_version, facts):
            done += 1
    return done


def retag(coll: Collection, merchant_id: str, member_ids: list[str], add: list[str], remove: list[str]) -> int:
    """Replaces the manual tags (and the tags) of each member under `tags_version`; members
    without facts are skipped; how many changed."""
    changed = 0
    docs = {d["member_id"]: d for d in coll.find({"_id": {"$in": [f"{merchant_id}:{m}" for m in member_ids]}},
                                                 {"merchant_id": 1, "member_id": 1, "manual_tags": 1, "auto_tags": 1,
                                                  "tags_version": 1})
            if d["merchant_id"] == merchant_id}
    for member_id in member_ids:
        doc = docs.get(member_id)
        for _ in range(ATTEMPTS):
            if doc is None:
                break
            manual = list(doc.get("manual_tags") or [])
            after = tags_after(manual, add, remove)
            if after == sorted(manual):
                break
            tags = sorted(set(after) | set(doc.get("auto_tags") or []))
            if coll.update_one({"_id": doc["_id"], "tags_version": int(doc.get("tags_version") or 0)},
                               {"$set": {"manual_tags": after, "tags": tags}, "$inc": {"tags_version": 1}}
                               ).modified_count == 1:
                changed += 1
                break
            doc = coll.find_one({"_id": doc["_id"]})
    return changed


def facts_existing(coll: Collection, merchant_id: str, member_ids: list[str]) -> set[str]:
    return {d["member_id"] for d in coll.find({"_id": {"$in": [f"{merchant_id}:{m}" for m in member_ids]}},
                                              {"merchant_id": 1, "member_id": 1}) if d["merchant_id"] == merchant_id}


def carrying(coll: Collection, merchant_id: str, tag_id: str) -> int:
    return coll.count_documents({"merchant_id": merchant_id, "manual_tags": {"$in": [tag_id]}})


def settings_doc(s: RfmSettings) -> dict:
    return {"recency_days": list(s.recency_days), "frequency_counts": list(s.frequency_counts),
            "monetary_amounts": list(s.monetary_amounts), "midpoint": s.midpoint, "lapsed_days": s.lapsed_days}


def settings_of(d: dict | None) -> RfmSettings:
    if not d:
        return RfmSettings()
    return RfmSettings(recency_days=tuple(int(v) for v in d["recency_days"]),
                       frequency_counts=tuple(int(v) for v in d["frequency_counts"]),
                       monetary_amounts=tuple(int(v) for v in d["monetary_amounts"]),
                       midpoint=int(d.get("midpoint") or 3), lapsed_days=int(d.get("lapsed_days") or 180))


def flat_filter(query: dict) -> dict:
    """The same filter with `$and`s folded into one document where no two parts name the
    same field (one field's operators merge when they differ): MongoDB means the same by
    both, and the embedded server evaluates the flat form in SQL but a `$and` in Python
    (seconds over 100,000 members, docs/performance.md). An `$or` stays in a `$and` beside
    the rest: next to plain fields the embedded server would ignore them (docs/storage.md)."""
    out: dict = {}
    rest: list = []
    for part in _conjuncts(query):
        for key, value in part.items():
            have = out.get(key, _ABSENT)
            if key.startswith("$"):
                rest.append({key: value})
            elif have is _ABSENT:
                out[key] = value
            elif (isinstance(have, dict) and isinstance(value, dict)
                  and all(k.startswith("$") for k in (*have, *value)) and not set(have) & set(value)):
                out[key] = {**have, **value}
            else:
                rest.append({key: value})
    if rest:
        return {"$and": ([out] if out else []) + rest}
    return out


_ABSENT = object()


def _conjuncts(query: dict) -> list[dict]:
    parts: list[dict] = []
    for key, value in query.items():
        if key == "$and":
            for sub in value:
                parts.extend(_conjuncts(sub))
        else:
            parts.append({key: value})
    return parts


def count_matching(coll: Collection, query: dict) -> int:
    # The `count` command with the filter, not `count_documents` (an aggregation, which the
    # embedded server runs in Python whatever the filter); exact on a replica set.
    return int(coll.database.command("count", coll.name, query=flat_filter(query))["n"])


def page_matching(coll: Collection, query: dict, after_member_id: str, limit: int) -> list[str]:
    """Member ids matching, in member id order, after the cursor's member."""
    q = {"$and": [query, {"member_id": {"$gt": after_member_id}}]} if after_member_id else query
    return [d["member_id"] for d in coll.find(flat_filter(q), {"member_id": 1}).sort("member_id", 1).limit(limit)]


def ids_matching(coll: Collection, query: dict) -> list[str]:
    """Every member id matching, in one read (no order)."""
    return [d["member_id"] for d in coll.find(flat_filter(query), {"member_id": 1})]


def add_targets(coll: Collection, merchant_id: str, grant_id: str, member_ids: list[str]) -> int:
    """Unordered insert: members already there (a restart taking the audience again) stay
    as they are; how many were new."""
    if not member_ids:
        return 0
    docs = [{"_id": f"{grant_id}:{m}", "merchant_id": merchant_id, "grant_id": grant_id, "member_id": m}
            for m in dict.fromkeys(member_ids)]
    try:
        return len(coll.insert_many(docs, ordered=False).inserted_ids)
    except BulkWriteError as failed:
        if any(int(e.get("code") or 0) != 11000 for e in failed.details.get("writeErrors") or []):
            raise
        return int(failed.details.get("nInserted") or 0)


def targets_page(coll: Collection, merchant_id: str, grant_id: str, after_member_id: str, limit: int) -> list[str]:
    """The grant's members after the cursor's, in member id order: one `_id` range (";" is
    the character after ":")."""
    docs = coll.find({"_id": {"$gt": f"{grant_id}:{after_member_id}", "$lt": f"{grant_id};"}},
                     {"merchant_id": 1, "member_id": 1}).sort("_id", 1).limit(limit)
    return [d["member_id"] for d in docs if d["merchant_id"] == merchant_id]


def consenting(coll: Collection, merchant_id: str, member_ids: list[str]) -> set[str]:
    # By _id alone, the merchant checked here (see stats_for).
    return {d["member_id"] for d in coll.find({"_id": {"$in": [f"{merchant_id}:{m}" for m in member_ids]}},
                                              {"merchant_id": 1, "member_id": 1, "consent": 1})
            if d["merchant_id"] == merchant_id and int(d.get("consent") or 0) == 1}


class GrantTargetRepository:
    async def add(self, merchant_id: str, grant_id: str, member_ids: list[str]) -> int:
        return await run_sync(add_targets, GrantTargetDoc._get_collection(), merchant_id, grant_id, member_ids)

    async def page(self, merchant_id: str, grant_id: str, after_member_id: str, limit: int) -> list[str]:
        return await run_sync(targets_page, GrantTargetDoc._get_collection(), merchant_id, grant_id,
                              after_member_id, limit)


# ---- repositories --------------------------------------------------------------------------
class StatsRepository:
    async def apply(self, merchant_id: str, member_id: str, cause: str, day: str, orders: int, amount: int,
                    paid_ms: int, channel: str, refunds: int) -> bool:
        return await run_sync(apply_event, _stats(), merchant_id, member_id, cause, day, orders, amount,
                              paid_ms, channel, refunds)

    async def follow(self, merchant_id: str, member_id: str, persona_id: str, mark: int) -> bool:
        return await run_sync(apply_follow, _stats(), merchant_id, member_id, persona_id, mark)

    async def of(self, merchant_id: str, member_ids: list[str]) -> dict[str, MemberStats]:
        return await run_sync(stats_for, _stats(), merchant_id, member_ids)

    async def changed(self, limit: int) -> list[MemberStats]:
        return await run_sync(changed, _stats(), limit)

    async def settle(self, stats: MemberStats, expired_days: list[str]) -> bool:
        return await run_sync(settle, _stats(), stats, expired_days)

    async def settle_many(self, items: list[tuple[MemberStats, list[str]]]) -> int:
        return await run_sync(settle_many, _stats(), items)


class FactsRepository:
    async def put(self, merchant_id: str, member_id: str, stats_version: int, facts: dict[str, Any]) -> bool:
        return await run_sync(put_facts, _facts(), merchant_id, member_id, stats_version, facts)

    async def put_many(self, merchant_id: str, items: list[tuple[str, int, dict[str, Any]]]) -> int:
        return await run_sync(put_facts_many, _facts(), merchant_id, items)

    async def retag(self, merchant_id: str, member_ids: list[str], add: list[str], remove: list[str]) -> int:
        return await run_sync(retag, _facts(), merchant_id, member_ids, add, remove)

    async def existing(self, merchant_id: str, member_ids: list[str]) -> set[str]:
        return await run_sync(facts_existing, _facts(), merchant_id, member_ids)

    async def carrying(self, merchant_id: str, tag_id: str) -> int:
        return await run_sync(carrying, _facts(), merchant_id, tag_id)

    async def count(self, query: dict) -> int:
        return await run_sync(count_matching, _facts(), query)

    async def page(self, query: dict, after_member_id: str, limit: int) -> list[str]:
        return await run_sync(page_matching, _facts(), query, after_member_id, limit)

    async def matching(self, query: dict) -> list[str]:
        return await run_sync(ids_matching, _facts(), query)

    async def consenting(self, merchant_id: str, member_ids: list[str]) -> set[str]:
        return await run_sync(consenting, _facts(), merchant_id, member_ids)


class RfmSettingsRepository:
    async def get(self, merchant_id: str) -> RfmSettings:
        return settings_of(await run_sync(lambda: (_settings().find_one({"_id": merchant_id}) or {}).get("settings")))

    async def put(self, merchant_id: str, settings: RfmSettings) -> None:
        await run_sync(_settings().update_one, {"_id": merchant_id}, {"$set": {"settings": settings_doc(settings)}},
                       upsert=True)


# ---- the member side of the facts (the member documents) -------------------------------------
MEMBER_SIDE = {"merchant_id": 1, "growth": 1, "created_at": 1, "birthday_md": 1, "marketing_consent": 1}


def member_side(doc: dict) -> dict[str, Any]:
    created = aware(doc.get("created_at"))
    md = doc.get("birthday_md") or ""
    return {"growth": int(doc.get("growth") or 0), "registered_ms": epoch_ms(created) if created else 0,
            "birthday_month": int(md[:2]) if md[:2].isdigit() else 0,
            "consent": int(bool(doc.get("marketing_consent")))}


def members_side(coll: Collection, merchant_id: str, member_ids: list[str]) -> dict[str, dict[str, Any]]:
    # The merchant is checked here, not in the filter (see stats_for).
    return {d["_id"]: member_side(d) for d in coll.find({"_id": {"$in": member_ids}}, MEMBER_SIDE)
            if d.get("merchant_id") == merchant_id}


def members_page(coll: Collection, after_id: str, limit: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [(d["merchant_id"], d["_id"], member_side(d))
            for d in coll.find({"_id": {"$gt": after_id}}, MEMBER_SIDE).sort("_id", 1).limit(limit)]


class MemberSideRepository:
    async def of(self, merchant_id: str, member_ids: list[str]) -> dict[str, dict[str, Any]]:
        return await run_sync(members_side, MemberDoc._get_collection(), merchant_id, member_ids)

    async def page(self, after_id: str, limit: int) -> list[tuple[str, str, dict[str, Any]]]:
        return await run_sync(members_page, MemberDoc._get_collection(), after_id, limit)


# ---- the sweep's lease and checkpoint -----------------------------------------------------------
SWEEP = "member-facts"


def claim_sweep(coll: Collection, holder: str, now_ms: int, until_ms: int) -> tuple[str, str] | None:
    insert_new(coll, {"_id": SWEEP, "day": "", "after_id": "", "holder": "", "lease_until_ms": 0})
    for query in ({"_id": SWEEP, "holder": holder}, {"_id": SWEEP, "lease_until_ms": {"$lt": now_ms}}):
        if coll.update_one(query, {"$set": {"holder": holder, "lease_until_ms": until_ms}}).matched_count == 1:
            doc = coll.find_one({"_id": SWEEP}) or {}
            return doc.get("day") or "", doc.get("after_id") or ""
    return None


def advance_sweep(coll: Collection, holder: str, day: str, after_id: str, until_ms: int) -> bool:
    return coll.update_one({"_id": SWEEP, "holder": holder},
                           {"$set": {"day": day, "after_id": after_id, "lease_until_ms": until_ms}}).matched_count == 1


class SweepProgressRepository:
    async def claim(self, holder: str, now_ms: int, until_ms: int) -> tuple[str, str] | None:
        return await run_sync(claim_sweep, _progress(), holder, now_ms, until_ms)

    async def advance(self, holder: str, day: str, after_id: str, until_ms: int) -> bool:
        return await run_sync(advance_sweep, _progress(), holder, day, after_id, until_ms)


# ---- tags and segments ------------------------------------------------------------------------
def _group_of(d: dict) -> TagGroup:
    return TagGroup(d["_id"], d["merchant_id"], d["name"])


def _tag_of(d: dict) -> Tag:
    return Tag(d["_id"], d["merchant_id"], d["group_id"], d["name"])


def _segment_of(d: dict) -> Segment:
    return Segment(d["_id"], d["merchant_id"], d["name"], rule_of(d["rule"]), aware(d["created_at"]))


class TagRepository:
    async def groups(self, merchant_id: str) -> list[TagGroup]:
        return await run_sync(lambda: [_group_of(d) for d in _tag_groups().find({"merchant_id": merchant_id})
                                       .sort("name", 1)])

    async def tags(self, merchant_id: str) -> list[Tag]:
        return await run_sync(lambda: [_tag_of(d) for d in _tags().find({"merchant_id": merchant_id})
                                       .sort("name", 1)])

    async def add_group(self, group: TagGroup) -> bool:
        return await run_sync(insert_new, _tag_groups(), {"_id": group.id, "merchant_id": group.merchant_id,
                                                          "name": group.name})

    async def add_tag(self, tag: Tag) -> bool:
        return await run_sync(insert_new, _tags(), {"_id": tag.id, "merchant_id": tag.merchant_id,
                                                    "group_id": tag.group_id, "name": tag.name})

    async def remove_group(self, merchant_id: str, group_id: str) -> bool:
        result = await run_sync(_tag_groups().delete_one, {"_id": group_id, "merchant_id": merchant_id})
        return result.deleted_count == 1

    async def remove_tag(self, merchant_id: str, tag_id: str) -> bool:
        result = await run_sync(_tags().delete_one, {"_id": tag_id, "merchant_id": merchant_id})
        return result.deleted_count == 1


class SegmentRepository:
    async def add(self, segment: Segment) -> None:
        await run_sync(insert_new, _segments(), {"_id": segment.id, "merchant_id": segment.merchant_id,
                                                 "name": segment.name, "rule": rule_doc(segment.rule),
                                                 "created_at": segment.created_at})

    async def get(self, merchant_id: str, segment_id: str) -> Segment | None:
        doc = await run_sync(_segments().find_one, {"_id": segment_id, "merchant_id": merchant_id})
        return _segment_of(doc) if doc else None

    async def page(self, merchant_id: str, before_id: str, limit: int) -> list[Segment]:
        query: dict[str, Any] = {"merchant_id": merchant_id}
        if before_id:
            query["_id"] = {"$lt": before_id}
        return await run_sync(lambda: [_segment_of(d) for d in _segments().find(query).sort("_id", -1).limit(limit)])

    async def count(self, merchant_id: str) -> int:
        return await run_sync(_segments().count_documents, {"merchant_id": merchant_id})

    async def remove(self, merchant_id: str, segment_id: str) -> bool:
        result = await run_sync(_segments().delete_one, {"_id": segment_id, "merchant_id": merchant_id})
        return result.deleted_count == 1
