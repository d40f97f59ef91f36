"""Guide performance over MongoDB: the orders' credits (who an order counts for, fixed
when first seen) and the range totals of many funnels of one dimension. The counts
themselves are funnel buckets (adapters/funnel_store.py). Shapes:
tests/conformance/test_guide_performance_shapes.py.

`guide_order_credits` holds order ids, guide (stf_) ids and a store: no member's data."""
from __future__ import annotations

from datetime import date

from mongoengine import Document, ListField, StringField
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync

from services.content.adapters.funnel_store import COUNTER_PROJECTION, FunnelBucketDoc
from services.content.domain.funnels import Counters
from services.content.domain.guide_performance import OrderCredit


class OrderCreditDoc(Document):
    """`_id` = merchant:order_id; inserted once, never changed."""
    meta = {"collection": "guide_order_credits", "auto_create_index": False}
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    order_id = StringField(required=True)
    guides = ListField(StringField())
    referral_guide = StringField(default="")
    store = StringField(default="")


def ensure_indexes() -> None:
    OrderCreditDoc.ensure_indexes()


def counters_of(doc: dict) -> Counters:
    return Counters(*(int(doc.get(name) or 0) for name in Counters.names()))


def credit_id(merchant_id: str, order_id: str) -> str:
    return f"{merchant_id}:{order_id}"


def credit_doc(merchant_id: str, credit: OrderCredit) -> dict:
    return {"_id": credit_id(merchant_id, credit.order_id), "merchant_id": merchant_id, "order_id": credit.order_id,
            "guides": list(credit.guides), "referral_guide": credit.referral_guide, "store": credit.store}


def credit_of(doc: dict) -> OrderCredit:
    return OrderCredit(order_id=doc["order_id"], guides=tuple(doc.get("guides") or ()),
                       referral_guide=doc.get("referral_guide", ""), store=doc.get("store", ""))


def add_credit(col, merchant_id: str, credit: OrderCredit) -> OrderCredit:
    try:
        col.insert_one(credit_doc(merchant_id, credit))
        return credit
    except DuplicateKeyError:
        # Another delivery of the same order stored it first: its answer counts.
        return credit_of(col.find_one({"_id": credit_id(merchant_id, credit.order_id), "merchant_id": merchant_id}))


class MongoOrderCredits:
    async def get(self, merchant_id: str, order_id: str) -> OrderCredit | None:
        doc = await run_sync(OrderCreditDoc._get_collection().find_one,
                             {"_id": credit_id(merchant_id, order_id), "merchant_id": merchant_id})
        return credit_of(doc) if doc else None

    async def add(self, merchant_id: str, credit: OrderCredit) -> OrderCredit:
        return await run_sync(add_credit, OrderCreditDoc._get_collection(), merchant_id, credit)


def _after_prefix(prefix: str) -> str:
    """The least string above every string starting with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def totals_query(merchant_id: str, dimension: str, from_day: str, to_day: str, after_ref: str,
                 ref_prefix: str = "") -> dict:
    refs: dict = {}
    if after_ref:
        refs["$gt"] = after_ref
    elif ref_prefix:
        refs["$gte"] = ref_prefix
    if ref_prefix:
        refs["$lt"] = _after_prefix(ref_prefix)
    query = {"merchant_id": merchant_id, "dimension": dimension, "day": {"$gte": from_day, "$lte": to_day}}
    if refs:
        query["ref_id"] = refs
    return query


def days_between(from_day: str, to_day: str) -> int:
    return (date.fromisoformat(to_day) - date.fromisoformat(from_day)).days + 1


def totals_page(col, merchant_id: str, dimension: str, from_day: str, to_day: str, after_ref: str, limit: int,
                ref_prefix: str = "") -> tuple[list[tuple[str, Counters]], str]:
    """A funnel has at most one bucket a day, so `limit` × days buckets by key hold the
    first `limit` funnels whole; more keys than that are left to the next page."""
    projection = {**COUNTER_PROJECTION, "ref_id": 1}
    docs = list(col.find(totals_query(merchant_id, dimension, from_day, to_day, after_ref, ref_prefix), projection)
                .sort("ref_id", ASCENDING).limit(limit * days_between(from_day, to_day)))
    totals: dict[str, Counters] = {}
    currency = ""
    for doc in docs:
        ref = doc["ref_id"]
        if ref not in totals and len(totals) == limit:
            break
        totals[ref] = totals.get(ref, Counters()) + counters_of(doc)
        currency = currency or doc.get("currency", "")
    return list(totals.items()), currency


class MongoFunnelTotals:
    async def totals_page(self, merchant_id: str, dimension: str, from_day: str, to_day: str, after_ref: str,
                          limit: int, ref_prefix: str = "") -> tuple[list[tuple[str, Counters]], str]:
        return await run_sync(totals_page, FunnelBucketDoc._get_collection(), merchant_id, dimension, from_day,
                              to_day, after_ref, limit, ref_prefix)
