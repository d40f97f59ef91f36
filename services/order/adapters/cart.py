"""Carts in MongoDB: one document per member per merchant, its items replaced whole
under a version check (the embedded server cannot `$push` sub-documents)."""
from __future__ import annotations

from mongoengine import DictField, Document, IntField, ListField, StringField
from pymongo.errors import DuplicateKeyError

from siyu_kit.aggregate import StaleVersion
from siyu_kit.db import run_sync
from siyu_kit.ids import new_id
from siyu_kit.repository import save_change

from services.order.domain.cart import Cart, CartItem


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


def cart_of(doc: dict | None, merchant_id: str, member_id: str) -> Cart:
    if doc is None:
        return Cart.empty(merchant_id, member_id)
    return Cart(id=doc["_id"], merchant_id=merchant_id, member_id=member_id, items=items_of(doc),
                version=int(doc["version"]), updated_ms=int(doc.get("updated_ms") or 0))


class MongoCarts:
    """CartRepository in MongoDB."""

    @staticmethod
    def _c():
        return CartDoc._get_collection()

    async def get(self, merchant_id: str, member_id: str) -> Cart:
        doc = await run_sync(self._c().find_one, {"merchant_id": merchant_id, "member_id": member_id})
        return cart_of(doc, merchant_id, member_id)

    async def save(self, cart: Cart) -> None:
        """Compare-and-set on the version read (0: the member has no cart yet, so it is
        created); StaleVersion when another change came first."""
        await run_sync(self._save, cart)
        cart.version += 1

    def _save(self, cart: Cart) -> None:
        if cart.version == 0:
            cart_id = new_id("crt")
            try:
                self._c().insert_one({"_id": cart_id, "merchant_id": cart.merchant_id, "member_id": cart.member_id,
                                      "items": _stored(cart.items), "version": 1, "updated_ms": cart.updated_ms})
            except DuplicateKeyError as error:
                raise StaleVersion(f"a cart of {cart.member_id} was created meanwhile") from error
            cart.id = cart_id
            return
        save_change(self._c(), {"merchant_id": cart.merchant_id, "member_id": cart.member_id},
                    {"$set": {"items": _stored(cart.items), "updated_ms": cart.updated_ms}}, version=cart.version)
