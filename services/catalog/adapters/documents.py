"""The catalog's collections. Ids are prefixed strings; flags are ints (0/1)."""
from __future__ import annotations

import mongoengine as me

from siyu_kit.events.documents import OutboxDocument


class ProductDoc(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    code = me.StringField(required=True)
    title = me.StringField(required=True)
    category_id = me.StringField(default="")
    tags = me.ListField(me.StringField())
    media_urls = me.ListField(me.StringField())
    description = me.StringField(default="")
    status = me.StringField(required=True)
    # [{sku_id, code, attributes, list_price, currency}], always replaced whole.
    skus = me.ListField(me.DictField())
    min_price = me.IntField(default=0)
    currency = me.StringField(default="CNY")
    search_terms = me.ListField(me.StringField())
    created_at = me.DateTimeField(required=True)
    updated_ms = me.IntField(required=True)
    version = me.IntField(default=1)

    meta = {
        "collection": "products",
        "indexes": [
            {"fields": ["merchant_id", "code"], "unique": True},
            {"fields": ["merchant_id", "status"]},
            {"fields": ["merchant_id", "category_id"]},
        ],
        "auto_create_index": False,
    }


class StockDoc(me.Document):
    """One per SKU; `_id` is the SKU id. `holds` maps reservation id → quantity held."""
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    product_id = me.StringField(required=True)
    on_hand = me.IntField(required=True, min_value=0)
    reserved = me.IntField(required=True, min_value=0)
    available = me.IntField(required=True, min_value=0)
    holds = me.DictField()
    updated_ms = me.IntField(required=True)

    meta = {"collection": "stock", "indexes": [{"fields": ["merchant_id", "product_id"]}],
            "auto_create_index": False}


class ReservationDoc(OutboxDocument):
    """`_id` is the reservation id chosen by the caller (the order service)."""
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    order_id = me.StringField(required=True)
    state = me.StringField(required=True)
    lines = me.ListField(me.DictField())  # [{sku_id, quantity}]
    expires_at = me.DateTimeField(required=True)
    # 1 once every line is held; a reservation interrupted before that is never committed.
    confirmed = me.IntField(default=0)
    # 1 once the stock of a COMMITTED/RELEASED reservation has been moved.
    settled = me.IntField(default=1)
    last_event_id = me.StringField(default="")
    created_at = me.DateTimeField(required=True)
    updated_ms = me.IntField(required=True)
    version = me.IntField(default=1)

    meta = {
        "collection": "reservations",
        "indexes": [
            {"fields": ["state", "expires_at"]},
            {"fields": ["state", "settled", "updated_ms"]},
            {"fields": ["outbox_pending"]},
        ],
        "auto_create_index": False,
    }


class MovementDoc(me.Document):
    """The stock ledger. `_id` is deterministic per (kind, reservation, SKU)."""
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    sku_id = me.StringField(required=True)
    kind = me.StringField(required=True)
    reservation_id = me.StringField(default="")
    on_hand_delta = me.IntField(required=True)
    reserved_delta = me.IntField(required=True)
    available_delta = me.IntField(required=True)
    at = me.DateTimeField(required=True)

    meta = {"collection": "stock_movements", "indexes": [{"fields": ["merchant_id", "sku_id", "at"]}],
            "auto_create_index": False}


ALL = (ProductDoc, StockDoc, ReservationDoc, MovementDoc)


def ensure_indexes() -> None:
    for doc in ALL:
        doc.ensure_indexes()
