"""Coupon storage over MongoDB, implementing services.member.application.coupon_ports
(whose module docstring is the contract): templates with their issued counter, member
coupons with the unique keys that make claims exact, grant jobs, and each merchant's
coupon settings.

Every time that changes later or is queried by range is stored as epoch milliseconds
(`*_ms`), per docs/storage.md. The template's `issued` counter and its `claiming` map
(coupon id → ms) change only by the conditional updates of `take_unit`, `settle_unit`
and `give_back_unit`; `claiming_count` lets the recovery job find templates with
entries without scanning maps."""
from __future__ import annotations

from datetime import datetime, timezone

import mongoengine as me
from pymongo import InsertOne, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from siyu_kit.db import run_sync
from siyu_kit.events.documents import OutboxDocument
from siyu_kit.events.outbox import add_to_update, committed
from siyu_kit.protos import epoch_ms, utcnow
from siyu_kit.repository import insert_new, save_change

from services.member.adapters import coupon_messages as messages
from services.member.application.coupon_ports import Claiming, Inserted
from services.member.domain.coupons import (CouponConfig, CouponKind, CouponRule, CouponState, CouponTemplate,
                                            GrantJob, GrantState, MemberCoupon, Scope, TemplateState,
                                            TemplateStats, Validity)


class CouponTemplateDoc(OutboxDocument):
    id = me.StringField(primary_key=True)  # cpt_…
    merchant_id = me.StringField(required=True)
    name = me.StringField(required=True)
    rule = me.DictField()
    validity = me.DictField()  # {starts_ms, ends_ms} or {days}
    total = me.IntField(default=0)  # 0: unlimited
    per_member_limit = me.IntField(default=1)
    self_claim = me.IntField(default=1)
    marketing = me.IntField(default=0)
    state = me.StringField(required=True)
    issued = me.IntField(default=0)
    claiming = me.DictField()  # coupon id -> ms: units taken whose coupon is not confirmed yet
    claiming_count = me.IntField(default=0)
    # The creating request's idempotency key and the digest of its design; absent on
    # templates from before keys (hence sparse).
    creation_key = me.StringField()
    fingerprint = me.StringField()
    version = me.IntField(default=1)
    created_ms = me.IntField()
    updated_ms = me.IntField()
    meta = {"collection": "coupon_templates",
            "indexes": [{"fields": ["merchant_id", "state"]}, {"fields": ["claiming_count"]},
                        {"fields": ["merchant_id", "creation_key"], "unique": True, "sparse": True},
                        {"fields": ["outbox_pending"]}]}


class MemberCouponDoc(OutboxDocument):
    id = me.StringField(primary_key=True)  # cpn_…
    merchant_id = me.StringField(required=True)
    template_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    slot = me.IntField(required=True)
    claim_key = me.StringField(required=True)
    name = me.StringField()
    rule = me.DictField()
    valid_from_ms = me.IntField()
    valid_until_ms = me.IntField()
    source = me.StringField()
    source_id = me.StringField()
    state = me.StringField(required=True)
    order_id = me.StringField()
    discount = me.IntField(default=0)
    order_amount = me.IntField(default=0)
    locked_until_ms = me.IntField(default=0)
    returned_by = me.ListField(me.StringField())
    swept_order_id = me.StringField(default="")
    claimed_ms = me.IntField()
    updated_ms = me.IntField()
    version = me.IntField(default=1)
    meta = {"collection": "member_coupons",
            "indexes": [{"fields": ["merchant_id", "template_id", "member_id", "slot"], "unique": True},
                        {"fields": ["merchant_id", "claim_key"], "unique": True},
                        {"fields": ["merchant_id", "member_id", "state"]},
                        {"fields": ["merchant_id", "template_id", "state"]},
                        {"fields": ["state", "valid_until_ms"]}, {"fields": ["state", "locked_until_ms"]},
                        {"fields": ["state", "claimed_ms"]}, {"fields": ["outbox_pending"]}]}


class CouponGrantDoc(OutboxDocument):
    id = me.StringField(primary_key=True)  # cgj_…
    merchant_id = me.StringField(required=True)
    template_id = me.StringField(required=True)
    key = me.StringField(required=True)
    audience = me.StringField(required=True)
    member_ids = me.ListField(me.StringField())
    state = me.StringField(required=True)
    cursor = me.StringField(default="")
    granted = me.IntField(default=0)
    skipped = me.DictField()
    created_by = me.StringField()
    created_ms = me.IntField()
    updated_ms = me.IntField()
    version = me.IntField(default=1)
    meta = {"collection": "coupon_grants",
            "indexes": [{"fields": ["merchant_id", "key"], "unique": True}, {"fields": ["state"]},
                        {"fields": ["outbox_pending"]}]}


class CouponSettingsDoc(me.Document):
    """One per merchant (_id is the merchant id); absent: the defaults."""
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    return_on_refund = me.IntField(default=1)
    new_member_template_id = me.StringField(default="")
    updated_ms = me.IntField()
    meta = {"collection": "coupon_settings"}


DOCS = (CouponTemplateDoc, MemberCouponDoc, CouponGrantDoc, CouponSettingsDoc)
OUTBOX = (CouponTemplateDoc, MemberCouponDoc, CouponGrantDoc)


def ensure_indexes() -> None:
    for doc in DOCS:
        doc.ensure_indexes()


def _col(doc) -> Collection:
    return doc._get_collection()


def outbox_collections() -> list[Collection]:
    return [_col(doc) for doc in OUTBOX]


def _ms(value: datetime | None) -> int | None:
    return None if value is None else epoch_ms(value)


def _at(ms) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)


# ---- documents ⇄ domain ------------------------------------------------------------------

def rule_doc(rule: CouponRule) -> dict:
    return {"kind": rule.kind.value, "threshold": rule.threshold, "amount_off": rule.amount_off,
            "percent_off_bp": rule.percent_off_bp, "cap": rule.cap, "scope": rule.scope.value,
            "category_ids": list(rule.category_ids), "product_ids": list(rule.product_ids),
            "excluded_product_ids": list(rule.excluded_product_ids), "order_kinds": list(rule.order_kinds)}


def _rule(doc: dict) -> CouponRule:
    return CouponRule(kind=CouponKind(doc["kind"]), threshold=int(doc.get("threshold") or 0),
                      amount_off=int(doc.get("amount_off") or 0), percent_off_bp=int(doc.get("percent_off_bp") or 0),
                      cap=int(doc.get("cap") or 0), scope=Scope(doc.get("scope") or "ALL"),
                      category_ids=tuple(doc.get("category_ids") or ()), product_ids=tuple(doc.get("product_ids") or ()),
                      excluded_product_ids=tuple(doc.get("excluded_product_ids") or ()),
                      order_kinds=tuple(doc.get("order_kinds") or ("NORMAL",)))


def _validity_doc(v: Validity) -> dict:
    if v.days:
        return {"days": v.days}
    return {"starts_ms": _ms(v.starts_at), "ends_ms": _ms(v.ends_at)}


def _validity(doc: dict) -> Validity:
    if doc.get("days"):
        return Validity(days=int(doc["days"]))
    return Validity(starts_at=_at(doc.get("starts_ms")), ends_at=_at(doc.get("ends_ms")))


def _template_fields(t: CouponTemplate) -> dict:
    return {"name": t.name, "rule": rule_doc(t.rule), "validity": _validity_doc(t.validity), "total": t.total or 0,
            "per_member_limit": t.per_member_limit, "self_claim": int(t.self_claim), "marketing": int(t.marketing),
            "state": t.state.value,
            "updated_ms": _ms(t.updated_at or utcnow())}


def _template(doc: dict) -> CouponTemplate:
    return CouponTemplate(id=doc["_id"], merchant_id=doc["merchant_id"], version=int(doc.get("version") or 1),
                          name=doc["name"], rule=_rule(doc["rule"]), validity=_validity(doc.get("validity") or {}),
                          total=int(doc.get("total") or 0) or None, per_member_limit=int(doc.get("per_member_limit") or 1),
                          self_claim=bool(doc.get("self_claim")), marketing=bool(doc.get("marketing")),
                          state=TemplateState(doc["state"]),
                          issued=int(doc.get("issued") or 0), created_at=_at(doc.get("created_ms")),
                          updated_at=_at(doc.get("updated_ms")), creation_key=doc.get("creation_key") or "",
                          fingerprint=doc.get("fingerprint") or "")


def _coupon(doc: dict) -> MemberCoupon:
    return MemberCoupon(id=doc["_id"], merchant_id=doc["merchant_id"], version=int(doc.get("version") or 1),
                        template_id=doc["template_id"], member_id=doc["member_id"], slot=int(doc["slot"]),
                        claim_key=doc["claim_key"], name=doc.get("name") or "", rule=_rule(doc["rule"]),
                        valid_from=_at(doc["valid_from_ms"]), valid_until=_at(doc["valid_until_ms"]),
                        source=doc.get("source") or "", source_id=doc.get("source_id") or "",
                        state=CouponState(doc["state"]), order_id=doc.get("order_id") or "",
                        discount=int(doc.get("discount") or 0), order_amount=int(doc.get("order_amount") or 0),
                        locked_until=_at(doc.get("locked_until_ms") or None),
                        returned_by=tuple(doc.get("returned_by") or ()),
                        swept_order_id=doc.get("swept_order_id") or "", claimed_at=_at(doc.get("claimed_ms")),
                        updated_at=_at(doc.get("updated_ms")))


def _grant(doc: dict) -> GrantJob:
    return GrantJob(id=doc["_id"], merchant_id=doc["merchant_id"], version=int(doc.get("version") or 1),
                    template_id=doc["template_id"], key=doc["key"], audience=doc["audience"],
                    member_ids=tuple(doc.get("member_ids") or ()), state=GrantState(doc["state"]),
                    cursor=doc.get("cursor") or "", granted=int(doc.get("granted") or 0),
                    skipped={str(k): int(v) for k, v in (doc.get("skipped") or {}).items()},
                    created_by=doc.get("created_by") or "", created_at=_at(doc.get("created_ms")),
                    updated_at=_at(doc.get("updated_ms")))


NO_OUTBOX = {"outbox": 0}


def _page(collection: Collection, query: dict, after_id: str, limit: int) -> list[dict]:
    """Newest first by id (ULIDs sort by time), ids below `after_id` when given."""
    if after_id:
        query = {**query, "_id": {"$lt": after_id}}
    return list(collection.find(query, NO_OUTBOX).sort("_id", -1).limit(limit))


# ---- the counter: one conditional atomic update per unit -------------------------------------------

def take_unit(collection: Collection, merchant_id: str, template_id: str, coupon_id: str, now_ms: int) -> bool:
    """Takes one unit of the template for the coupon: `$inc issued` guarded by the state,
    `issued < total` (the total as read: a total changed meanwhile makes the update miss
    and the loop read again) and the coupon having no entry yet. Never reads a count to
    write it back."""
    key = {"_id": template_id, "merchant_id": merchant_id}
    entry = f"claiming.{coupon_id}"
    update = {"$inc": {"issued": 1, "claiming_count": 1}, "$set": {entry: now_ms}}
    for _ in range(5):
        doc = collection.find_one(key, {"state": 1, "total": 1, "issued": 1, "claiming": 1})
        if doc is None:
            return False
        if coupon_id in (doc.get("claiming") or {}):
            return True  # taken for this coupon before
        total = int(doc.get("total") or 0)
        if doc.get("state") != TemplateState.ACTIVE.value or (total and int(doc.get("issued") or 0) >= total):
            return False
        query = {**key, "state": TemplateState.ACTIVE.value, "total": total, entry: {"$exists": False}}
        if total:
            query["issued"] = {"$lt": total}
        if collection.update_one(query, update).modified_count == 1:
            return True
    return False


def settle_unit(collection: Collection, merchant_id: str, template_id: str, coupon_id: str) -> bool:
    entry = f"claiming.{coupon_id}"
    return collection.update_one({"_id": template_id, "merchant_id": merchant_id, entry: {"$exists": True}},
                                 {"$unset": {entry: ""}, "$inc": {"claiming_count": -1}}).modified_count == 1


def give_back_unit(collection: Collection, merchant_id: str, template_id: str, coupon_id: str) -> bool:
    entry = f"claiming.{coupon_id}"
    return collection.update_one({"_id": template_id, "merchant_id": merchant_id, entry: {"$exists": True}},
                                 {"$unset": {entry: ""}, "$inc": {"issued": -1, "claiming_count": -1}}
                                 ).modified_count == 1


# ---- a grant's chunk: several units in one conditional update ------------------------------------

def claiming_ids(collection: Collection, merchant_id: str, template_id: str) -> set[str]:
    doc = collection.find_one({"_id": template_id, "merchant_id": merchant_id}, {"claiming": 1})
    return set((doc or {}).get("claiming") or {})


def take_units(collection: Collection, merchant_id: str, template_id: str, coupon_ids: list[str],
               now_ms: int) -> bool:
    """`take_unit` for n coupons: `$inc issued n` with an entry each, guarded as one unit is
    (state, the total as read, no entry yet for any of them) and by `issued <= total - n`."""
    if not coupon_ids:
        return True
    n = len(coupon_ids)
    key = {"_id": template_id, "merchant_id": merchant_id}
    doc = collection.find_one(key, {"state": 1, "total": 1, "issued": 1})
    if doc is None or doc.get("state") != TemplateState.ACTIVE.value:
        return False
    total = int(doc.get("total") or 0)
    if total and int(doc.get("issued") or 0) + n > total:
        return False
    query = {**key, "state": TemplateState.ACTIVE.value, "total": total,
             **{f"claiming.{c}": {"$exists": False} for c in coupon_ids}}
    if total:
        query["issued"] = {"$lte": total - n}
    update = {"$inc": {"issued": n, "claiming_count": n}, "$set": {f"claiming.{c}": now_ms for c in coupon_ids}}
    return collection.update_one(query, update).modified_count == 1


def settle_units(collection: Collection, merchant_id: str, template_id: str, coupon_ids: list[str]) -> None:
    """One update when every entry is still there; else each on its own (the recovery job
    or another runner settled some)."""
    if not coupon_ids:
        return
    query = {"_id": template_id, "merchant_id": merchant_id,
             **{f"claiming.{c}": {"$exists": True} for c in coupon_ids}}
    update = {"$unset": {f"claiming.{c}": "" for c in coupon_ids}, "$inc": {"claiming_count": -len(coupon_ids)}}
    if collection.update_one(query, update).modified_count == 1:
        return
    for coupon_id in coupon_ids:
        settle_unit(collection, merchant_id, template_id, coupon_id)


class CouponTemplateRepository:
    async def get(self, merchant_id: str, template_id: str) -> CouponTemplate | None:
        doc = await run_sync(_col(CouponTemplateDoc).find_one, {"_id": template_id, "merchant_id": merchant_id},
                             {"outbox": 0, "claiming": 0})
        return _template(doc) if doc else None

    async def add(self, template: CouponTemplate) -> bool:
        recorded = template.pull_events()
        doc = {"_id": template.id, "merchant_id": template.merchant_id, **_template_fields(template),
               "issued": 0, "claiming": {}, "claiming_count": 0, "version": template.version,
               "created_ms": _ms(template.created_at or utcnow())}
        if template.creation_key:
            doc.update(creation_key=template.creation_key, fingerprint=template.fingerprint)
        return await run_sync(insert_new, _col(CouponTemplateDoc), doc,
                              messages.template_events(template, recorded, template.version))

    async def save(self, template: CouponTemplate) -> None:
        recorded = template.pull_events()
        query: dict = {"_id": template.id, "merchant_id": template.merchant_id}
        if template.total is not None:
            query["issued"] = {"$lte": template.total}
        version = template.next_version
        await run_sync(save_change, _col(CouponTemplateDoc), query, {"$set": _template_fields(template)},
                       messages.template_events(template, recorded, version), version=template.version)
        template.version = version

    async def page(self, merchant_id: str, state: TemplateState | None, after_id: str,
                   limit: int) -> list[CouponTemplate]:
        query: dict = {"merchant_id": merchant_id}
        if state is not None:
            query["state"] = state.value
        docs = await run_sync(lambda: _page(_col(CouponTemplateDoc), query, after_id, limit))
        return [_template(d) for d in docs]

    async def by_creation_key(self, merchant_id: str, key: str) -> CouponTemplate | None:
        doc = await run_sync(_col(CouponTemplateDoc).find_one, {"merchant_id": merchant_id, "creation_key": key},
                             {"outbox": 0, "claiming": 0})
        return _template(doc) if doc else None

    async def claimable_page(self, merchant_id: str, after_id: str, limit: int) -> list[CouponTemplate]:
        query = {"merchant_id": merchant_id, "state": TemplateState.ACTIVE.value, "self_claim": 1}
        docs = await run_sync(lambda: _page(_col(CouponTemplateDoc), query, after_id, limit))
        return [_template(d) for d in docs]

    async def take_unit(self, merchant_id: str, template_id: str, coupon_id: str, now: datetime) -> bool:
        return await run_sync(take_unit, _col(CouponTemplateDoc), merchant_id, template_id, coupon_id, epoch_ms(now))

    async def settle_unit(self, merchant_id: str, template_id: str, coupon_id: str) -> None:
        await run_sync(settle_unit, _col(CouponTemplateDoc), merchant_id, template_id, coupon_id)

    async def give_back_unit(self, merchant_id: str, template_id: str, coupon_id: str) -> bool:
        return await run_sync(give_back_unit, _col(CouponTemplateDoc), merchant_id, template_id, coupon_id)

    async def claiming_ids(self, merchant_id: str, template_id: str) -> set[str]:
        return await run_sync(claiming_ids, _col(CouponTemplateDoc), merchant_id, template_id)

    async def take_units(self, merchant_id: str, template_id: str, coupon_ids: list[str], now: datetime) -> bool:
        return await run_sync(take_units, _col(CouponTemplateDoc), merchant_id, template_id, coupon_ids,
                              epoch_ms(now))

    async def settle_units(self, merchant_id: str, template_id: str, coupon_ids: list[str]) -> None:
        await run_sync(settle_units, _col(CouponTemplateDoc), merchant_id, template_id, coupon_ids)

    async def claiming(self, before: datetime, limit: int) -> list[Claiming]:
        cutoff = epoch_ms(before)
        docs = await run_sync(lambda: list(_col(CouponTemplateDoc).find(
            {"claiming_count": {"$gt": 0}}, {"merchant_id": 1, "claiming": 1}).limit(limit)))
        out = [Claiming(d["merchant_id"], d["_id"], coupon_id, _at(ms))
               for d in docs for coupon_id, ms in (d.get("claiming") or {}).items() if int(ms) < cutoff]
        return out[:limit]


def _coupon_doc(c: MemberCoupon) -> dict:
    return {"_id": c.id, "merchant_id": c.merchant_id, "template_id": c.template_id, "member_id": c.member_id,
            "slot": c.slot, "claim_key": c.claim_key, "name": c.name, "rule": rule_doc(c.rule),
            "valid_from_ms": _ms(c.valid_from), "valid_until_ms": _ms(c.valid_until), "source": c.source,
            "source_id": c.source_id, "state": c.state.value, "order_id": c.order_id, "discount": c.discount,
            "order_amount": c.order_amount, "locked_until_ms": _ms(c.locked_until) or 0,
            "returned_by": list(c.returned_by), "claimed_ms": _ms(c.claimed_at or utcnow()),
            "updated_ms": _ms(c.updated_at or utcnow()), "version": c.version}


def insert_coupon(collection: Collection, doc: dict) -> Inserted:
    """Inserts a CLAIMING coupon; on a duplicate key, which one: the claim key (the claim
    was made before) or the member's slot (another claim holds it)."""
    try:
        collection.insert_one(doc)
    except DuplicateKeyError:
        if collection.find_one({"merchant_id": doc["merchant_id"], "claim_key": doc["claim_key"]}, {"_id": 1}):
            return Inserted.KEY_USED
        return Inserted.SLOT_TAKEN
    return Inserted.OK


def insert_coupons(collection: Collection, docs: list[dict]) -> set[str]:
    """Unordered: a coupon whose claim key or slot is held already is left out, the rest go in."""
    if not docs:
        return set()
    try:
        collection.bulk_write([InsertOne(d) for d in docs], ordered=False)
    except BulkWriteError as failed:
        refused = {int(e["index"]) for e in failed.details.get("writeErrors") or []}
        if any(int(e.get("code") or 0) != 11000 for e in failed.details.get("writeErrors") or []):
            raise
        return {d["_id"] for i, d in enumerate(docs) if i not in refused}
    return {d["_id"] for d in docs}


def confirm_coupons(collection: Collection, changes: list[tuple[dict, dict]]) -> set[str]:
    """Each (query, update) a confirmation under its version, sent as one unordered bulk
    write; the ids no longer CLAIMING afterwards."""
    if not changes:
        return set()
    collection.bulk_write([UpdateOne(q, u) for q, u in changes], ordered=False)
    for q, _ in changes:
        committed(collection, q["_id"])
    ids = [q["_id"] for q, _ in changes]
    return {d["_id"] for d in collection.find({"_id": {"$in": ids}}, {"state": 1})
            if d.get("state") != CouponState.CLAIMING.value}


class MemberCouponRepository:
    async def get(self, merchant_id: str, coupon_id: str) -> MemberCoupon | None:
        doc = await run_sync(_col(MemberCouponDoc).find_one, {"_id": coupon_id, "merchant_id": merchant_id},
                             NO_OUTBOX)
        return _coupon(doc) if doc else None

    async def by_claim_key(self, merchant_id: str, claim_key: str) -> MemberCoupon | None:
        doc = await run_sync(_col(MemberCouponDoc).find_one, {"merchant_id": merchant_id, "claim_key": claim_key},
                             NO_OUTBOX)
        return _coupon(doc) if doc else None

    async def slots_taken(self, merchant_id: str, template_id: str, member_id: str) -> set[int]:
        docs = await run_sync(lambda: list(_col(MemberCouponDoc).find(
            {"merchant_id": merchant_id, "template_id": template_id, "member_id": member_id}, {"slot": 1})))
        return {int(d["slot"]) for d in docs}

    async def held_counts(self, merchant_id: str, member_id: str, template_ids: list[str]) -> dict[str, int]:
        if not template_ids:
            return {}
        docs = await run_sync(lambda: list(_col(MemberCouponDoc).find(
            {"merchant_id": merchant_id, "member_id": member_id, "template_id": {"$in": list(template_ids)}},
            {"template_id": 1})))
        counts: dict[str, int] = {}
        for d in docs:
            counts[d["template_id"]] = counts.get(d["template_id"], 0) + 1
        return counts

    async def insert(self, coupon: MemberCoupon) -> Inserted:
        coupon.pull_events()  # a CLAIMING coupon records nothing; its claim is recorded on confirm
        return await run_sync(insert_coupon, _col(MemberCouponDoc), _coupon_doc(coupon))

    async def of_members(self, merchant_id: str, template_id: str,
                         member_ids: list[str]) -> dict[str, list[MemberCoupon]]:
        docs = await run_sync(lambda: list(_col(MemberCouponDoc).find(
            {"merchant_id": merchant_id, "template_id": template_id, "member_id": {"$in": list(member_ids)}},
            NO_OUTBOX)))
        out: dict[str, list[MemberCoupon]] = {}
        for d in docs:
            out.setdefault(d["member_id"], []).append(_coupon(d))
        return out

    async def insert_many(self, coupons: list[MemberCoupon]) -> set[str]:
        for c in coupons:
            c.pull_events()  # a CLAIMING coupon records nothing; its claim is recorded on confirm
        return await run_sync(insert_coupons, _col(MemberCouponDoc), [_coupon_doc(c) for c in coupons])

    async def confirm_many(self, coupons: list[MemberCoupon]) -> set[str]:
        changes = []
        for coupon in coupons:
            recorded = coupon.pull_events()
            version = coupon.next_version
            update = {"$set": {"state": coupon.state.value, "updated_ms": _ms(coupon.updated_at or utcnow())},
                      "$inc": {"version": 1}}
            changes.append(({"_id": coupon.id, "merchant_id": coupon.merchant_id, "version": coupon.version},
                            add_to_update(update, *messages.coupon_events(coupon, recorded, version))))
        return await run_sync(confirm_coupons, _col(MemberCouponDoc), changes)

    async def save(self, coupon: MemberCoupon) -> None:
        recorded = coupon.pull_events()
        version = coupon.next_version
        fields = {"state": coupon.state.value, "order_id": coupon.order_id, "discount": coupon.discount,
                  "order_amount": coupon.order_amount, "locked_until_ms": _ms(coupon.locked_until) or 0,
                  "returned_by": list(coupon.returned_by), "swept_order_id": coupon.swept_order_id,
                  "updated_ms": _ms(coupon.updated_at or utcnow())}
        await run_sync(save_change, _col(MemberCouponDoc), {"_id": coupon.id, "merchant_id": coupon.merchant_id},
                       {"$set": fields}, messages.coupon_events(coupon, recorded, version), version=coupon.version)
        coupon.version = version

    async def drop_claiming(self, merchant_id: str, coupon_id: str) -> bool:
        result = await run_sync(_col(MemberCouponDoc).delete_one,
                                {"_id": coupon_id, "merchant_id": merchant_id, "state": CouponState.CLAIMING.value})
        return result.deleted_count == 1

    async def of_member(self, merchant_id: str, member_id: str, states: tuple[CouponState, ...], after_id: str,
                        limit: int) -> list[MemberCoupon]:
        query = {"merchant_id": merchant_id, "member_id": member_id, "state": {"$in": [s.value for s in states]}}
        docs = await run_sync(lambda: _page(_col(MemberCouponDoc), query, after_id, limit))
        return [_coupon(d) for d in docs]

    async def due_to_expire(self, now: datetime, after_id: str, limit: int) -> list[MemberCoupon]:
        query: dict = {"state": CouponState.AVAILABLE.value, "valid_until_ms": {"$lte": epoch_ms(now)}}
        if after_id:
            query["_id"] = {"$gt": after_id}
        docs = await run_sync(lambda: list(_col(MemberCouponDoc).find(query, NO_OUTBOX).sort("_id", 1).limit(limit)))
        return [_coupon(d) for d in docs]

    async def stats(self, merchant_id: str, template_id: str) -> TemplateStats:
        """Counted in Python over the template's coupons that left AVAILABLE (docs/storage.md:
        no `$group` on the embedded server)."""
        docs = await run_sync(lambda: list(_col(MemberCouponDoc).find(
            {"merchant_id": merchant_id, "template_id": template_id,
             "state": {"$in": [CouponState.LOCKED.value, CouponState.USED.value, CouponState.EXPIRED.value]}},
            {"state": 1, "discount": 1, "order_amount": 1})))
        used = [d for d in docs if d["state"] == CouponState.USED.value]
        return TemplateStats(locked=sum(d["state"] == CouponState.LOCKED.value for d in docs), used=len(used),
                             expired=sum(d["state"] == CouponState.EXPIRED.value for d in docs),
                             discount_given=sum(int(d.get("discount") or 0) for d in used),
                             gmv=sum(int(d.get("order_amount") or 0) for d in used))

    async def overdue_locks(self, before: datetime, limit: int) -> list[MemberCoupon]:
        docs = await run_sync(lambda: list(_col(MemberCouponDoc).find(
            {"state": CouponState.LOCKED.value, "locked_until_ms": {"$lt": epoch_ms(before)}}, NO_OUTBOX)
            .sort("_id", 1).limit(limit)))
        return [_coupon(d) for d in docs]

    async def stale_claiming(self, before: datetime, limit: int) -> list[MemberCoupon]:
        docs = await run_sync(lambda: list(_col(MemberCouponDoc).find(
            {"state": CouponState.CLAIMING.value, "claimed_ms": {"$lt": epoch_ms(before)}}, NO_OUTBOX)
            .sort("_id", 1).limit(limit)))
        return [_coupon(d) for d in docs]


def _grant_fields(job: GrantJob) -> dict:
    return {"state": job.state.value, "cursor": job.cursor, "granted": job.granted, "skipped": dict(job.skipped),
            "updated_ms": _ms(job.updated_at or utcnow())}


class GrantJobRepository:
    async def get(self, merchant_id: str, job_id: str) -> GrantJob | None:
        doc = await run_sync(_col(CouponGrantDoc).find_one, {"_id": job_id, "merchant_id": merchant_id}, NO_OUTBOX)
        return _grant(doc) if doc else None

    async def by_key(self, merchant_id: str, key: str) -> GrantJob | None:
        doc = await run_sync(_col(CouponGrantDoc).find_one, {"merchant_id": merchant_id, "key": key}, NO_OUTBOX)
        return _grant(doc) if doc else None

    async def add(self, job: GrantJob) -> bool:
        recorded = job.pull_events()
        doc = {"_id": job.id, "merchant_id": job.merchant_id, "template_id": job.template_id, "key": job.key,
               "audience": job.audience, "member_ids": list(job.member_ids), "created_by": job.created_by,
               "created_ms": _ms(job.created_at or utcnow()), "version": job.version, **_grant_fields(job)}
        return await run_sync(insert_new, _col(CouponGrantDoc), doc,
                              messages.grant_events(job, recorded, job.version))

    async def save(self, job: GrantJob) -> None:
        recorded = job.pull_events()
        version = job.next_version
        await run_sync(save_change, _col(CouponGrantDoc), {"_id": job.id, "merchant_id": job.merchant_id},
                       {"$set": _grant_fields(job)}, messages.grant_events(job, recorded, version),
                       version=job.version)
        job.version = version

    async def running(self, limit: int) -> list[GrantJob]:
        docs = await run_sync(lambda: list(_col(CouponGrantDoc).find({"state": GrantState.RUNNING.value}, NO_OUTBOX)
                                           .sort("_id", 1).limit(limit)))
        return [_grant(d) for d in docs]


class CouponSettingsRepository:
    async def get(self, merchant_id: str) -> CouponConfig:
        doc = await run_sync(_col(CouponSettingsDoc).find_one, {"_id": merchant_id, "merchant_id": merchant_id})
        if doc is None:
            return CouponConfig()
        return CouponConfig(return_on_refund=bool(doc.get("return_on_refund", 1)),
                            new_member_template_id=doc.get("new_member_template_id") or "")

    async def put(self, merchant_id: str, config: CouponConfig) -> None:
        await run_sync(_col(CouponSettingsDoc).update_one, {"_id": merchant_id},
                       {"$set": {"merchant_id": merchant_id, "return_on_refund": int(config.return_on_refund),
                                 "new_member_template_id": config.new_member_template_id,
                                 "updated_ms": epoch_ms(utcnow())}}, upsert=True)

    async def return_on_refund(self, merchant_id: str) -> bool:
        return (await self.get(merchant_id)).return_on_refund
