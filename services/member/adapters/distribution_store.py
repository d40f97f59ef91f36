"""Distribution and guide storage over MongoDB, implementing
services.member.application.distribution_ports.

- `distribution_settings`: one per merchant (`_id` the merchant), versioned.
- `distributor_levels`: one per level (`_id` dlv_…), unique per merchant and idempotency key.
- `distributors`: one per member and merchant (unique), `_id` and `dst_id` the dst_ id
  (lists page on `dst_id`: `_id` stays out of compound indexes); times are epoch ms.
- `distribution_customers`: a member's ties as a customer (`_id` "<merchant>:<member>"):
  distributor, that distributor's upline and the bound time, exclusive guide and its time,
  and the string keys the distributor's and the guide's lists page on. Created empty on
  the first binding (a duplicate key means it exists), then every change is ONE update
  conditional on the values read.
- `distribution_binding_history`: one entry per binding change.
- `guide_profiles`: a guide's store label (`_id` "<merchant>:<guide>").
- `distribution_spend`: a member's paid spend net of refunds, with each order's counted
  amount in `orders.<order id>` (an order's first sighting adds it; later ones only lower it).

Every shape is in tests/conformance/test_distribution_shapes.py.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import mongoengine as me
from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from siyu_kit.aggregate import StaleVersion
from siyu_kit.db import run_sync
from siyu_kit.ids import new_id
from siyu_kit.protos import epoch_ms
from siyu_kit.repository import insert_new, save_change

from services.member.application.distribution_ports import CustomerTies, MemberCard
from services.member.application.member_view_ports import SearchFilter
from services.member.domain.distribution import Binding, DistributionSettings, Distributor, DistributorLevel

SPEND_ATTEMPTS = 8


class DistributionSettingsDoc(me.Document):
    id = me.StringField(primary_key=True)  # the merchant id
    merchant_id = me.StringField(required=True)
    settings = me.DictField()
    version = me.IntField(default=1)
    updated_ms = me.IntField()
    meta = {"collection": "distribution_settings"}


class DistributorLevelDoc(me.Document):
    id = me.StringField(primary_key=True)  # dlv_…
    merchant_id = me.StringField(required=True)
    key = me.StringField(required=True)  # the idempotency key it was created with
    name = me.StringField()
    level1_rate_bp = me.IntField(default=0)
    level2_rate_bp = me.IntField(default=0)
    created_ms = me.IntField()
    version = me.IntField(default=1)
    meta = {"collection": "distributor_levels",
            "indexes": [{"fields": ["merchant_id", "key"], "unique": True}, {"fields": ["merchant_id", "created_ms"]}]}


class DistributorDoc(me.Document):
    id = me.StringField(primary_key=True)  # dst_…
    dst_id = me.StringField(required=True)
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    state = me.StringField(required=True)
    level_id = me.StringField(default="")
    upline_id = me.StringField(default="")
    ancestors = me.ListField(me.StringField())
    apply_reason = me.StringField(default="")
    reject_reason = me.StringField(default="")
    automatic = me.IntField(default=0)
    applied_ms = me.IntField()
    activated_ms = me.IntField(default=0)
    updated_ms = me.IntField()
    version = me.IntField(default=1)
    meta = {"collection": "distributors",
            "indexes": [{"fields": ["merchant_id", "member_id"], "unique": True},
                        {"fields": ["merchant_id", "dst_id"]},
                        {"fields": ["merchant_id", "state", "dst_id"]},
                        {"fields": ["merchant_id", "upline_id", "dst_id"]}]}


class CustomerTiesDoc(me.Document):
    id = me.StringField(primary_key=True)  # "<merchant id>:<member id>"
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    distributor_id = me.StringField(default="")
    upline_id = me.StringField(default="")
    bound_ms = me.IntField(default=0)
    dist_key = me.StringField(default="")
    guide_id = me.StringField(default="")
    guide_ms = me.IntField(default=0)
    guide_key = me.StringField(default="")
    meta = {"collection": "distribution_customers",
            "indexes": [{"fields": ["merchant_id", "distributor_id", "dist_key"]},
                        {"fields": ["merchant_id", "distributor_id", "bound_ms"]},
                        {"fields": ["merchant_id", "guide_id", "guide_key"]}]}


class BindingHistoryDoc(me.Document):
    id = me.StringField(primary_key=True)  # dbh_…
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    kind = me.StringField()
    before_id = me.StringField()
    after_id = me.StringField()
    source = me.StringField()
    actor_id = me.StringField()
    at_ms = me.IntField()
    meta = {"collection": "distribution_binding_history", "indexes": [{"fields": ["merchant_id", "member_id"]}]}


class GuideProfileDoc(me.Document):
    id = me.StringField(primary_key=True)  # "<merchant id>:<guide id>"
    merchant_id = me.StringField(required=True)
    guide_id = me.StringField(required=True)
    store = me.StringField(default="")
    meta = {"collection": "guide_profiles"}


class SpendDoc(me.Document):
    id = me.StringField(primary_key=True)  # "<merchant id>:<member id>"
    merchant_id = me.StringField(required=True)
    spend = me.IntField(default=0)
    orders = me.DictField()
    meta = {"collection": "distribution_spend"}


DOCS = (DistributionSettingsDoc, DistributorLevelDoc, DistributorDoc, CustomerTiesDoc, BindingHistoryDoc,
        GuideProfileDoc, SpendDoc)


def ensure_indexes() -> None:
    for doc in DOCS:
        doc.ensure_indexes()


def _c(doc) -> Collection:
    return doc._get_collection()


def _ms_at(ms: int) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc) if ms else None


def _now_ms() -> int:
    return epoch_ms(datetime.now(timezone.utc))


def key(ms: int, member_id: str) -> str:
    """A binding list's position: the bound time, then the member (newest first)."""
    return f"{ms:015d}:{member_id}"


# ---- settings ------------------------------------------------------------------------------
def settings_of(doc: dict) -> DistributionSettings:
    s = doc.get("settings") or {}
    d = DistributionSettings()
    return DistributionSettings(
        enabled=bool(s.get("enabled", d.enabled)), levels=int(s.get("levels", d.levels)),
        level1_rate_bp=int(s.get("level1_rate_bp", d.level1_rate_bp)),
        level2_rate_bp=int(s.get("level2_rate_bp", d.level2_rate_bp)),
        binding_days=int(s.get("binding_days", d.binding_days)), binding_rule=s.get("binding_rule", d.binding_rule),
        auto_threshold=int(s.get("auto_threshold", d.auto_threshold)), guide_rule=s.get("guide_rule", d.guide_rule),
        guide_rate_bp=int(s.get("guide_rate_bp", d.guide_rate_bp)))


def settings_fields(s: DistributionSettings) -> dict:
    return {"enabled": int(s.enabled), "levels": s.levels, "level1_rate_bp": s.level1_rate_bp,
            "level2_rate_bp": s.level2_rate_bp, "binding_days": s.binding_days, "binding_rule": s.binding_rule,
            "auto_threshold": s.auto_threshold, "guide_rule": s.guide_rule, "guide_rate_bp": s.guide_rate_bp}


def put_settings(coll: Collection, merchant_id: str, settings: DistributionSettings,
                 expected_version: int) -> int | None:
    if expected_version == 0:
        try:
            coll.insert_one({"_id": merchant_id, "merchant_id": merchant_id, "settings": settings_fields(settings),
                             "version": 1, "updated_ms": _now_ms()})
        except DuplicateKeyError:
            return None
        return 1
    done = coll.update_one({"_id": merchant_id, "merchant_id": merchant_id, "version": expected_version},
                           {"$set": {"settings": settings_fields(settings), "updated_ms": _now_ms()},
                            "$inc": {"version": 1}})
    return expected_version + 1 if done.modified_count == 1 else None


class SettingsRepository:
    async def get(self, merchant_id: str) -> tuple[DistributionSettings, int]:
        doc = await run_sync(_c(DistributionSettingsDoc).find_one, {"_id": merchant_id, "merchant_id": merchant_id})
        if doc is None:
            return DistributionSettings(), 0
        return settings_of(doc), int(doc.get("version") or 1)

    async def put(self, merchant_id: str, settings: DistributionSettings, expected_version: int) -> int | None:
        return await run_sync(put_settings, _c(DistributionSettingsDoc), merchant_id, settings, expected_version)


# ---- levels --------------------------------------------------------------------------------
def level_of(doc: dict) -> DistributorLevel:
    return DistributorLevel(doc["_id"], doc["merchant_id"], doc.get("name", ""), int(doc.get("level1_rate_bp", 0)),
                            int(doc.get("level2_rate_bp", 0)), int(doc.get("version", 1)))


def add_level(coll: Collection, level: DistributorLevel, idempotency_key: str) -> tuple[DistributorLevel, bool]:
    doc = {"_id": level.id, "merchant_id": level.merchant_id, "key": idempotency_key, "name": level.name,
           "level1_rate_bp": level.level1_rate_bp, "level2_rate_bp": level.level2_rate_bp,
           "created_ms": _now_ms(), "version": 1}
    if insert_new(coll, doc):
        return level, True
    found = coll.find_one({"merchant_id": level.merchant_id, "key": idempotency_key})
    if found is None:  # pragma: no cover - the duplicate was on the key of a level that exists
        raise StaleVersion("the level vanished")
    return level_of(found), False


class LevelRepository:
    async def get(self, merchant_id: str, level_id: str) -> DistributorLevel | None:
        doc = await run_sync(_c(DistributorLevelDoc).find_one, {"_id": level_id, "merchant_id": merchant_id})
        return level_of(doc) if doc else None

    async def all(self, merchant_id: str) -> list[DistributorLevel]:
        docs = await run_sync(lambda: list(_c(DistributorLevelDoc).find({"merchant_id": merchant_id})
                                           .sort("created_ms", ASCENDING).limit(100)))
        return [level_of(d) for d in docs]

    async def add(self, level: DistributorLevel, idempotency_key: str) -> tuple[DistributorLevel, bool]:
        return await run_sync(add_level, _c(DistributorLevelDoc), level, idempotency_key)

    async def save(self, level: DistributorLevel) -> None:
        await run_sync(save_change, _c(DistributorLevelDoc), {"_id": level.id, "merchant_id": level.merchant_id},
                       {"$set": {"name": level.name, "level1_rate_bp": level.level1_rate_bp,
                                 "level2_rate_bp": level.level2_rate_bp}}, version=level.version)


# ---- distributors --------------------------------------------------------------------------
def distributor_doc(d: Distributor) -> dict:
    return {"_id": d.id, "dst_id": d.id, "merchant_id": d.merchant_id, "member_id": d.member_id,
            **distributor_fields(d), "version": d.version}


def distributor_fields(d: Distributor) -> dict:
    return {"state": d.state, "level_id": d.level_id, "upline_id": d.upline_id, "ancestors": list(d.ancestors),
            "apply_reason": d.apply_reason, "reject_reason": d.reject_reason, "automatic": int(d.automatic),
            "applied_ms": epoch_ms(d.applied_at), "activated_ms": epoch_ms(d.activated_at) if d.activated_at else 0,
            "updated_ms": epoch_ms(d.updated_at) if d.updated_at else 0}


def distributor_of(doc: dict) -> Distributor:
    return Distributor(id=doc["_id"], merchant_id=doc["merchant_id"], member_id=doc["member_id"],
                       state=doc["state"], applied_at=_ms_at(int(doc.get("applied_ms") or 0)),
                       apply_reason=doc.get("apply_reason", ""), reject_reason=doc.get("reject_reason", ""),
                       automatic=bool(doc.get("automatic")), level_id=doc.get("level_id", ""),
                       upline_id=doc.get("upline_id", ""), ancestors=tuple(doc.get("ancestors") or ()),
                       activated_at=_ms_at(int(doc.get("activated_ms") or 0)),
                       updated_at=_ms_at(int(doc.get("updated_ms") or 0)), version=int(doc.get("version", 1)))


def page_query(merchant_id: str, state: str, before_id: str) -> dict:
    query: dict = {"merchant_id": merchant_id}
    if state:
        query["state"] = state
    if before_id:
        query["dst_id"] = {"$lt": before_id}
    return query


def downline_query(merchant_id: str, upline_id: str, before_id: str) -> dict:
    query: dict = {"merchant_id": merchant_id, "upline_id": upline_id}
    if before_id:
        query["dst_id"] = {"$lt": before_id}
    return query


class DistributorRepository:
    async def of_member(self, merchant_id: str, member_id: str) -> Distributor | None:
        doc = await run_sync(_c(DistributorDoc).find_one, {"merchant_id": merchant_id, "member_id": member_id})
        return distributor_of(doc) if doc else None

    async def of_members(self, merchant_id: str, member_ids: list[str]) -> dict[str, Distributor]:
        if not member_ids:
            return {}
        docs = await run_sync(lambda: list(_c(DistributorDoc).find(
            {"merchant_id": merchant_id, "member_id": {"$in": list(member_ids)}})))
        return {d["member_id"]: distributor_of(d) for d in docs}

    async def add(self, distributor: Distributor) -> bool:
        return await run_sync(insert_new, _c(DistributorDoc), distributor_doc(distributor))

    async def save(self, distributor: Distributor) -> None:
        await run_sync(save_change, _c(DistributorDoc), {"_id": distributor.id, "merchant_id": distributor.merchant_id},
                       {"$set": distributor_fields(distributor)}, version=distributor.version)

    async def page(self, merchant_id: str, state: str, before_id: str, limit: int) -> list[Distributor]:
        docs = await run_sync(lambda: list(_c(DistributorDoc).find(page_query(merchant_id, state, before_id))
                                           .sort("dst_id", DESCENDING).limit(limit)))
        return [distributor_of(d) for d in docs]

    async def downline(self, merchant_id: str, upline_id: str, before_id: str, limit: int) -> list[Distributor]:
        docs = await run_sync(lambda: list(_c(DistributorDoc).find(downline_query(merchant_id, upline_id, before_id))
                                           .sort("dst_id", DESCENDING).limit(limit)))
        return [distributor_of(d) for d in docs]

    async def count_downline(self, merchant_id: str, upline_id: str) -> int:
        return await run_sync(count, _c(DistributorDoc), {"merchant_id": merchant_id, "upline_id": upline_id})


def count(coll: Collection, query: dict) -> int:
    """The `count` command (see docs/storage.md: far cheaper than count_documents here)."""
    return int(coll.database.command("count", coll.name, query=query)["n"])


# ---- customers' ties -----------------------------------------------------------------------
def ties_id(merchant_id: str, member_id: str) -> str:
    return f"{merchant_id}:{member_id}"


def ties_of(doc: dict | None) -> CustomerTies:
    if doc is None:
        return CustomerTies()
    return CustomerTies(Binding(doc.get("distributor_id", ""), int(doc.get("bound_ms") or 0)),
                        doc.get("upline_id", ""), doc.get("guide_id", ""), int(doc.get("guide_ms") or 0))


def ensure_ties(coll: Collection, merchant_id: str, member_id: str) -> None:
    try:
        coll.insert_one({"_id": ties_id(merchant_id, member_id), "merchant_id": merchant_id,
                                        "member_id": member_id, "distributor_id": "", "upline_id": "",
                                        "bound_ms": 0, "dist_key": "", "guide_id": "", "guide_ms": 0,
                                        "guide_key": ""})
    except DuplicateKeyError:
        pass


def bind_distributor_change(merchant_id: str, member_id: str, current: Binding, new: Binding,
                            upline_id: str) -> tuple[dict, dict]:
    return ({"_id": ties_id(merchant_id, member_id), "merchant_id": merchant_id,
             "distributor_id": current.distributor_id, "bound_ms": current.bound_ms},
            {"$set": {"distributor_id": new.distributor_id, "upline_id": upline_id, "bound_ms": new.bound_ms,
                      "dist_key": key(new.bound_ms, member_id)}})


def bind_guide_change(merchant_id: str, member_id: str, current_guide_id: str, guide_id: str,
                      now_ms: int) -> tuple[dict, dict]:
    return ({"_id": ties_id(merchant_id, member_id), "merchant_id": merchant_id, "guide_id": current_guide_id},
            {"$set": {"guide_id": guide_id, "guide_ms": now_ms, "guide_key": key(now_ms, member_id)}})


def bind(coll: Collection, change: tuple[dict, dict], merchant_id: str, member_id: str, first: bool) -> bool:
    """A binding change: the empty ties document first when there may be none (a duplicate
    key: it exists), then ONE update conditional on the values read."""
    if first:
        ensure_ties(coll, merchant_id, member_id)
    return coll.update_one(*change).modified_count == 1


def list_query(merchant_id: str, field: str, owner_id: str, key_field: str, after_key: str) -> dict:
    query: dict = {"merchant_id": merchant_id, field: owner_id}
    if after_key:
        query[key_field] = {"$lt": after_key}
    return query


class CustomerRepository:
    async def of(self, merchant_id: str, member_id: str) -> CustomerTies:
        doc = await run_sync(_c(CustomerTiesDoc).find_one,
                             {"_id": ties_id(merchant_id, member_id), "merchant_id": merchant_id})
        return ties_of(doc)

    async def bind_distributor(self, merchant_id: str, member_id: str, current: Binding, new: Binding,
                               upline_id: str) -> bool:
        return await run_sync(bind, _c(CustomerTiesDoc), bind_distributor_change(merchant_id, member_id, current, new, upline_id),
                              merchant_id, member_id, not current.distributor_id)

    async def bind_guide(self, merchant_id: str, member_id: str, current_guide_id: str, guide_id: str,
                         now_ms: int) -> bool:
        return await run_sync(bind, _c(CustomerTiesDoc), bind_guide_change(merchant_id, member_id, current_guide_id, guide_id, now_ms),
                              merchant_id, member_id, not current_guide_id)

    async def _list(self, merchant_id: str, field: str, owner_id: str, key_field: str, time_field: str,
                    after_key: str, limit: int) -> list[tuple[str, int, str]]:
        docs = await run_sync(lambda: list(_c(CustomerTiesDoc).find(
            list_query(merchant_id, field, owner_id, key_field, after_key),
            {"member_id": 1, time_field: 1, key_field: 1}).sort(key_field, DESCENDING).limit(limit)))
        return [(d["member_id"], int(d.get(time_field) or 0), d[key_field]) for d in docs]

    async def customers(self, merchant_id: str, distributor_id: str, after_key: str,
                        limit: int) -> list[tuple[str, int, str]]:
        return await self._list(merchant_id, "distributor_id", distributor_id, "dist_key", "bound_ms", after_key,
                                limit)

    async def guide_customers(self, merchant_id: str, guide_id: str, after_key: str,
                              limit: int) -> list[tuple[str, int, str]]:
        return await self._list(merchant_id, "guide_id", guide_id, "guide_key", "guide_ms", after_key, limit)

    async def count_customers(self, merchant_id: str, distributor_id: str, since_ms: int) -> int:
        return await run_sync(count, _c(CustomerTiesDoc), {"merchant_id": merchant_id,
                                                           "distributor_id": distributor_id,
                                                           "bound_ms": {"$gte": since_ms}})


class BindingHistoryRepository:
    async def add(self, merchant_id: str, member_id: str, kind: str, before_id: str, after_id: str, source: str,
                  actor_id: str, at_ms: int) -> None:
        await run_sync(_c(BindingHistoryDoc).insert_one,
                       {"_id": new_id("dbh"), "merchant_id": merchant_id, "member_id": member_id, "kind": kind,
                        "before_id": before_id, "after_id": after_id, "source": source, "actor_id": actor_id,
                        "at_ms": at_ms})

    async def of(self, merchant_id: str, member_id: str) -> list[dict]:
        """A member's binding changes, oldest first (support and tests)."""
        return await run_sync(lambda: list(_c(BindingHistoryDoc).find(
            {"merchant_id": merchant_id, "member_id": member_id}).sort("at_ms", ASCENDING)))


# ---- guide profiles ------------------------------------------------------------------------
def set_store(coll: Collection, merchant_id: str, guide_id: str, store: str) -> None:
    query = {"_id": f"{merchant_id}:{guide_id}", "merchant_id": merchant_id}
    if coll.update_one(query, {"$set": {"store": store}}).matched_count:
        return
    try:
        coll.insert_one({**query, "guide_id": guide_id, "store": store})
    except DuplicateKeyError:
        coll.update_one(query, {"$set": {"store": store}})


class GuideProfileRepository:
    async def store_of(self, merchant_id: str, guide_id: str) -> str:
        doc = await run_sync(_c(GuideProfileDoc).find_one, {"_id": f"{merchant_id}:{guide_id}",
                                                             "merchant_id": merchant_id})
        return doc.get("store", "") if doc else ""

    async def set_store(self, merchant_id: str, guide_id: str, store: str) -> None:
        await run_sync(set_store, _c(GuideProfileDoc), merchant_id, guide_id, store)


# ---- spend ---------------------------------------------------------------------------------
def spend_first(merchant_id: str, doc_id: str, order_id: str, net: int) -> tuple[dict, dict]:
    return ({"_id": doc_id, "merchant_id": merchant_id, f"orders.{order_id}": {"$exists": False}},
            {"$set": {f"orders.{order_id}": net}, "$inc": {"spend": net}})


def spend_lower(merchant_id: str, doc_id: str, order_id: str, counted: int, net: int) -> tuple[dict, dict]:
    return ({"_id": doc_id, "merchant_id": merchant_id, f"orders.{order_id}": counted},
            {"$set": {f"orders.{order_id}": net}, "$inc": {"spend": net - counted}})


def record_spend(coll: Collection, merchant_id: str, member_id: str, order_id: str, net: int) -> int:
    doc_id = f"{merchant_id}:{member_id}"
    for _ in range(SPEND_ATTEMPTS):
        doc = coll.find_one({"_id": doc_id, "merchant_id": merchant_id})
        if doc is None:
            try:
                coll.insert_one({"_id": doc_id, "merchant_id": merchant_id, "spend": 0, "orders": {}})
            except DuplicateKeyError:
                pass
            continue
        orders = doc.get("orders") or {}
        spend = int(doc.get("spend") or 0)
        if order_id not in orders:
            change = spend_first(merchant_id, doc_id, order_id, net)
            after = spend + net
        elif net < int(orders[order_id]):
            change = spend_lower(merchant_id, doc_id, order_id, int(orders[order_id]), net)
            after = spend + net - int(orders[order_id])
        else:
            return spend
        if coll.update_one(*change).modified_count == 1:
            return after
    raise StaleVersion("the member's spend changed meanwhile")


class SpendRepository:
    async def record(self, merchant_id: str, member_id: str, order_id: str, net: int) -> int:
        return await run_sync(record_spend, _c(SpendDoc), merchant_id, member_id, order_id, net)


# ---- members and guides, as the distribution views see them ----------------------------------
class MemberCardsReader:
    """Nicknames from the member documents; with contact, phones (the phone book), tags
    (the member's facts) and the last paid order (the member's statistics), read
    concurrently, one command each."""

    def __init__(self, search, phones, facts, stats):
        self.search, self.phones, self.facts, self.stats = search, phones, facts, stats

    async def cards(self, merchant_id: str, member_ids: list[str], contact: bool) -> dict[str, MemberCard]:
        ids = [m for m in member_ids if m]
        if not ids:
            return {}
        if not contact:
            rows = await self.search.among(merchant_id, SearchFilter(), ids)
            return {r.member_id: MemberCard(r.member_id, r.nickname) for r in rows}
        rows, phones, facts, stats = await asyncio.gather(
            self.search.among(merchant_id, SearchFilter(), ids), self.phones.phones_of(merchant_id, ids),
            self.facts.of(merchant_id, ids), self.stats.of(merchant_id, ids))
        return {r.member_id: MemberCard(r.member_id, r.nickname, phones.get(r.member_id, ""),
                                        tuple(facts[r.member_id].tags) if r.member_id in facts else (),
                                        stats[r.member_id].last_paid_ms if r.member_id in stats else 0)
                for r in rows}


class StaffGuides:
    def __init__(self, staff):
        self.staff = staff

    async def is_guide(self, merchant_id: str, staff_id: str) -> bool:
        user = await self.staff.get(merchant_id, staff_id)
        return user is not None and not user.disabled and "GUIDE" in user.roles
