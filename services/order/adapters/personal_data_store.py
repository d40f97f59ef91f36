"""A member's orders, payments and refunds as plain JSON values for their data export
(sealed values, such as the address snapshot's phone, and the outbox stay out: the
document shows what the member gave and what happened, not our internals); and, when the
member is erased, their unpaid orders found and their orders' personal data removed."""
from __future__ import annotations



from services.order.adapters.cart import CartDoc
from services.order.adapters.documents import OrderDoc, PaymentDoc
from services.order.adapters.refunds import RefundDoc
from siyu_kit.export import as_json
from siyu_kit.aggregate import StaleVersion
from siyu_kit.db import run_sync

_COLLECTIONS = {"orders": OrderDoc, "payments": PaymentDoc, "refunds": RefundDoc}
# Keys never exported, wherever they sit in a document.
_HIDDEN = ("outbox", "sealed", "secret", "version")
LIMIT = 10_000


def plain(value):
    return as_json(value, _HIDDEN)


def _collection(name: str):
    """An export part's collection, or the carts'."""
    return (CartDoc if name == "carts" else _COLLECTIONS[name])._get_collection()


class MemberRecordStore:
    async def of_member(self, merchant_id: str, member_id: str, part: str) -> list[dict]:
        collection = _collection(part)

        def read() -> list[dict]:
            cursor = collection.find({"merchant_id": merchant_id, "member_id": member_id}).sort("_id", 1)
            return [plain(doc) for doc in cursor.limit(LIMIT)]

        return await run_sync(read)


# ---- erasure ---------------------------------------------------------------------------------

# What an order keeps of a shipping address once its member is erased: the region (for the
# merchant's books and tax), no recipient, phone or street.
_ADDRESS_KEPT = ("address_id", "province_code", "city_code", "district_code", "province_name", "city_name",
                 "district_name")


def anonymised_address(stored: dict | None) -> dict | None:
    if not stored:
        return stored
    return {**{k: stored[k] for k in _ADDRESS_KEPT if k in stored}, "recipient": "", "phone_masked": "",
            "detail": ""}


class MemberOrderStore:
    async def unpaid_order_ids(self, merchant_id: str, member_id: str) -> list[str]:
        def read() -> list[str]:
            cursor = _collection("orders").find({"merchant_id": merchant_id, "member_id": member_id,
                                                 "state": "PENDING_PAYMENT"}, {"_id": 1})
            return [d["_id"] for d in cursor]

        return await run_sync(read)

    async def anonymise(self, merchant_id: str, member_id: str) -> int:
        def run() -> int:
            orders, changed = _collection("orders"), 0
            for doc in orders.find({"merchant_id": merchant_id, "member_id": member_id},
                                   {"shipping_address": 1, "remark": 1, "version": 1}):
                address = doc.get("shipping_address")
                if anonymised_address(address) == address and not doc.get("remark"):
                    continue  # erased already
                # On the version read, bumped: an order saved meanwhile is read again next time.
                result = orders.update_one({"_id": doc["_id"], "merchant_id": merchant_id, "version": doc["version"]},
                                           {"$set": {"shipping_address": anonymised_address(address), "remark": ""},
                                            "$inc": {"version": 1}})
                if not result.modified_count:
                    raise StaleVersion(f"order {doc['_id']} changed while it was anonymised")
                changed += 1
            _collection("carts").delete_many({"merchant_id": merchant_id, "member_id": member_id})
            return changed

        return await run_sync(run)

