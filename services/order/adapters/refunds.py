"""Refunds in MongoDB. Every query filters by merchant, except the scan of the job that
finishes interrupted refunds. Blocking: call through siyu_kit.db.run_sync."""
from __future__ import annotations

from typing import Any

from mongoengine import DateTimeField, DictField, Document, IntField, ListField, StringField
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from siyu_kit.protos import aware

from services.order.domain.refunds import OPEN, RefundState


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
    version = IntField(required=True)

    meta = {
        "collection": "refunds",
        "strict": False,
        "indexes": [
            {"fields": ["merchant_id", "order_id", "requested_by", "idempotency_key"], "unique": True},
            {"fields": ["merchant_id", "state"]},
            {"fields": ["state", "approved_ms"]},
        ],
    }


def _clean(doc: dict | None) -> dict | None:
    if doc is not None:
        for key in ("created_at", "refunded_at"):
            if doc.get(key) is not None:
                doc[key] = aware(doc[key])
    return doc


class Refunds:
    @staticmethod
    def _c():
        return RefundDoc._get_collection()

    def insert(self, doc: dict) -> bool:
        """False when the same requester already used the idempotency key on the order."""
        try:
            self._c().insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    def by_key(self, merchant_id: str, order_id: str, requested_by: str, key: str) -> dict | None:
        return _clean(self._c().find_one({"merchant_id": merchant_id, "order_id": order_id,
                                          "requested_by": requested_by, "idempotency_key": key}))

    def get(self, merchant_id: str, refund_id: str) -> dict | None:
        return _clean(self._c().find_one({"_id": refund_id, "merchant_id": merchant_id}))

    def of_order(self, merchant_id: str, order_id: str) -> list[dict]:
        cursor = self._c().find({"merchant_id": merchant_id, "order_id": order_id}).sort("_id", ASCENDING)
        return [_clean(d) for d in cursor]

    def count_open(self, merchant_id: str, order_id: str) -> int:
        return self._c().count_documents({"merchant_id": merchant_id, "order_id": order_id,
                                          "state": {"$in": [s.value for s in OPEN]}})

    def page(self, merchant_id: str, order_id: str, state: str, before_id: str, limit: int) -> list[dict]:
        """Newest first: ULID ids sort by creation time."""
        query: dict[str, Any] = {"merchant_id": merchant_id}
        if order_id:
            query["order_id"] = order_id
        if state:
            query["state"] = state
        if before_id:
            query["_id"] = {"$lt": before_id}
        return [_clean(d) for d in self._c().find(query).sort("_id", DESCENDING).limit(limit)]

    def transition(self, merchant_id: str, refund_id: str, *, from_state: str, fields: dict,
                   version: int | None = None) -> bool:
        query: dict[str, Any] = {"_id": refund_id, "merchant_id": merchant_id, "state": from_state}
        if version is not None:
            query["version"] = version
        return self._c().update_one(query, {"$set": fields, "$inc": {"version": 1}}).modified_count == 1

    def stalled(self, approved_before_ms: int, limit: int) -> list[dict]:
        """Refunds whose execution started before the given time and has not finished,
        across merchants (the recovery job)."""
        query = {"state": RefundState.APPROVED.value, "approved_ms": {"$lte": approved_before_ms}}
        cursor = self._c().find(query).sort("approved_ms", ASCENDING).limit(limit)
        return [_clean(d) for d in cursor]
