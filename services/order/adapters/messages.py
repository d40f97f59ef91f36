"""Stored orders and payments as the protobuf messages of the API and the events."""
from __future__ import annotations

from siyu.common.v1 import common_pb2
from siyu.order.v1 import order_pb2

from siyu_kit.protos import CHANNEL_BY_NAME, money, timestamp


def order(doc: dict) -> order_pb2.Order:
    currency = doc.get("currency", "CNY")
    attribution = doc.get("attribution") or {}
    msg = order_pb2.Order(
        order_id=doc["_id"], member_id=doc["member_id"],
        state=order_pb2.OrderState.Value(f"ORDER_STATE_{doc['state']}"),
        lines=[order_pb2.OrderLine(
            line_id=l["line_id"], sku_id=l["sku_id"], product_id=l["product_id"], title=l["title"],
            quantity=l["quantity"], unit_price=money(l["unit_price"], currency),
            line_total=money(l["line_total"], currency), paid_amount=money(l["paid_amount"], currency))
            for l in doc.get("lines", [])],
        total=money(doc["total"], currency), payable=money(doc["payable"], currency),
        attribution=common_pb2.Attribution(
            channel=CHANNEL_BY_NAME.get(attribution.get("channel", ""), 0),
            persona_id=attribution.get("persona_id", ""), content_id=attribution.get("content_id", ""),
            live_session_id=attribution.get("live_session_id", ""),
            share_code=attribution.get("share_code", "")),
        payment_id=doc.get("payment_id") or "", version=doc["version"],
        reservation_id=doc.get("reservation_id", ""),
    )
    for field in ("created_at", "expires_at", "paid_at", "cancelled_at"):
        if doc.get(field) is not None:
            getattr(msg, field).CopyFrom(timestamp(doc[field]))
    return msg


def payment(doc: dict) -> order_pb2.Payment:
    msg = order_pb2.Payment(
        payment_id=doc["_id"], order_id=doc["order_id"],
        method=order_pb2.PaymentMethod.Value(f"PAYMENT_METHOD_{doc['method']}"),
        state=order_pb2.PaymentState.Value(f"PAYMENT_STATE_{doc['state']}"),
        amount=money(doc["amount"], doc.get("currency", "CNY")), provider_txn_id=doc.get("provider_txn_id") or "",
    )
    for field in ("created_at", "succeeded_at"):
        if doc.get(field) is not None:
            getattr(msg, field).CopyFrom(timestamp(doc[field]))
    return msg
