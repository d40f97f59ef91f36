"""What the order service stores. Documents declare the schema and indexes; the
repositories write through pymongo for conditional atomic updates."""
from __future__ import annotations

from mongoengine import (DateTimeField, DictField, Document, IntField, ListField, StringField)

from siyu_kit.events.documents import OutboxDocument


class OrderDoc(OutboxDocument):
    id = StringField(primary_key=True)  # ord_…
    merchant_id = StringField(required=True)
    member_id = StringField(required=True)
    idempotency_key = StringField(required=True)
    state = StringField(required=True)  # domain.orders.OrderState
    # {line_id, sku_id, product_id, title, quantity, unit_price, line_total, line_amount, paid_amount}
    lines = ListField(DictField())
    currency = StringField(required=True)
    total = IntField(required=True)
    payable = IntField(required=True)
    shipping_fee = IntField(default=0)
    # {channel, persona_id, content_id, live_session_id, share_code}
    attribution = DictField()
    remark = StringField()
    reservation_id = StringField(required=True)
    created_at = DateTimeField(required=True)
    expires_at = DateTimeField(required=True)
    paid_at = DateTimeField()
    cancelled_at = DateTimeField()
    cancel_reason = StringField()
    payment_id = StringField()
    # created_at again, for staff search by range (the embedded server compares datetimes
    # in whole seconds).
    created_ms = IntField()
    # Epoch-ms copy of expires_at for the exact comparisons a payment and the expiry job make.
    expires_ms = IntField()
    # Fulfilment. Times set after insert and queried by range are epoch-ms ints.
    shipment = DictField()  # {carrier, tracking_number, shipped_ms}
    auto_confirm_ms = IntField()
    delivered_at = DateTimeField()
    completed_at = DateTimeField()
    confirmed_by = StringField()  # domain.orders.CONFIRMED_BY_*
    # Refunds the order took: the total, and per refund id
    # {amount, shipping_fee_refund, restock (0/1), lines: [{line_id, sku_id, quantity, amount}]}.
    # Lines carry refunded_quantity and refunded_amount.
    refunded_amount = IntField(default=0)
    applied_refunds = DictField()
    version = IntField(required=True)

    meta = {
        "collection": "orders",
        "strict": False,
        "indexes": [
            {"fields": ["merchant_id", "member_id", "idempotency_key"], "unique": True},
            {"fields": ["merchant_id", "member_id"]},
            {"fields": ["merchant_id", "state"]},
            {"fields": ["merchant_id", "created_ms"]},
            {"fields": ["merchant_id", "attribution.channel"]},
            {"fields": ["state", "auto_confirm_ms"]},
            {"fields": ["state", "expires_ms"]},
            {"fields": ["outbox_pending"]},
        ],
    }


class PaymentDoc(OutboxDocument):
    id = StringField(primary_key=True)  # pay_…
    merchant_id = StringField(required=True)
    member_id = StringField(required=True)
    order_id = StringField(required=True)
    idempotency_key = StringField(required=True)
    method = StringField(required=True)  # domain.payments.PaymentMethod
    state = StringField(required=True)  # domain.payments.PaymentState
    amount = IntField(required=True)
    currency = StringField(required=True)
    provider_txn_id = StringField()
    created_at = DateTimeField(required=True)
    succeeded_at = DateTimeField()
    # 1 from SUCCEEDED until the payment is applied to its order or refunded; the
    # reconcile job finds payments left open past `reconcile_ms` (epoch ms) by one
    # indexed query, and moves `reconcile_ms` on when it takes one.
    open = IntField()
    reconcile_ms = IntField()
    # The last FAIL notification: {provider_txn_id, at}; the payment stays PENDING.
    last_failure = DictField()
    failures = IntField(default=0)
    # {provider_refund_id, amount, reason, at}
    refund = DictField()
    refunded_at = DateTimeField()
    version = IntField(required=True)

    meta = {
        "collection": "payments",
        "strict": False,
        "indexes": [
            {"fields": ["merchant_id", "order_id", "idempotency_key"], "unique": True},
            {"fields": ["merchant_id", "member_id"]},
            {"fields": ["outbox_pending"]},
            {"fields": ["open", "reconcile_ms"]},
        ],
    }


class OrderSettingsDoc(Document):
    id = StringField(primary_key=True)  # ost_…
    merchant_id = StringField(required=True, unique=True)
    # Fields mirror domain.settings.OrderSettings; absent ones take its defaults.
    unpaid_expiry_s = IntField()
    flash_sale_expiry_s = IntField()
    auto_confirm_days = IntField()
    after_sales_days = IntField()
    # [{threshold, reduction}], replaced whole under the version check
    threshold_reductions = ListField(DictField())
    shipping_fee = IntField()
    free_shipping_over = IntField()
    version = IntField(default=1)
    updated_ms = IntField()

    meta = {"collection": "order_settings", "strict": False}

