"""Payouts in MongoDB: one document per transfer id (its _id, so one transfer id is one
payout however many calls race), moved out of PROCESSING by one conditional update."""
from __future__ import annotations

from mongoengine import DateTimeField, Document, IntField, StringField

from siyu_kit.db import run_sync
from siyu_kit.protos import aware, utcnow
from siyu_kit.repository import insert_new

from services.order.domain.payouts import Payout, PayoutState


class PayoutDoc(Document):
    id = StringField(primary_key=True)  # the caller's transfer id (a withdrawal's wdr_ id)
    merchant_id = StringField(required=True)
    member_id = StringField(required=True)
    amount = IntField(required=True)
    channel = StringField(required=True)
    remark = StringField()
    state = StringField(required=True)  # domain.payouts.PayoutState
    provider_transfer_id = StringField()
    failure_reason = StringField()
    created_at = DateTimeField(required=True)
    updated_at = DateTimeField()

    meta = {"collection": "payouts", "strict": False, "indexes": [{"fields": ["merchant_id", "member_id"]}]}


def ensure_indexes() -> None:
    PayoutDoc.ensure_indexes()


def payout_of(doc: dict | None) -> Payout | None:
    if doc is None:
        return None
    return Payout(transfer_id=doc["_id"], merchant_id=doc["merchant_id"], member_id=doc["member_id"],
                  amount=doc["amount"], channel=doc["channel"], remark=doc.get("remark") or "",
                  created_at=aware(doc["created_at"]), state=PayoutState(doc["state"]),
                  provider_transfer_id=doc.get("provider_transfer_id") or "",
                  failure_reason=doc.get("failure_reason") or "")


class MongoPayouts:
    """The PayoutStore port over MongoDB."""

    @staticmethod
    def _c():
        return PayoutDoc._get_collection()

    async def add(self, payout: Payout) -> bool:
        p = payout
        doc = {"_id": p.transfer_id, "merchant_id": p.merchant_id, "member_id": p.member_id, "amount": p.amount,
               "channel": p.channel, "remark": p.remark, "state": p.state.value,
               "provider_transfer_id": p.provider_transfer_id, "failure_reason": p.failure_reason,
               "created_at": p.created_at, "updated_at": p.created_at}
        return await run_sync(insert_new, self._c(), doc)

    async def get(self, merchant_id: str, transfer_id: str) -> Payout | None:
        return await run_sync(lambda: payout_of(self._c().find_one({"_id": transfer_id, "merchant_id": merchant_id})))

    async def record(self, payout: Payout) -> bool:
        def write() -> bool:
            return self._c().update_one(
                {"_id": payout.transfer_id, "merchant_id": payout.merchant_id,
                 "state": PayoutState.PROCESSING.value},
                {"$set": {"state": payout.state.value, "provider_transfer_id": payout.provider_transfer_id,
                          "failure_reason": payout.failure_reason, "updated_at": utcnow()}}).matched_count == 1
        return await run_sync(write)
