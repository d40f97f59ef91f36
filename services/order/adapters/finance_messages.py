"""Proto ⇄ domain for suppliers, the payment split and the finance desk, and the settled
order as the split reads it from an order event."""
from __future__ import annotations

from google.api import httpbody_pb2
from siyu.common.v1 import common_pb2
from siyu.order.v1 import order_pb2

from siyu_kit.protos import money, timestamp

from services.order.domain import finance
from services.order.domain.split import Figures, OwedCommission, SettledLine, SettledOrder, SplitRecord, SplitSettings
from services.order.domain.suppliers import AccountKind, Supplier, SupplierDetails, SupplierLink, mask_tail

_KINDS = {AccountKind.PROVIDER_MERCHANT: order_pb2.SETTLEMENT_ACCOUNT_KIND_PROVIDER_MERCHANT,
          AccountKind.BANK: order_pb2.SETTLEMENT_ACCOUNT_KIND_BANK}
_KIND_OF = {v: k for k, v in _KINDS.items()}
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"


def settled_order(merchant_id: str, o: order_pb2.Order) -> SettledOrder:
    """The order of an order event as the split reads it. An order paid before tenders were
    kept shows its payable as the provider part."""
    t = o.tender
    balance, provider = t.balance.amount, t.provider.amount
    if not o.HasField("tender"):
        provider = o.payable.amount
    return SettledOrder(
        order_id=o.order_id, merchant_id=merchant_id, payment_id=o.payment_id, balance_paid=balance,
        provider_paid=provider, balance_refunded=t.balance_refunded.amount,
        provider_refunded=t.provider_refunded.amount if o.HasField("tender") else o.refunded_amount.amount,
        lines=tuple(SettledLine(l.line_id, l.sku_id, l.quantity, l.refunded_quantity) for l in o.lines),
        commissions=tuple(OwedCommission(c.line_id, common_pb2.CommissionLevel.Name(c.level), c.beneficiary_id,
                                         c.amount.amount, c.voided.amount) for c in o.commissions))


def supplier_details(s: order_pb2.SupplierInput) -> SupplierDetails:
    return SupplierDetails(name=s.name, contact=s.contact, phone=s.phone, account_kind=_KIND_OF[s.account_kind],
                           settlement_account=s.settlement_account)


def supplier(s: Supplier) -> order_pb2.Supplier:
    d = s.details
    return order_pb2.Supplier(
        supplier_id=s.id, name=d.name, contact=d.contact, phone=mask_tail(d.phone) if d.phone else "",
        account_kind=_KINDS[d.account_kind], settlement_account=mask_tail(d.settlement_account),
        state=order_pb2.SupplierState.Value(f"SUPPLIER_STATE_{s.state.value}"), version=s.version,
        created_at=timestamp(s.created_at))


def supplier_link(link: SupplierLink) -> order_pb2.SupplierLink:
    return order_pb2.SupplierLink(sku_id=link.sku_id, supplier_id=link.supplier_id,
                                  supply_price=money(link.supply_price), updated_at=timestamp(link.updated_at))


def _parts(f: Figures) -> list[order_pb2.SplitAmount]:
    return [order_pb2.SplitAmount(kind=p.kind, party_id=p.party_id, amount=money(p.amount)) for p in f.parts]


def order_split(r: SplitRecord) -> order_pb2.OrderSplit:
    f = r.initial
    refunded = {line.line_id: line.refunded_quantity for line in r.seen.lines}
    return order_pb2.OrderSplit(
        split_id=r.id, order_id=r.order_id, gross=money(f.gross), provider_paid=money(f.provider_net),
        parts=_parts(f), provider_fee=money(f.provider_fee), merchant_net=money(f.merchant_net),
        merchant_shortfall=money(f.shortfall),
        lines=[order_pb2.SplitLine(line_id=l.line_id, sku_id=l.sku_id, supplier_id=l.supplier_id,
                                   supply_price=money(l.supply_price), quantity=l.quantity,
                                   refunded_quantity=refunded.get(l.line_id, 0)) for l in r.lines],
        share_state=r.share_state,
        shares=[order_pb2.SplitShare(kind=s.kind, party_id=s.party_id, amount=money(s.amount),
                                     returned=money(s.returned)) for s in r.shares],
        reversals=[order_pb2.SplitReversal(
            refund_id=x.refund_id, gross=money(x.figures.gross), parts=_parts(x.figures),
            provider_fee=money(x.figures.provider_fee), merchant_net=money(max(0, x.figures.merchant_net)),
            merchant_shortfall=money(max(0, x.figures.shortfall)), at=timestamp(x.at)) for x in r.reversals],
        ledger_matches=r.ledger_matches, settled_at=timestamp(r.settled_at))


def split_settings(s: SplitSettings) -> order_pb2.SplitSettings:
    return order_pb2.SplitSettings(platform_fee_bp=s.platform_fee_bp, provider_fee_bp=s.provider_fee_bp,
                                   max_share_bp=s.max_share_bp, platform_account=s.platform_account)


def split_settings_of(m: order_pb2.SplitSettings) -> SplitSettings:
    return SplitSettings(platform_fee_bp=m.platform_fee_bp, provider_fee_bp=m.provider_fee_bp,
                         max_share_bp=m.max_share_bp, platform_account=m.platform_account)


def statement(s: finance.Statement) -> order_pb2.SettlementStatement:
    # A day whose reversals outweigh its splits shows 0 here; the CSV keeps the signed figure.
    return order_pb2.SettlementStatement(
        day=s.day.isoformat(), sales=money(s.sales), refunds=money(s.refunds), commissions=money(max(0, s.commissions)),
        supplier_payables=money(max(0, s.supplier_payables)), platform_fee=money(max(0, s.platform_fee)),
        provider_fee=money(max(0, s.provider_fee)), net=money(max(0, s.net)), shortfall=money(max(0, s.shortfall)),
        settled_orders=s.settled_orders)


def csv_body(data: bytes) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(content_type=CSV_CONTENT_TYPE, data=data)


def reconciliation(day: str, r: finance.Reconciliation) -> order_pb2.ReconcilePaymentsResponse:
    return order_pb2.ReconcilePaymentsResponse(
        day=day, our_payments=money(r.our_payments), our_refunds=money(r.our_refunds),
        provider_payments=money(r.provider_payments), provider_refunds=money(r.provider_refunds),
        provider_fees=money(r.provider_fees), matched=r.matched,
        mismatches=[order_pb2.PaymentMismatch(kind=m.kind, movement=m.movement, our_id=m.our_id, ours=money(m.ours),
                                              providers=money(m.providers)) for m in r.mismatches])
