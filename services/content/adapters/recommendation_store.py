"""The recommendation data in MongoDB, kept from events, and the product-content read.

Three kinds of counters, each counted once per order event by the funnel buckets' marks
and guards (funnel_store.Buckets, the algorithm its docstring describes), over collections
of their own:

- `rec_pairs`: one document per product, `with.<other product>` = paid orders that had both;
- `rec_purchases`: one document per member, `units.<product>` bought and `at.<product>` when
  last paid (epoch ms);
- `rec_units`: one document per merchant and UTC day, `units.<product>` paid that day.

Refunds are not subtracted: a refunded order still says the two products were wanted
together, and best sellers of a month move little for a refund. `rec_switches` keeps each
member's personalisation switch from the member service's profile events, newest profile
version wins. Map keys are product ids (no `.` or `$`)."""
from __future__ import annotations

from mongoengine import DateTimeField, DictField, Document, IntField, LongField, StringField
from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync

from services.content.adapters.documents import ContentDoc
from services.content.adapters.funnel_store import Buckets, upsert_retrying
from services.content.adapters.repositories import _content
from services.content.application.recommendation_ports import PaidOrderFact
from services.content.domain import recommendations as rules
from services.content.domain.contents import Content


class RecPairsDoc(Document):
    """`_id` = merchant:product."""
    meta = {"collection": "rec_pairs", "auto_create_index": False, "indexes": [{"fields": ["merchant_id"]}]}
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    product_id = StringField(required=True)
    gen = IntField(default=0)
    marks_n = IntField(default=0)
    marks = DictField()
    with_ = DictField(db_field="with")


class RecPurchasesDoc(Document):
    """`_id` = merchant:member."""
    meta = {"collection": "rec_purchases", "auto_create_index": False, "indexes": [{"fields": ["merchant_id"]}]}
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    member_id = StringField(required=True)
    gen = IntField(default=0)
    marks_n = IntField(default=0)
    marks = DictField()
    units = DictField()
    at = DictField()


class RecUnitsDoc(Document):
    """`_id` = merchant:day."""
    meta = {"collection": "rec_units", "auto_create_index": False, "indexes": [{"fields": ["merchant_id", "day"]}]}
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    day = StringField(required=True)
    gen = IntField(default=0)
    marks_n = IntField(default=0)
    marks = DictField()
    units = DictField()


class RecGuardDoc(Document):
    """A counted cause whose mark moved out of its document (funnel_store.Buckets)."""
    meta = {"collection": "rec_guards", "auto_create_index": False,
            "indexes": [{"fields": ["expires_at"], "expireAfterSeconds": 0}]}
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    expires_at = DateTimeField(required=True)


class RecSwitchDoc(Document):
    """`_id` = merchant:member; `off` 1 when the member switched personalisation off, at
    the profile `version` that said so."""
    meta = {"collection": "rec_switches", "auto_create_index": False, "indexes": []}
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    member_id = StringField(required=True)
    off = IntField(default=0)
    version = LongField(default=0)


# Content that links a product, newest first (ListProductContents).
PRODUCT_CONTENTS_INDEX = [("merchant_id", 1), ("status", 1), ("product_ids", 1), ("feed_key", -1)]


def ensure_indexes() -> None:
    for doc in (RecPairsDoc, RecPurchasesDoc, RecUnitsDoc, RecGuardDoc, RecSwitchDoc):
        doc.ensure_indexes()
    ContentDoc._get_collection().create_index(PRODUCT_CONTENTS_INDEX, name="product_contents")


# ---- the query and update shapes (tests/conformance/test_recommendation_shapes.py) -----

class Increments:
    """A counting change for Buckets.apply_once: map entries to `$inc`."""

    def __init__(self, field: str, amounts: dict[str, int]):
        self.field, self.amounts = field, amounts

    def as_increments(self) -> dict:
        return {f"{self.field}.{key}": n for key, n in self.amounts.items()}


def key(merchant_id: str, ref: str) -> str:
    return f"{merchant_id}:{ref}"


def new_doc(doc_key: str, fields: dict, counted_map: str) -> dict:
    """A counted document before its first count (the shape Buckets counts into)."""
    return {"_id": doc_key, **fields, "gen": 0, "marks_n": 0, "marks": {}, counted_map: {}}


def switch_query(merchant_id: str, member_id: str, version: int) -> dict:
    return {"_id": key(merchant_id, member_id), "version": {"$lt": version}}


def switch_update(merchant_id: str, member_id: str, on: bool, version: int) -> dict:
    return {"$set": {"merchant_id": merchant_id, "member_id": member_id, "off": int(not on), "version": version}}


def by_ids_query(merchant_id: str, ids: list[str]) -> dict:
    return {"_id": {"$in": ids}, "merchant_id": merchant_id}


def linking_query(merchant_id: str, channel: str, product_id: str, below: str) -> dict:
    query: dict = {"merchant_id": merchant_id, "status": "PUBLISHED", "product_ids": {"$in": [product_id]}}
    if channel:
        query["visible_on"] = {"$in": [channel]}
    if below:
        query["feed_key"] = {"$lt": below}
    return query


class RecommendationStore:
    def __init__(self, pairs=None, purchases=None, units=None, guards=None, switches=None):
        # pymongo collections (or stand-ins with their semantics); the documents' own by default.
        self._given = (pairs, purchases, units, guards, switches)
        self._buckets: tuple[Buckets, Buckets, Buckets] | None = None

    def _collections(self):
        defaults = (RecPairsDoc, RecPurchasesDoc, RecUnitsDoc, RecGuardDoc, RecSwitchDoc)
        return tuple(c if c is not None else d._get_collection() for c, d in zip(self._given, defaults))

    def buckets(self) -> tuple[Buckets, Buckets, Buckets]:
        if self._buckets is None:
            pairs, purchases, units, guards, _ = self._collections()
            self._buckets = (Buckets(pairs, guards), Buckets(purchases, guards), Buckets(units, guards))
        return self._buckets

    # ---- kept from order.paid
    async def record_paid(self, fact: PaidOrderFact) -> int:
        return await run_sync(self._record_paid, fact)

    def _record_paid(self, fact: PaidOrderFact) -> int:
        pairs, purchases, units = self.buckets()
        m, cause, counted = fact.merchant_id, fact.event_id, 0
        for product_id, others in rules.pairs(fact.units).items():
            counted += self._count(pairs, key(m, product_id), {"merchant_id": m, "product_id": product_id}, cause,
                                   Increments("with", {o: 1 for o in others}))
        if fact.member_id:
            # `at` is set by the same counting update: an older order applied after a newer
            # one moves it back, which only shortens how long the product counts as recent.
            counted += self._count(purchases, key(m, fact.member_id), {"merchant_id": m, "member_id": fact.member_id},
                                   cause, Increments("units", fact.units),
                                   {f"at.{p}": fact.paid_ms for p in fact.units})
        day = rules.day_of(fact.paid_ms)
        counted += self._count(units, key(m, day), {"merchant_id": m, "day": day}, cause,
                               Increments("units", fact.units))
        return counted

    @staticmethod
    def _count(buckets: Buckets, doc_key: str, fields: dict, cause: str, change: Increments,
               also: dict | None = None) -> bool:
        # The document is created first, with its empty maps: an upsert that inserts stores
        # an `$inc` of `map.entry` as a flat key "map.entry" on the embedded server (see
        # docs/storage.md), so counting always updates a document that exists.
        try:
            buckets.buckets.insert_one(new_doc(doc_key, fields, change.field))
        except DuplicateKeyError:
            pass
        return buckets.apply_once(doc_key, {**fields, **(also or {})}, cause, change)

    # ---- reads
    async def co_purchased(self, merchant_id: str, product_ids: list[str]) -> dict[str, dict[str, int]]:
        if not product_ids:
            return {}
        pairs = self._collections()[0]
        docs = await run_sync(lambda: list(pairs.find(by_ids_query(merchant_id, [key(merchant_id, p)
                                                                                for p in product_ids]),
                                                      {"product_id": 1, "with": 1})))
        return {d["product_id"]: {p: int(n) for p, n in (d.get("with") or {}).items()} for d in docs}

    async def bought(self, merchant_id: str, member_id: str) -> dict[str, int]:
        purchases = self._collections()[1]
        doc = await run_sync(purchases.find_one, by_ids_query(merchant_id, [key(merchant_id, member_id)]), {"at": 1})
        return {p: int(ms) for p, ms in ((doc or {}).get("at") or {}).items()}

    async def units_sold(self, merchant_id: str, days: list[str]) -> list[dict[str, int]]:
        units = self._collections()[2]
        docs = await run_sync(lambda: list(units.find(by_ids_query(merchant_id, [key(merchant_id, d) for d in days]),
                                                      {"units": 1})))
        return [{p: int(n) for p, n in (d.get("units") or {}).items()} for d in docs]

    # ---- the switch
    async def set_personalised(self, merchant_id: str, member_id: str, on: bool, version: int) -> bool:
        switches = self._collections()[4]
        return await run_sync(upsert_retrying, switches, switch_query(merchant_id, member_id, version),
                              switch_update(merchant_id, member_id, on, version))

    async def personalised(self, merchant_id: str, member_id: str) -> bool:
        switches = self._collections()[4]
        doc = await run_sync(switches.find_one, by_ids_query(merchant_id, [key(merchant_id, member_id)]), {"off": 1})
        return not int((doc or {}).get("off") or 0)

    # ---- the member's data
    async def forget_member(self, merchant_id: str, member_id: str) -> None:
        _, purchases, _, _, switches = self._collections()

        def forget() -> None:
            query = by_ids_query(merchant_id, [key(merchant_id, member_id)])
            purchases.delete_one(query)
            switches.delete_one(query)

        await run_sync(forget)


class ProductContentsStore:
    def __init__(self, collection=None):
        self._col = collection

    def _collection(self):
        return self._col if self._col is not None else ContentDoc._get_collection()

    async def linking(self, merchant_id: str, channel: str, product_id: str, below: str,
                      limit: int) -> list[Content]:
        col = self._collection()
        return await run_sync(lambda: [_content(d) for d in col.find(
            linking_query(merchant_id, channel, product_id, below), {"outbox": 0}).sort("feed_key", -1).limit(limit)])
