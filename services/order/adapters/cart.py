"""Carts in MongoDB: one document per member per merchant, its items replaced whole
under a version check (the embedded server cannot `$push` sub-documents). Blocking:
call through siyu_kit.db.run_sync."""
from __future__ import annotations

from mongoengine import DictField, Document, IntField, ListField, StringField
from pymongo.errors import DuplicateKeyError

from siyu_kit.ids import new_id

from services.order.domain.cart import CartItem


class CartDoc(Document):
    id = StringField(primary_key=True)  # crt_…
    merchant_id = StringField(required=True)
    member_id = StringField(required=True)
    # [{sku_id, quantity, selected (0/1), added_ms}], newest first
    items = ListField(DictField())
    version = IntField(required=True)
    updated_ms = IntField(required=True)

    meta = {
        "collection": "carts",
        "strict": False,
        "indexes": [{"fields": ["merchant_id", "member_id"], "unique": True}],
    }


def items_of(doc: dict | None) -> tuple[CartItem, ...]:
    return tuple(CartItem(sku_id=i["sku_id"], quantity=int(i["quantity"]), selected=bool(i.get("selected")),
                          added_ms=int(i.get("added_ms") or 0))
                 for i in (doc or {}).get("items") or ())


def _stored(items: tuple[CartItem, ...]) -> list[dict]:
    return [{"sku_id": i.sku_id, "quantity": i.quantity, "selected": int(i.selected), "added_ms": i.added_ms}
            for i in items]


class Carts:
    @staticmethod
    def _c():
        return CartDoc._get_collection()

    def get(self, merchant_id: str, member_id: str) -> dict | None:
        return self._c().find_one({"merchant_id": merchant_id, "member_id": member_id})

    def save(self, merchant_id: str, member_id: str, version: int, items: tuple[CartItem, ...],
             updated_ms: int) -> bool:
        """Compare-and-set on `version` (0: the member has no cart yet, so it is created).
        False when another change came first."""
        if version == 0:
            try:
                self._c().insert_one({"_id": new_id("crt"), "merchant_id": merchant_id, "member_id": member_id,
                                      "items": _stored(items), "version": 1, "updated_ms": updated_ms})
            except DuplicateKeyError:
                return False
            return True
        return self._c().update_one(
            {"merchant_id": merchant_id, "member_id": member_id, "version": version},
            {"$set": {"items": _stored(items), "updated_ms": updated_ms}, "$inc": {"version": 1}}).modified_count == 1
