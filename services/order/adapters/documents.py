"""What the order service stores. Documents declare the schema and indexes; the
repositories write through pymongo for conditional atomic updates."""
from __future__ import annotations

import dataclasses

from mongoengine import (DateTimeField, DictField, Document, IntField, ListField, StringField)

from siyu_kit.events.documents import OutboxDocument

from services.order.domain.commissions import Commission, CommissionLevel, Referral
from services.order.domain.freight import ShippingAddress
from services.order.adapters.tender_docs import stored_value_doc, stored_value_of
from services.order.domain.member_value import UsedValue
from services.order.domain.orders import (AppliedRefund, Order, OrderActivity, OrderLine, OrderState, PriceStep, RefundedUnits,
                                          Shipment)


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
    # sha256 of the request that placed the order (domain.idempotency); absent on older orders
    request_hash = StringField()
    # {coupon_id, coupon_name, coupon_discount, points, points_discount}; absent when neither
    # was used (domain.member_value.UsedValue). Lines carry their COUPON and POINTS steps.
    member_value = DictField()
    # Distribution: who the sale is credited to ({distributor_id, distributor_rate_bp,
    # upline_distributor_id, upline_rate_bp, guide_id, guide_rate_bp, guide_store,
    # group_buy_commission (0/1)}; absent: nobody), and the commissions owed
    # ([{line_id, level, beneficiary_id, rate_bp, base, amount, voided}]; absent before it
    # is paid or when none). A line not earning commission carries commission_eligible 0.
    referral = DictField()
    commissions = ListField(DictField())
    # The activity it was bought through (domain.orders.OrderActivity: kind, activity_id and
    # the non-empty ties); absent for normal, flash-sale and recharge orders.
    activity = DictField()
    version = IntField(required=True)

    meta = {
        "collection": "orders",
        "strict": False,
        "indexes": [
            {"fields": ["merchant_id", "member_id", "idempotency_key"], "unique": True},
            {"fields": ["merchant_id", "member_id"]},
            # the tabs of a member's order list (domain.tabs)
            {"fields": ["merchant_id", "member_id", "state"]},
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
    # sha256 of the request that started it (domain.idempotency); absent on older payments
    request_hash = StringField()
    # WeChat Pay: the channel whose credentials took the payment, WeChat's prepay id, and
    # when the job next asks WeChat about a payment still PENDING (epoch ms; 0: never).
    channel = StringField()
    prepay_id = StringField()
    query_ms = IntField()
    version = IntField(required=True)

    meta = {
        "collection": "payments",
        "strict": False,
        "indexes": [
            {"fields": ["merchant_id", "order_id", "idempotency_key"], "unique": True},
            {"fields": ["merchant_id", "member_id"]},
            {"fields": ["outbox_pending"]},
            {"fields": ["open", "reconcile_ms"]},
            {"fields": ["query_ms"], "partialFilterExpression": {"query_ms": {"$gt": 0}}},
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



# ---- stored order ⇄ aggregate -----------------------------------------------------
# The stored shape stays as it always was: keys that were absent stay absent.

def _steps_of(stored) -> tuple[PriceStep, ...]:
    return tuple(PriceStep(s["step"], s["amount"], s.get("detail", "")) for s in stored or ())


def _steps_doc(steps: tuple[PriceStep, ...]) -> list[dict]:
    return [{"step": s.step, "amount": s.amount, "detail": s.detail} for s in steps]


def line_of(l: dict) -> OrderLine:
    return OrderLine(line_id=l["line_id"], sku_id=l["sku_id"], product_id=l["product_id"], title=l["title"],
                     quantity=l["quantity"], unit_price=l["unit_price"], line_total=l["line_total"],
                     line_amount=l.get("line_amount", l["line_total"]), paid_amount=l["paid_amount"],
                     steps=_steps_of(l.get("steps")), refunded_quantity=l.get("refunded_quantity", 0),
                     refunded_amount=l.get("refunded_amount", 0),
                     commission_eligible=bool(l.get("commission_eligible", 1)))


def line_doc(line: OrderLine, refunded: bool = False) -> dict:
    doc = {"line_id": line.line_id, "sku_id": line.sku_id, "product_id": line.product_id, "title": line.title,
           "quantity": line.quantity, "unit_price": line.unit_price, "line_total": line.line_total,
           "line_amount": line.line_amount, "paid_amount": line.paid_amount, "steps": _steps_doc(line.steps)}
    if refunded or line.refunded_quantity or line.refunded_amount:
        doc.update(refunded_quantity=line.refunded_quantity, refunded_amount=line.refunded_amount)
    if not line.commission_eligible:
        doc["commission_eligible"] = 0
    return doc


_REFERRAL_FIELDS = ("distributor_id", "distributor_rate_bp", "upline_distributor_id", "upline_rate_bp", "guide_id",
                    "guide_rate_bp", "guide_store", "community_leader_id", "community_leader_rate_bp")


def referral_of(stored: dict | None) -> Referral | None:
    if not stored:
        return None
    return Referral(**{k: stored[k] for k in _REFERRAL_FIELDS if stored.get(k)},
                    group_buy_commission=bool(stored.get("group_buy_commission")))


def referral_doc(r: Referral) -> dict:
    return {**{k: getattr(r, k) for k in _REFERRAL_FIELDS}, "group_buy_commission": int(r.group_buy_commission)}


def commission_of(c: dict) -> Commission:
    return Commission(line_id=c["line_id"], level=CommissionLevel(c["level"]), beneficiary_id=c["beneficiary_id"],
                      rate_bp=c["rate_bp"], base=c["base"], amount=c["amount"], voided=c.get("voided", 0))


def commissions_doc(commissions) -> list[dict]:
    return [{"line_id": c.line_id, "level": c.level.value, "beneficiary_id": c.beneficiary_id, "rate_bp": c.rate_bp,
             "base": c.base, "amount": c.amount, "voided": c.voided} for c in commissions]


def applied_refund_of(r: dict) -> AppliedRefund:
    return AppliedRefund(amount=r["amount"], shipping_fee_refund=r.get("shipping_fee_refund", 0),
                         restock=bool(r.get("restock")),
                         lines=tuple(RefundedUnits(l["line_id"], l["sku_id"], l["quantity"], l["amount"])
                                     for l in r.get("lines") or ()))


def applied_refund_doc(r: AppliedRefund) -> dict:
    return {"amount": r.amount, "shipping_fee_refund": r.shipping_fee_refund, "restock": int(r.restock),
            "lines": [{"line_id": l.line_id, "sku_id": l.sku_id, "quantity": l.quantity, "amount": l.amount}
                      for l in r.lines]}


def order_of(doc: dict) -> Order:
    shipment = doc.get("shipment")
    return Order(
        id=doc["_id"], merchant_id=doc["merchant_id"], member_id=doc["member_id"],
        idempotency_key=doc["idempotency_key"], state=OrderState(doc["state"]),
        lines=tuple(line_of(l) for l in doc.get("lines") or ()), currency=doc.get("currency", "CNY"),
        total=doc["total"], payable=doc["payable"], reservation_id=doc.get("reservation_id", ""),
        created_at=doc["created_at"], expires_at=doc["expires_at"], version=doc["version"],
        order_steps=_steps_of(doc.get("order_steps")), shipping_fee=doc.get("shipping_fee", 0),
        tier=doc.get("tier") or "", attribution=dict(doc.get("attribution") or {}), remark=doc.get("remark") or "",
        flash_sale_id=doc.get("flash_sale_id") or "", paid_at=doc.get("paid_at"),
        payment_id=doc.get("payment_id") or "", cancelled_at=doc.get("cancelled_at"),
        cancel_reason=doc.get("cancel_reason") or "",
        shipment=Shipment(shipment["carrier"], shipment["tracking_number"], shipment["shipped_ms"]) if shipment else None,
        auto_confirm_ms=doc.get("auto_confirm_ms") or 0, delivered_at=doc.get("delivered_at"),
        completed_at=doc.get("completed_at"), confirmed_by=doc.get("confirmed_by") or "",
        refunded_amount=doc.get("refunded_amount", 0),
        applied_refunds={k: applied_refund_of(v) for k, v in (doc.get("applied_refunds") or {}).items()},
        request_hash=doc.get("request_hash") or "",
        shipping_address=shipping_address_of(doc.get("shipping_address")), shipping_rule=doc.get("shipping_rule") or "",
        stored_value=stored_value_of(doc.get("stored_value")),
        value=value_of(doc.get("member_value")), referral=referral_of(doc.get("referral")),
        commissions=tuple(commission_of(c) for c in doc.get("commissions") or ()), settled_at=doc.get("settled_at"),
        activity=activity_of(doc.get("activity")))


def activity_of(stored: dict | None) -> OrderActivity | None:
    if not stored:
        return None
    return OrderActivity(**{k: stored[k] for k in _ACTIVITY_FIELDS if k in stored})


def activity_doc(a: OrderActivity) -> dict:
    """Kind and activity always; the ties only when set."""
    return {k: getattr(a, k) for k in _ACTIVITY_FIELDS if k in ("kind", "activity_id") or getattr(a, k)}


_ACTIVITY_FIELDS = tuple(f.name for f in dataclasses.fields(OrderActivity))


_VALUE_FIELDS = ("coupon_id", "coupon_name", "coupon_discount", "points", "points_discount")


def value_of(stored: dict | None) -> UsedValue | None:
    """The coupon and points of an order; absent on orders that used neither."""
    if not stored:
        return None
    return UsedValue(coupon_id=stored.get("coupon_id") or "", coupon_name=stored.get("coupon_name") or "",
                     coupon_discount=stored.get("coupon_discount") or 0, points=stored.get("points") or 0,
                     points_discount=stored.get("points_discount") or 0)


_ADDRESS_FIELDS = ("address_id", "recipient", "phone_masked", "phone_sealed", "province_code", "city_code",
                   "district_code", "province_name", "city_name", "district_name", "detail")


def shipping_address_of(stored: dict | None) -> ShippingAddress | None:
    if not stored:
        return None
    return ShippingAddress(**{k: stored.get(k) or "" for k in _ADDRESS_FIELDS})


def shipping_address_doc(a: ShippingAddress) -> dict:
    """The phone is stored sealed and masked, never in the clear."""
    return {k: getattr(a, k) for k in _ADDRESS_FIELDS}


def order_doc(order: Order) -> dict:
    """The stored document of `order` (what a new order is inserted as; the API and the
    events show an order through it)."""
    doc: dict = {
        "_id": order.id, "merchant_id": order.merchant_id, "member_id": order.member_id,
        "idempotency_key": order.idempotency_key, "state": order.state.value,
        "lines": [line_doc(l) for l in order.lines], "currency": order.currency, "total": order.total,
        "payable": order.payable, "order_steps": _steps_doc(order.order_steps), "shipping_fee": order.shipping_fee,
        "tier": order.tier, "attribution": dict(order.attribution), "remark": order.remark,
        "reservation_id": order.reservation_id, "created_at": order.created_at, "expires_at": order.expires_at,
        "version": order.version,
    }
    if order.flash_sale_id:
        doc["flash_sale_id"] = order.flash_sale_id
    if order.request_hash:
        doc["request_hash"] = order.request_hash
    if order.shipping_address is not None:
        doc["shipping_address"] = shipping_address_doc(order.shipping_address)
    if order.shipping_rule:
        doc["shipping_rule"] = order.shipping_rule
    if order.value is not None:
        doc["member_value"] = {k: getattr(order.value, k) for k in _VALUE_FIELDS}
    optional = {"paid_at": order.paid_at, "payment_id": order.payment_id, "cancelled_at": order.cancelled_at,
                "cancel_reason": order.cancel_reason, "auto_confirm_ms": order.auto_confirm_ms,
                "delivered_at": order.delivered_at, "completed_at": order.completed_at,
                "confirmed_by": order.confirmed_by, "settled_at": order.settled_at}
    doc.update({k: v for k, v in optional.items() if v})
    if order.shipment is not None:
        doc["shipment"] = {"carrier": order.shipment.carrier, "tracking_number": order.shipment.tracking_number,
                           "shipped_ms": order.shipment.shipped_ms}
    if order.refunded_amount or order.applied_refunds:
        doc["refunded_amount"] = order.refunded_amount
        doc["applied_refunds"] = {k: applied_refund_doc(v) for k, v in order.applied_refunds.items()}
    if not order.stored_value.is_default:
        doc["stored_value"] = stored_value_doc(order.stored_value)
    if order.referral is not None:
        doc["referral"] = referral_doc(order.referral)
    if order.commissions:
        doc["commissions"] = commissions_doc(order.commissions)
    if order.activity is not None:
        doc["activity"] = activity_doc(order.activity)
    return doc
