"""The member's orders, payments and refunds as plain JSON values for their data export.
Sealed values (the address snapshot's phone, payment credentials) and the outbox stay
out: the document shows what the member gave and what happened, not our internals."""
from __future__ import annotations

from datetime import datetime

from services.order.adapters.documents import OrderDoc, PaymentDoc
from services.order.adapters.refunds import RefundDoc
from siyu_kit.db import run_sync

_COLLECTIONS = {"orders": OrderDoc, "payments": PaymentDoc, "refunds": RefundDoc}
# Keys never exported, wherever they sit in a document.
_HIDDEN = ("outbox", "sealed", "secret", "version")
LIMIT = 10_000


def plain(value):
    """A stored value as JSON: datetimes as ISO text, hidden keys left out."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()
                if not any(word in str(k) for word in _HIDDEN)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _collection(part: str):
    return _COLLECTIONS[part]._get_collection()


class MemberRecordStore:
    async def of_member(self, merchant_id: str, member_id: str, part: str) -> list[dict]:
        collection = _collection(part)

        def read() -> list[dict]:
            cursor = collection.find({"merchant_id": merchant_id, "member_id": member_id}).sort("_id", 1)
            return [plain(doc) for doc in cursor.limit(LIMIT)]

        return await run_sync(read)
