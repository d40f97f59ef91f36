"""Refunds in MongoDB: the stored document ⇄ the Refund aggregate. Every query filters
by merchant, except the scan of the job that finishes interrupted refunds."""
from __future__ import annotations

from typing import Any

from mongoengine import DateTimeField, DictField, Document, IntField, ListField, StringField
from pymongo import ASCENDING, DESCENDING

from siyu_kit.db import run_sync
from siyu_kit.protos import aware
from siyu_kit.repository import insert_new, save_change

from services.order.domain.refunds import OPEN, ProviderStatus, Refund, RefundLine, RefundState


class RefundDoc(Document):
    """The order carries the refund's event (order.refunded), so the refund has no outbox."""
    id = StringField(primary_key=True)  # rfd_…
    merchant_id = StringField(required=True)
    order_id = StringField(required=True)
    member_id = StringField(required=True)
    requested_by = StringField(required=True)  # domain.refunds.BY_MEMBER / BY_STAFF
    idempotency_key = StringField(required=True)
    state = StringField(required=True)  # domain.refunds.RefundState
    # {line_id, sku_id, quantity, amount, explicit (0/1: the amount was asked for), restocked (0/1)}.
    # The amounts are estimates until the order takes the refund; then they are final.
    lines = ListField(DictField())
    amount = IntField(required=True)
    shipping_fee_refund = IntField(default=0)
    currency = StringField(required=True)
    reason = StringField()
    note = StringField()
    created_at = DateTimeField(required=True)
    # When execution started: the job finishes refunds left APPROVED for a while.
    approved_ms = IntField()
    refunded_at = DateTimeField()
    provider_refund_id = StringField()
    # sha256 of the request that opened it (domain.idempotency); absent on older refunds
    request_hash = StringField()
    # domain.refunds.ProviderStatus; absent when no money moved (or on older refunds)
    provider_status = StringField()
    # When the job next asks the provider about a PROCESSING refund (epoch ms); 0: never
    provider_query_ms = IntField()
    # When a caller took the refund to call the provider (epoch ms); absent: nobody yet
    provider_call_ms = IntField()
    version = IntField(required=True)

    meta = {
        "collection": "refunds",
        "strict": False,
        "indexes": [
            {"fields": ["merchant_id", "order_id", "requested_by", "idempotency_key"], "unique": True},
            {"fields": ["merchant_id", "state"]},
            {"fields": ["state", "approved_ms"]},
            # the 售后 tab of a member's order list
            {"fields": ["merchant_id", "member_id"]},
            # the refund status job, and staff's ListRefunds by provider status
            {"fields": ["provider_query_ms", "provider_status"]},
            {"fields": ["merchant_id", "provider_status"]},
        ],
    }


def refund_of(doc: dict | None) -> Refund | None:
    if doc is None:
        return None
    return Refund(
        id=doc["_id"], merchant_id=doc["merchant_id"], version=doc["version"], order_id=doc["order_id"],
        member_id=doc["member_id"], requested_by=doc["requested_by"], idempotency_key=doc["idempotency_key"],
        state=RefundState(doc["state"]),
        lines=tuple(RefundLine(l["line_id"], l["sku_id"], l["quantity"], l["amount"], bool(l.get("explicit")),
                               bool(l.get("restocked"))) for l in doc.get("lines") or ()),
        amount=doc["amount"], currency=doc["currency"], created_at=aware(doc["created_at"]),
        shipping_fee_refund=doc.get("shipping_fee_refund") or 0, reason=doc.get("reason") or "",
        note=doc.get("note") or "", approved_ms=doc.get("approved_ms"), refunded_at=aware(doc.get("refunded_at")),
        provider_refund_id=doc.get("provider_refund_id") or "", request_hash=doc.get("request_hash") or "",
        provider_status=doc.get("provider_status") or "", provider_query_ms=doc.get("provider_query_ms") or 0,
        provider_call_ms=doc.get("provider_call_ms") or 0)


def _lines(refund: Refund) -> list[dict]:
    return [{"line_id": l.line_id, "sku_id": l.sku_id, "quantity": l.quantity, "amount": l.amount,
             "explicit": int(l.explicit), "restocked": int(l.restocked)} for l in refund.lines]


def _new_doc(r: Refund) -> dict:
    doc = {"_id": r.id, "merchant_id": r.merchant_id, "order_id": r.order_id, "member_id": r.member_id,
           "requested_by": r.requested_by, "idempotency_key": r.idempotency_key, "state": r.state.value,
           "lines": _lines(r), "amount": r.amount, "shipping_fee_refund": r.shipping_fee_refund,
           "currency": r.currency, "reason": r.reason, "created_at": r.created_at, "version": r.version}
    if r.approved_ms is not None:
        doc["approved_ms"] = r.approved_ms
    if r.request_hash:
        doc["request_hash"] = r.request_hash
    return doc


def _fields(r: Refund) -> dict[str, Any]:
    stored = {"state": r.state.value, "note": r.note, "approved_ms": r.approved_ms, "refunded_at": r.refunded_at,
              "amount": r.amount, "shipping_fee_refund": r.shipping_fee_refund, "lines": _lines(r),
              "provider_refund_id": r.provider_refund_id, "provider_status": r.provider_status,
              "provider_query_ms": r.provider_query_ms, "provider_call_ms": r.provider_call_ms}
    return {name: stored[name] for name in sorted(r.changed)}


class Refunds:
    """The RefundRepository port over MongoDB."""

    @staticmethod
    def _c():
        return RefundDoc._get_collection()

    def _one(self, query: dict) -> Refund | None:
        return refund_of(self._c().find_one(query))

    def _many(self, query: dict, sort: list[tuple[str, int]], limit: int = 0) -> list[Refund]:
        return [refund_of(d) for d in self._c().find(query).sort(sort).limit(limit)]

    async def add(self, refund: Refund) -> bool:
        """False when the same requester already used the idempotency key on the order."""
        return await run_sync(insert_new, self._c(), _new_doc(refund))

    async def by_key(self, merchant_id: str, order_id: str, requested_by: str, key: str) -> Refund | None:
        return await run_sync(self._one, {"merchant_id": merchant_id, "order_id": order_id,
                                          "requested_by": requested_by, "idempotency_key": key})

    async def get(self, merchant_id: str, refund_id: str) -> Refund | None:
        return await run_sync(self._one, {"_id": refund_id, "merchant_id": merchant_id})

    async def of_order(self, merchant_id: str, order_id: str) -> list[Refund]:
        return await run_sync(self._many, {"merchant_id": merchant_id, "order_id": order_id}, [("_id", ASCENDING)])

    async def count_open(self, merchant_id: str, order_id: str) -> int:
        return await run_sync(self._c().count_documents, {"merchant_id": merchant_id, "order_id": order_id,
                                                          "state": {"$in": [s.value for s in OPEN]}})

    async def page(self, merchant_id: str, order_id: str, state: str, before_id: str, limit: int,
                   provider_status: str = "") -> list[Refund]:
        """Newest first: ULID ids sort by creation time."""
        query: dict[str, Any] = {"merchant_id": merchant_id}
        if order_id:
            query["order_id"] = order_id
        if state:
            query["state"] = state
        if provider_status:
            query["provider_status"] = provider_status
        if before_id:
            query["_id"] = {"$lt": before_id}
        return await run_sync(self._many, query, [("_id", DESCENDING)], limit)

    async def order_ids_of_member(self, merchant_id: str, member_id: str) -> set[str]:
        def ids() -> set[str]:
            cursor = self._c().find({"merchant_id": merchant_id, "member_id": member_id}, {"order_id": 1})
            return {d["order_id"] for d in cursor}
        return await run_sync(ids)

    async def stalled(self, approved_before_ms: int, limit: int) -> list[Refund]:
        """Refunds whose execution started before the given time and has not finished,
        across merchants (the recovery job)."""
        query = {"state": RefundState.APPROVED.value, "approved_ms": {"$lte": approved_before_ms}}
        return await run_sync(self._many, query, [("approved_ms", ASCENDING)], limit)

    async def provider_query_due(self, now_ms: int, limit: int) -> list[Refund]:
        query = {"provider_query_ms": {"$gt": 0, "$lte": now_ms}, "provider_status": ProviderStatus.PROCESSING.value}
        return await run_sync(self._many, query, [("provider_query_ms", ASCENDING)], limit)

    async def take_for_provider_query(self, refund: Refund, seen_ms: int) -> bool:
        def take() -> bool:
            return self._c().update_one(
                {"_id": refund.id, "merchant_id": refund.merchant_id, "provider_query_ms": seen_ms},
                {"$set": {"provider_query_ms": refund.provider_query_ms}}).modified_count == 1
        return await run_sync(take)

    async def save(self, refund: Refund) -> None:
        """Writes the change on the version that was read; raises StaleVersion when
        another write came first."""
        fields = {k: v for k, v in _fields(refund).items() if v is not None}
        await run_sync(save_change, self._c(), {"_id": refund.id, "merchant_id": refund.merchant_id},
                       {"$set": fields}, version=refund.version)
        refund.version += 1
        refund.changed.clear()

