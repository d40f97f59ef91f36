"""Member statistics, facts and RFM settings over MongoDB (services.member.application.segment_ports).

- `member_stats`: one per member (`_id` "<merchant>:<member>"): daily buckets
  `days.<YYYYMMDD>.{o,a}`, `channels.<channel>`, lifetime counters, first/last paid time
  (epoch ms), the causes applied (`causes.<order id>:<kind>`), `version` and `dirty`. An
  event is ONE update guarded by its cause being absent: `$inc` of the counters, `$min` /
  `$max` of the times, `$set` of the cause and `dirty`.
- `member_facts`: one per member, the denormalised facts segments query: RFM scores and
  group, tags, 365-day figures, last order, channel (and tier, registration, birthday month
  and consent as other parts keep them). Always written whole-field, every field present.
- `rfm_settings`: one per merchant.

Every shape is in tests/conformance/test_segment_shapes.py.
"""
from __future__ import annotations

from typing import Any

import mongoengine as me
from pymongo.collection import Collection

from services.member.domain.segments import MemberStats, RfmSettings
from siyu_kit.db import run_sync
from siyu_kit.repository import insert_new


class MemberStatsDoc(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    dirty = me.IntField(default=0)
    derived_day = me.StringField(default="")
    meta = {"collection": "member_stats", "strict": False,
            "indexes": [{"fields": ["dirty"]}, {"fields": ["derived_day"]}]}


class MemberFactsDoc(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    rfm_group = me.StringField(default="")
    tags = me.ListField(me.StringField())
    last_paid_ms = me.IntField(default=0)
    meta = {"collection": "member_facts", "strict": False,
            "indexes": [{"fields": ["merchant_id", "rfm_group"]}, {"fields": ["merchant_id", "tags"]},
                        {"fields": ["merchant_id", "last_paid_ms"]}, {"fields": ["merchant_id", "member_id"]}]}


class RfmSettingsDoc(me.Document):
    id = me.StringField(primary_key=True)
    settings = me.DictField()
    meta = {"collection": "rfm_settings"}


def ensure_indexes() -> None:
    for doc in (MemberStatsDoc, MemberFactsDoc, RfmSettingsDoc):
        doc.ensure_indexes()


def _stats() -> Collection:
    return MemberStatsDoc._get_collection()


def _facts() -> Collection:
    return MemberFactsDoc._get_collection()


def _settings() -> Collection:
    return RfmSettingsDoc._get_collection()


# Every field of a facts document, present from its first write (queries never meet a
# missing field).
FACTS_DEFAULTS: dict[str, Any] = {
    "tags": [], "manual_tags": [], "auto_tags": [], "rfm_r": 0, "rfm_f": 0, "rfm_m": 0, "rfm_group": "",
    "tier": "", "spend_365": 0, "orders_365": 0, "first_paid_ms": 0, "last_paid_ms": 0, "refunds": 0,
    "registered_ms": 0, "channel": "", "birthday_month": 0, "consent": 0, "rfm_day": "", "stats_version": 0}


# ---- shapes (module functions: tests/conformance runs them against the embedded server) -----
def apply_event(coll: Collection, merchant_id: str, member_id: str, cause: str, day: str, orders: int,
                amount: int, paid_ms: int, channel: str, refunds: int) -> bool:
    key = f"{merchant_id}:{member_id}"
    insert_new(coll, {"_id": key, "merchant_id": merchant_id, "member_id": member_id, "paid_orders": 0,
                      "refunds": 0, "refunded_amount": 0, "days": {}, "channels": {}, "causes": {},
                      "version": 0, "dirty": 0, "derived_day": ""})
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


def stats_of(doc: dict) -> MemberStats:
    return MemberStats(merchant_id=doc["merchant_id"], member_id=doc["member_id"],
                       first_paid_ms=int(doc.get("first_paid_ms") or 0),
                       last_paid_ms=int(doc.get("last_paid_ms") or 0),
                       paid_orders=int(doc.get("paid_orders") or 0), refunds=int(doc.get("refunds") or 0),
                       refunded_amount=int(doc.get("refunded_amount") or 0),
                       days={d: {"o": int(b.get("o", 0)), "a": int(b.get("a", 0))}
                             for d, b in (doc.get("days") or {}).items()},
                       channels={c: int(n) for c, n in (doc.get("channels") or {}).items()},
                       version=int(doc.get("version") or 0))


STATS_PROJECTION = {"causes": 0}


def changed(coll: Collection, limit: int) -> list[MemberStats]:
    return [stats_of(d) for d in coll.find({"dirty": 1}, STATS_PROJECTION).limit(limit)]


def stale(coll: Collection, day: str, limit: int) -> list[MemberStats]:
    return [stats_of(d) for d in coll.find({"derived_day": {"$lt": day}}, STATS_PROJECTION).limit(limit)]


def settle(coll: Collection, stats: MemberStats, expired_days: list[str], day: str) -> bool:
    update: dict[str, Any] = {"$set": {"dirty": 0, "derived_day": day}}
    if expired_days:
        update["$unset"] = {f"days.{d}": "" for d in expired_days}
    return coll.update_one({"_id": f"{stats.merchant_id}:{stats.member_id}", "version": stats.version},
                           update).modified_count == 1


def put_derived(coll: Collection, merchant_id: str, member_id: str, stats_version: int,
                facts: dict[str, Any]) -> bool:
    """Sets the statistics part of the facts unless facts of a newer statistics version are
    stored (a slower replica loses)."""
    key = f"{merchant_id}:{member_id}"
    insert_new(coll, {"_id": key, "merchant_id": merchant_id, "member_id": member_id, **FACTS_DEFAULTS})
    derived = {k: v for k, v in facts.items() if k != "auto_tags"}
    current = coll.find_one({"_id": key}, {"manual_tags": 1})
    manual = list((current or {}).get("manual_tags") or [])
    derived["auto_tags"] = list(facts.get("auto_tags") or [])
    derived["tags"] = sorted(set(manual) | set(derived["auto_tags"]))
    derived["stats_version"] = stats_version
    return coll.update_one({"_id": key, "stats_version": {"$lte": stats_version}},
                           {"$set": derived}).modified_count == 1


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


def count_matching(coll: Collection, query: dict) -> int:
    return coll.count_documents(query)


def page_matching(coll: Collection, query: dict, after_member_id: str, limit: int) -> list[str]:
    """Member ids matching, in member id order, after the cursor's member."""
    q = {"$and": [query, {"member_id": {"$gt": after_member_id}}]} if after_member_id else query
    return [d["member_id"] for d in coll.find(q, {"member_id": 1}).sort("member_id", 1).limit(limit)]


# ---- repositories --------------------------------------------------------------------------
class StatsRepository:
    async def apply(self, merchant_id: str, member_id: str, cause: str, day: str, orders: int, amount: int,
                    paid_ms: int, channel: str, refunds: int) -> bool:
        return await run_sync(apply_event, _stats(), merchant_id, member_id, cause, day, orders, amount,
                              paid_ms, channel, refunds)

    async def changed(self, limit: int) -> list[MemberStats]:
        return await run_sync(changed, _stats(), limit)

    async def stale(self, day: str, limit: int) -> list[MemberStats]:
        return await run_sync(stale, _stats(), day, limit)

    async def settle(self, stats: MemberStats, expired_days: list[str], day: str) -> bool:
        return await run_sync(settle, _stats(), stats, expired_days, day)


class FactsRepository:
    async def put_derived(self, merchant_id: str, member_id: str, stats_version: int, facts: dict[str, Any]) -> bool:
        return await run_sync(put_derived, _facts(), merchant_id, member_id, stats_version, facts)

    async def count(self, query: dict) -> int:
        return await run_sync(count_matching, _facts(), query)

    async def page(self, query: dict, after_member_id: str, limit: int) -> list[str]:
        return await run_sync(page_matching, _facts(), query, after_member_id, limit)


class RfmSettingsRepository:
    async def get(self, merchant_id: str) -> RfmSettings:
        return settings_of(await run_sync(lambda: (_settings().find_one({"_id": merchant_id}) or {}).get("settings")))

    async def put(self, merchant_id: str, settings: RfmSettings) -> None:
        await run_sync(lambda: _settings().update_one({"_id": merchant_id}, {"$set": {"settings": settings_doc(settings)}},
                                                      upsert=True))
