"""The member's flash-sale quotas and reservations as plain JSON values for their data
export (the outbox and internal counters left out)."""
from __future__ import annotations


from services.catalog.adapters.documents import ReservationDoc
from services.catalog.adapters.flash_sales import FlashQuotaDoc
from siyu_kit.export import as_json
from siyu_kit.db import run_sync

_COLLECTIONS = {"flash_sale_quotas": FlashQuotaDoc, "flash_sale_reservations": ReservationDoc}
_HIDDEN = ("outbox", "version", "settled", "confirmed", "last_event_id", "hold_key")
LIMIT = 10_000


def plain(value):
    return as_json(value, _HIDDEN)


def _collection(part: str):
    return _COLLECTIONS[part]._get_collection()


class MemberRecordStore:
    async def of_member(self, merchant_id: str, member_id: str, part: str) -> list[dict]:
        collection = _collection(part)

        def read() -> list[dict]:
            cursor = collection.find({"merchant_id": merchant_id, "member_id": member_id}).sort("_id", 1)
            return [plain(doc) for doc in cursor.limit(LIMIT)]

        return await run_sync(read)
