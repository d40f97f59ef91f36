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
    version = IntField(required=True)

    meta = {
        "collection": "orders",
        "strict": False,
        "indexes": [
            {"fields": ["merchant_id", "member_id", "idempotency_key"], "unique": True},
            {"fields": ["merchant_id", "member_id"]},
            {"fields": ["state", "expires_at"]},
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
        ],
    }


class OrderSettingsDoc(Document):
    id = StringField(primary_key=True)  # ost_…
    merchant_id = StringField(required=True, unique=True)
    unpaid_expiry_s = IntField()

    meta = {"collection": "order_settings", "strict": False}

