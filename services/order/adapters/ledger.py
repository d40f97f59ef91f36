"""The payment ledger in MongoDB: one document per entry, its id the entry's
deterministic id, so writing an entry twice stores it once."""
from __future__ import annotations

from datetime import datetime

from mongoengine import DateTimeField, Document, IntField, StringField
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync
from siyu_kit.protos import aware

from services.order.application.ports import LedgerRecord
from services.order.domain.ledger import Entry


class LedgerEntryDoc(Document):
    id = StringField(primary_key=True)  # "<kind>:<payment or refund id>"
    merchant_id = StringField(required=True)
    order_id = StringField(required=True)
    payment_id = StringField()
    refund_id = StringField()
    kind = StringField(required=True)  # domain.ledger kinds
    debit_account = StringField(required=True)
    credit_account = StringField(required=True)
    amount = IntField(required=True)
    currency = StringField(required=True)
    at = DateTimeField(required=True)

    meta = {
        "collection": "ledger_entries",
        "strict": False,
        "indexes": [{"fields": ["merchant_id", "order_id", "at"]}],
    }


def entry_of(doc: dict) -> Entry:
    return Entry(entry_id=doc["_id"], kind=doc["kind"], order_id=doc["order_id"], debit=doc["debit_account"],
                 credit=doc["credit_account"], amount=doc["amount"], payment_id=doc.get("payment_id") or "",
                 refund_id=doc.get("refund_id") or "")


class Ledger:
    """The LedgerRepository and LedgerRecords ports over MongoDB."""

    @staticmethod
    def _c():
        return LedgerEntryDoc._get_collection()

    def _insert(self, merchant_id: str, entry: Entry, currency: str, at: datetime) -> bool:
        try:
            self._c().insert_one({
                "_id": entry.entry_id, "merchant_id": merchant_id, "order_id": entry.order_id,
                "payment_id": entry.payment_id, "refund_id": entry.refund_id, "kind": entry.kind,
                "debit_account": entry.debit, "credit_account": entry.credit, "amount": entry.amount,
                "currency": currency, "at": at})
        except DuplicateKeyError:
            return False
        return True

    async def record(self, merchant_id: str, entry: Entry, currency: str, at: datetime) -> bool:
        """False when the entry was already recorded."""
        return await run_sync(self._insert, merchant_id, entry, currency, at)

    def _of_order(self, merchant_id: str, order_id: str) -> list[LedgerRecord]:
        cursor = self._c().find({"merchant_id": merchant_id, "order_id": order_id}).sort("at", ASCENDING)
        return [LedgerRecord(entry=entry_of(d), currency=d["currency"], at=aware(d["at"])) for d in cursor]

    async def of_order(self, merchant_id: str, order_id: str) -> list[LedgerRecord]:
        """The entries of an order, oldest first (what staff read)."""
        return await run_sync(self._of_order, merchant_id, order_id)
