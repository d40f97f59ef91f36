"""Stored orders and payments as the protobuf messages of the API and the events."""
from __future__ import annotations

from datetime import datetime, timezone

from typing import Any

from google.protobuf.message import Message
from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2, order_pb2

from siyu_kit.events.outbox import Event, event_for
from siyu_kit.protos import CHANNEL_BY_NAME, money, timestamp

from services.order.adapters.documents import order_doc, shipping_address_of
from services.order.application.checkout import PricedValue
from services.order.application.ports import LedgerRecord, SkuInfo
from services.order.domain import orders as domain
from services.order.domain.cart import CartItem
from services.order.domain.freight import FreightRule, FreightTemplate, ShippingAddress
from services.order.domain.payments import Payment
from services.order.domain.pricing import COUPON, POINTS, Quote, Step
from services.order.domain.refunds import Refund
from services.order.domain.settings import OrderSettings
from services.order.domain.tender import KIND_RECHARGE


def price_steps(stored, currency: str) -> list[order_pb2.PriceStep]:
    """Stored steps ({step, amount, detail}) as the API shows them."""
    return [order_pb2.PriceStep(step=s["step"], amount=money(s["amount"], currency), detail=s.get("detail", ""))
            for s in stored or ()]


def order_settings(s: OrderSettings) -> order_pb2.OrderSettings:
    return order_pb2.OrderSettings(
        unpaid_expiry_seconds=s.unpaid_expiry_s, flash_sale_expiry_seconds=s.flash_sale_expiry_s,
        auto_confirm_days=s.auto_confirm_days, after_sales_days=s.after_sales_days,
        threshold_reductions=[order_pb2.ThresholdReduction(threshold=money(r.threshold), reduction=money(r.reduction))
                              for r in s.threshold_reductions],
        shipping_fee=money(s.shipping_fee), free_shipping_over=money(s.free_shipping_over), version=s.version)


def _steps(steps: tuple[Step, ...], currency: str) -> list[order_pb2.PriceStep]:
    return [order_pb2.PriceStep(step=s.step, amount=money(s.amount, currency), detail=s.detail) for s in steps]


def checkout_quote(q: Quote, currency: str, tier: str,
                   address: ShippingAddress | None = None) -> order_pb2.CheckoutQuote:
    msg = order_pb2.CheckoutQuote(
        lines=[order_pb2.QuoteLine(
            sku_id=l.sku_id, product_id=l.product_id, title=l.title, quantity=l.quantity,
            unit_price=money(l.unit_price, currency), line_total=money(l.line_total, currency),
            steps=_steps(l.steps, currency), line_amount=money(l.line_amount, currency),
            paid_amount=money(l.paid_amount, currency)) for l in q.lines],
        total=money(q.total, currency), line_discount=money(q.line_discount, currency),
        order_steps=_steps(q.order_steps, currency), order_discount=money(q.order_discount, currency),
        shipping_fee=money(q.shipping_fee, currency), payable=money(q.payable, currency), tier=tier,
        shipping_rule=q.shipping_rule)
    if address is not None:
        msg.shipping_address.CopyFrom(shipping_address(address))
    return msg


def cart(items: tuple[CartItem, ...], version: int, updated_ms: int, skus: dict[str, SkuInfo]) -> order_pb2.Cart:
    """The stored cart with each SKU's current facts; a SKU gone from the catalog shows
    only what the cart holds, not purchasable."""
    msg = order_pb2.Cart(version=version)
    if updated_ms:
        msg.updated_at.CopyFrom(_from_ms(updated_ms))
    for item in items:
        info = skus.get(item.sku_id)
        line = msg.items.add(sku_id=item.sku_id, quantity=item.quantity, selected=item.selected,
                             added_at=_from_ms(item.added_ms))
        if info is not None:
            line.product_id, line.title, line.available = info.product_id, info.title, info.available
            line.unit_price.CopyFrom(money(info.unit_price, info.currency))
            line.purchasable = info.on_shelf
    return msg


def order(doc: dict) -> order_pb2.Order:
    currency = doc.get("currency", "CNY")
    attribution = doc.get("attribution") or {}
    msg = order_pb2.Order(
        order_id=doc["_id"], member_id=doc["member_id"],
        state=order_pb2.OrderState.Value(f"ORDER_STATE_{doc['state']}"),
        lines=[order_pb2.OrderLine(
            line_id=l["line_id"], sku_id=l["sku_id"], product_id=l["product_id"], title=l["title"],
            quantity=l["quantity"], unit_price=money(l["unit_price"], currency),
            line_total=money(l["line_total"], currency), paid_amount=money(l["paid_amount"], currency),
            line_amount=money(l.get("line_amount", l["line_total"]), currency),
            steps=price_steps(l.get("steps"), currency), refunded_quantity=l.get("refunded_quantity", 0),
            refunded_amount=money(l.get("refunded_amount", 0), currency),
            commission_eligible=bool(l.get("commission_eligible", 1)))
            for l in doc.get("lines", [])],
        total=money(doc["total"], currency), payable=money(doc["payable"], currency),
        shipping_fee=money(doc.get("shipping_fee", 0), currency),
        order_steps=price_steps(doc.get("order_steps"), currency),
        attribution=common_pb2.Attribution(
            channel=CHANNEL_BY_NAME.get(attribution.get("channel", ""), 0),
            persona_id=attribution.get("persona_id", ""), content_id=attribution.get("content_id", ""),
            live_session_id=attribution.get("live_session_id", ""),
            share_code=attribution.get("share_code", "")),
        payment_id=doc.get("payment_id") or "", version=doc["version"],
        reservation_id=doc.get("reservation_id", ""), flash_sale_id=doc.get("flash_sale_id", ""),
        cancel_reason=doc.get("cancel_reason") or "",
    )
    for field in ("created_at", "expires_at", "paid_at", "cancelled_at", "delivered_at", "completed_at",
                  "settled_at"):
        if doc.get(field) is not None:
            getattr(msg, field).CopyFrom(timestamp(doc[field]))
    msg.refunded_amount.CopyFrom(money(doc.get("refunded_amount", 0), currency))
    if doc.get("shipment"):
        s = doc["shipment"]
        msg.shipment.CopyFrom(order_pb2.Shipment(carrier=s["carrier"], tracking_number=s["tracking_number"],
                                                 shipped_at=_from_ms(s["shipped_ms"])))
    if doc.get("auto_confirm_ms"):
        msg.auto_confirm_at.CopyFrom(_from_ms(doc["auto_confirm_ms"]))
    if doc.get("shipping_address"):
        msg.shipping_address.CopyFrom(shipping_address(shipping_address_of(doc["shipping_address"])))
    msg.shipping_rule = doc.get("shipping_rule") or ""
    _stored_value(msg, doc, currency)
    _member_value(msg, doc, currency)
    _distribution(msg, doc, currency)
    _activity(msg, doc)
    return msg


def _activity(msg: order_pb2.Order, doc: dict) -> None:
    """The activity the order was bought through, and its kind."""
    a = doc.get("activity")
    if not a:
        return
    kind = order_pb2.OrderKind.Value(f"ORDER_KIND_{a['kind']}")
    msg.kind = kind
    msg.activity.CopyFrom(order_pb2.OrderActivity(
        kind=kind, activity_id=a["activity_id"], group_id=a.get("group_id", ""),
        group_leader=bool(a.get("group_leader")), bargain_id=a.get("bargain_id", ""),
        leader_id=a.get("leader_id", ""), pickup_point_id=a.get("pickup_point_id", ""),
        pickup_code=a.get("pickup_code", ""), points_price=a.get("points_price", 0)))


_LEVELS = {"LEVEL_1": common_pb2.COMMISSION_LEVEL_1, "LEVEL_2": common_pb2.COMMISSION_LEVEL_2,
           "GUIDE": common_pb2.COMMISSION_LEVEL_GUIDE,
           "COMMUNITY_LEADER": common_pb2.COMMISSION_LEVEL_COMMUNITY_LEADER}


def _distribution(msg: order_pb2.Order, doc: dict, currency: str) -> None:
    """Who the sale is credited to and the commissions the order owes (staff and events;
    `for_member` hides both)."""
    r = doc.get("referral")
    if r:
        msg.referral.CopyFrom(common_pb2.Referral(
            distributor_id=r.get("distributor_id") or "", distributor_rate_bp=r.get("distributor_rate_bp") or 0,
            upline_distributor_id=r.get("upline_distributor_id") or "", upline_rate_bp=r.get("upline_rate_bp") or 0,
            guide_id=r.get("guide_id") or "", guide_rate_bp=r.get("guide_rate_bp") or 0,
            guide_store=r.get("guide_store") or "", group_buy_commission=bool(r.get("group_buy_commission")),
            community_leader_id=r.get("community_leader_id") or "",
            community_leader_rate_bp=r.get("community_leader_rate_bp") or 0))
    for c in doc.get("commissions") or ():
        msg.commissions.add(line_id=c["line_id"], level=_LEVELS[c["level"]], beneficiary_id=c["beneficiary_id"],
                            rate_bp=c["rate_bp"], base=money(c["base"], currency), amount=money(c["amount"], currency),
                            voided=money(c.get("voided", 0), currency))


def for_member(msg: order_pb2.Order) -> order_pb2.Order:
    """The order as its member sees it: the referral and the commissions name other
    members (the distributors) and staff (the guide) with their rates, so both are left out."""
    del msg.commissions[:]
    msg.ClearField("referral")
    return msg


def _step_sum(stored, step: str) -> int:
    return sum(s["amount"] for s in stored or () if s["step"] == step)


def _member_value(msg: order_pb2.Order, doc: dict, currency: str) -> None:
    """The coupon and points of an order, and each line's shares of them."""
    value = doc.get("member_value")
    if not value:
        return
    if value.get("coupon_id"):
        msg.coupon.CopyFrom(order_pb2.AppliedCoupon(coupon_id=value["coupon_id"], name=value.get("coupon_name", ""),
                                                    amount=money(value.get("coupon_discount", 0), currency)))
    msg.points_used = value.get("points") or 0
    msg.points_discount.CopyFrom(money(value.get("points_discount") or 0, currency))
    for line, stored in zip(msg.lines, doc.get("lines", [])):
        line.coupon_share.CopyFrom(money(_step_sum(stored.get("steps"), COUPON), currency))
        line.points_share.CopyFrom(money(_step_sum(stored.get("steps"), POINTS), currency))


def quote_value(msg: order_pb2.CheckoutQuote, value: PricedValue | None, currency: str) -> order_pb2.CheckoutQuote:
    """The coupon, points and points terms a quote was priced with."""
    if value is None:
        return msg
    if value.coupon is not None:
        msg.coupon.CopyFrom(order_pb2.AppliedCoupon(coupon_id=value.coupon.coupon_id, name=value.coupon.name,
                                                    amount=money(value.coupon.amount, currency)))
    msg.points_used = value.points
    msg.points_discount.CopyFrom(money(value.points_discount, currency))
    if value.terms is not None:
        t = value.terms
        msg.points_terms.CopyFrom(order_pb2.PointsTerms(
            available=t.available, max_usable=t.max_usable, max_discount=money(t.max_discount, currency),
            points_per_yuan=t.points_per_yuan, min_points=t.min_points, step=t.step))
    return msg


def _stored_value(msg: order_pb2.Order, doc: dict, currency: str) -> None:
    """Kind, tender and recharge terms; an order paid only through the provider shows its
    payable as the provider part once paid."""
    sv = doc.get("stored_value") or {}
    if sv.get("kind") == KIND_RECHARGE:
        msg.kind = order_pb2.ORDER_KIND_RECHARGE
    t = sv.get("tender")
    if t is None and doc.get("paid_at") is not None:
        t = {"balance": 0, "provider": doc["payable"], "provider_refunded": doc.get("refunded_amount", 0)}
    if t is not None:
        msg.tender.CopyFrom(order_pb2.Tender(
            balance=money(t["balance"], currency), provider=money(t["provider"], currency),
            balance_refunded=money(t.get("balance_refunded", 0), currency),
            provider_refunded=money(t.get("provider_refunded", 0), currency)))
    r = sv.get("recharge")
    if r:
        msg.recharge.CopyFrom(order_pb2.RechargeTerms(package_id=r["package_id"],
                                                      principal=money(r["principal"], currency),
                                                      bonus=money(r["bonus"], currency)))


def recharge_detail(o: domain.Order) -> events_pb2.RechargeDetail | None:
    """What a paid recharge order credits, as order.paid carries it."""
    r = o.stored_value.recharge
    return events_pb2.RechargeDetail(package_id=r.package_id, principal=r.principal, bonus=r.bonus) if r else None


def shipping_address(a: ShippingAddress, phone: str = "") -> order_pb2.ShippingAddress:
    """The address with the masked phone, or with `phone` (the full number) when given."""
    return order_pb2.ShippingAddress(
        address_id=a.address_id, recipient=a.recipient, phone=phone or a.phone_masked,
        province_code=a.province_code, province_name=a.province_name, city_code=a.city_code,
        city_name=a.city_name, district_code=a.district_code, district_name=a.district_name, detail=a.detail)


def freight_rule(r: FreightRule) -> order_pb2.FreightRule:
    return order_pb2.FreightRule(
        name=r.name, basis=order_pb2.FreightBasis.Value(f"FREIGHT_BASIS_{r.basis.value}"), first=r.first,
        first_fee=money(r.first_fee), additional=r.additional, additional_fee=money(r.additional_fee),
        regions=list(r.regions))


def freight_template(t: FreightTemplate) -> order_pb2.FreightTemplate:
    msg = order_pb2.FreightTemplate(
        default_rule=freight_rule(t.default_rule), rules=[freight_rule(r) for r in t.rules],
        excluded_regions=list(t.excluded_regions), free_over=money(t.free_over),
        free_shipping_tiers=list(t.free_shipping_tiers), version=t.version)
    if t.updated_at is not None:
        msg.updated_at.CopyFrom(timestamp(t.updated_at))
    return msg


def order_of(o: domain.Order) -> order_pb2.Order:
    """The order aggregate as the API shows it."""
    return order(order_doc(o))


def _payment_message(p: Any) -> order_pb2.Payment | None:
    if p is None or isinstance(p, order_pb2.Payment):
        return p
    return payment(p)


def _refund_message(r: Any) -> order_pb2.Refund | None:
    if r is None or isinstance(r, order_pb2.Refund):
        return r
    return refund(r)


def order_event_payload(o: domain.Order, event: Any, version: int) -> Message:
    """The event message of a domain event of `o`, showing the order as it is once
    saved at `version`."""
    shown = order({**order_doc(o), "version": version})
    if isinstance(event, domain.OrderPlaced):
        return events_pb2.OrderPlaced(order=shown)
    if isinstance(event, domain.OrderPaid):
        return events_pb2.OrderPaid(order=shown, payment=_payment_message(event.payment), recharge=recharge_detail(o))
    if isinstance(event, domain.OrderGrouping):
        return events_pb2.OrderGrouping(order=shown, payment=_payment_message(event.payment))
    if isinstance(event, domain.OrderCancelled):
        return events_pb2.OrderCancelled(order=shown, reason=event.reason)
    if isinstance(event, domain.OrderShipped):
        return events_pb2.OrderShipped(order=shown)
    if isinstance(event, domain.OrderDelivered):
        return events_pb2.OrderDelivered(order=shown)
    if isinstance(event, domain.OrderCompleted):
        return events_pb2.OrderCompleted(order=shown, confirmed_by=event.confirmed_by)
    if isinstance(event, domain.OrderRefunded):
        return events_pb2.OrderRefunded(order=shown, refund=_refund_message(event.refund))
    if isinstance(event, domain.OrderSettled):
        return events_pb2.OrderSettled(order=shown)
    raise TypeError(f"no event message for {type(event).__name__}")


def order_events(o: domain.Order, events: list[Any], version: int) -> list[Event]:
    """The outbox events of the domain events `o` recorded, at the version they are saved at."""
    return [event_for(order_event_payload(o, e, version), merchant_id=o.merchant_id, aggregate_id=o.id,
                      aggregate_version=version, channel=o.channel, occurred_at=e.at) for e in events]


def _from_ms(ms: int):
    return timestamp(datetime.fromtimestamp(ms / 1000, tz=timezone.utc))


def payment(p: Payment) -> order_pb2.Payment:
    msg = order_pb2.Payment(
        payment_id=p.id, order_id=p.order_id, method=order_pb2.PaymentMethod.Value(f"PAYMENT_METHOD_{p.method.value}"),
        state=order_pb2.PaymentState.Value(f"PAYMENT_STATE_{p.state.value}"), amount=money(p.amount, p.currency),
        provider_txn_id=p.provider_txn_id, refund_reason=p.refund_reason, balance=money(p.balance, p.currency))
    for field in ("created_at", "succeeded_at"):
        if getattr(p, field) is not None:
            getattr(msg, field).CopyFrom(timestamp(getattr(p, field)))
    return msg


def refund(r: Refund) -> order_pb2.Refund:
    msg = order_pb2.Refund(
        refund_id=r.id, order_id=r.order_id, member_id=r.member_id,
        state=order_pb2.RefundState.Value(f"REFUND_STATE_{r.state.value}"),
        lines=[order_pb2.RefundLine(line_id=l.line_id, sku_id=l.sku_id, quantity=l.quantity,
                                    amount=money(l.amount, r.currency), restocked=l.restocked) for l in r.lines],
        amount=money(r.amount, r.currency), shipping_fee_refund=money(r.shipping_fee_refund, r.currency),
        reason=r.reason, note=r.note, requested_by=r.requested_by, version=r.version,
        provider_status=order_pb2.RefundProviderStatus.Value(f"REFUND_PROVIDER_STATUS_{r.provider_status}")
        if r.provider_status else 0)
    for field in ("created_at", "refunded_at"):
        if getattr(r, field) is not None:
            getattr(msg, field).CopyFrom(timestamp(getattr(r, field)))
    return msg


def ledger_entry(doc: dict) -> order_pb2.LedgerEntry:
    return order_pb2.LedgerEntry(
        entry_id=doc["_id"], order_id=doc["order_id"], payment_id=doc.get("payment_id") or "",
        refund_id=doc.get("refund_id") or "", kind=doc["kind"], debit_account=doc["debit_account"],
        credit_account=doc["credit_account"], amount=money(doc["amount"], doc.get("currency", "CNY")),
        at=timestamp(doc["at"]))


def ledger_record(r: LedgerRecord) -> order_pb2.LedgerEntry:
    e = r.entry
    return order_pb2.LedgerEntry(
        entry_id=e.entry_id, order_id=e.order_id, payment_id=e.payment_id, refund_id=e.refund_id, kind=e.kind,
        debit_account=e.debit, credit_account=e.credit, amount=money(e.amount, r.currency), at=timestamp(r.at))
