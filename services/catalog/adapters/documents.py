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
    # The category and its ancestors, root first: browsing a category finds its sub-categories.
    category_path = me.ListField(me.StringField())
    tags = me.ListField(me.StringField())
    media_urls = me.ListField(me.StringField())
    description = me.StringField(default="")
    status = me.StringField(required=True)
    # [{sku_id, code, attributes, list_price, currency, tier_prices: [{tier, price}],
    #   limited_time_price: {price, starts_ms, ends_ms} | None, weight_g}], always replaced whole
    #   (weight_g: grams per unit; absent on SKUs written before it existed, read as 0).
    skus = me.ListField(me.DictField())
    min_price = me.IntField(default=0)
    currency = me.StringField(default="CNY")
    # Units sold: +q when a reservation commits, −q when units come back by ReturnStock.
    sales = me.IntField(default=0)
    search_terms = me.ListField(me.StringField())
    # 1: orders of the product earn no commission (0/1: a flag written by $set reads back as an int).
    commission_excluded = me.IntField(default=0)
    created_at = me.DateTimeField(required=True)
    updated_ms = me.IntField(required=True)
    version = me.IntField(default=1)

    meta = {
        "collection": "products",
        "indexes": [
            {"fields": ["merchant_id", "code"], "unique": True},
            {"fields": ["merchant_id", "status"]},
            {"fields": ["merchant_id", "category_path"]},
            # The listing's sorts (newest uses `_id`, which has its own index).
            {"fields": ["merchant_id", "status", "min_price"]},
            {"fields": ["merchant_id", "status", "sales"]},
        ],
        "auto_create_index": False,
    }


class StockDoc(me.Document):
    """One per SKU; `_id` is the SKU id. `holds` maps reservation id → quantity held;
    `adjustments` (idempotency key → delta) and `returns` (return id → quantity) mark the
    changes already applied, in the same write that applies them.

    `pending` maps a movement id to the movement that write owes the ledger ({kind,
    quantity, reference, reason, at_ms}); it is set in the write that moves the counters and
    removed once the movement is stored, so a crash in between is repaired by the sweeper.
    `pending_count` counts its entries, for the sweeper to find them."""
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    product_id = me.StringField(required=True)
    on_hand = me.IntField(required=True, min_value=0)
    reserved = me.IntField(required=True, min_value=0)
    available = me.IntField(required=True, min_value=0)
    holds = me.DictField()
    adjustments = me.DictField()
    returns = me.DictField()
    pending = me.DictField()
    pending_count = me.IntField(default=0)
    # Flash sale id → the pool's {sold, returned} this stock has followed (its units are
    # held under holds.<sale id>); see adapters.flash_sales.
    pool_sync = me.DictField()
    updated_ms = me.IntField(required=True)

    meta = {"collection": "stock",
            "indexes": [{"fields": ["merchant_id", "product_id"]}, {"fields": ["pending_count"]},
                        # The staff's SKU list by low stock.
                        {"fields": ["merchant_id", "available"]}],
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
    # Set when the units come from a flash sale's pool, for the member it counts against.
    flash_sale_id = me.StringField(default="")
    member_id = me.StringField(default="")
    # Set when a payment reached the reservation after its release: the key its units are
    # held under again, and 1 when they could not be (the order service refunds).
    hold_key = me.StringField()
    unfulfillable = me.IntField()
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
    """The stock ledger. `_id` is deterministic per (kind, reference, SKU)."""
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    sku_id = me.StringField(required=True)
    kind = me.StringField(required=True)
    # What caused it: the reservation, adjustment idempotency key, return id or flash sale.
    reference = me.StringField(default="")
    reason = me.StringField(default="")
    on_hand_delta = me.IntField(required=True)
    reserved_delta = me.IntField(required=True)
    available_delta = me.IntField(required=True)
    at = me.DateTimeField(required=True)

    meta = {"collection": "stock_movements", "indexes": [{"fields": ["merchant_id", "sku_id", "at"]}],
            "auto_create_index": False}


class CategoryDoc(me.Document):
    """A node of the category tree. Its parent and ancestors never change after creation."""
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    parent_id = me.StringField(default="")  # "" for a root
    ancestor_ids = me.ListField(me.StringField())  # root first, without itself
    name = me.StringField(required=True)
    sort_order = me.IntField(default=0)
    created_at = me.DateTimeField(required=True)
    updated_ms = me.IntField(required=True)
    version = me.IntField(default=1)

    meta = {"collection": "categories",
            # Sibling names are unique (enforced on insert; a rename checks first, docs/storage.md).
            "indexes": [{"fields": ["merchant_id", "parent_id", "name"], "unique": True}],
            "auto_create_index": False}


ALL = (ProductDoc, StockDoc, ReservationDoc, MovementDoc, CategoryDoc)


def ensure_indexes() -> None:
    for doc in ALL:
        doc.ensure_indexes()
