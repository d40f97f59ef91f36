"""OrderService over gRPC: requests to use-case inputs, results to messages."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from siyu.order.v1 import order_pb2, order_pb2_grpc

from siyu_kit import context as context_mod
from siyu_kit.cancellation import deadline_of
from siyu_kit.sealing import Sealer
from siyu_kit.protos import CHANNEL_NAME, money

from services.order.adapters import messages
from services.order.application.cart import CartUseCases, CartView
from services.order.application.checkout import Checkout
from services.order.application.freight import FreightUseCases
from services.order.application.fulfilment import FulfilmentUseCases
from services.order.application.flash_orders import FlashOrderUseCases, PlaceFlashSaleOrderInput
from services.order.application.orders import OrderUseCases, PlaceOrderInput
from services.order.application.payments import PaymentUseCases
from services.order.application.refunds import RefundInput, RefundUseCases
from services.order.application.reservations import ReservationUseCases
from services.order.application.settings import SettingsUseCases
from services.order.application.staff_orders import OrderQuery, StaffOrderUseCases, sees_full_phone
from services.order.application.wechat_pay import WechatPayUseCases
from services.order.application.stored_value import StoredValueUseCases
from services.order.domain.freight import Basis, FreightRule, FreightTemplate
from services.order.domain.member_value import ValueAsk
from services.order.domain.payments import Notification
from services.order.domain.refunds import LineRequest
from services.order.domain.settings import OrderSettings, ThresholdReduction
from services.order.entrypoint.wechat_pay_servicer import WechatPayRpcs
from services.order.entrypoint.stored_value_servicer import StoredValueRpcs
from services.order.entrypoint.member_summary_servicer import MemberSummaryRpcs
from services.order.application.member_summary import MemberOrderSummaries
from services.order.entrypoint.personal_data_servicer import PersonalDataRpcs
from services.order.entrypoint.finance_servicer import FinanceRpcs
from services.order.entrypoint.community_servicer import CommunityRpcs
from services.order.entrypoint.points_mall_servicer import PointsMallRpcs
from services.order.entrypoint.group_buy_servicer import GroupBuyRpcs
from services.order.application.personal_data import OrderDataExport
from services.order.entrypoint.payout_servicer import PayoutRpcs
from services.order.application.payouts import PayoutUseCases
from services.order.entrypoint.bargain_servicer import BargainRpcs


def _method_name(value: int) -> str:
    if value == order_pb2.PAYMENT_METHOD_UNSPECIFIED:
        return ""
    name = order_pb2.PaymentMethod.Name(value) if value in order_pb2.PaymentMethod.values() else str(value)
    return name.removeprefix("PAYMENT_METHOD_")


def _callback_msg(n: Notification) -> order_pb2.HandleSandboxPaymentCallbackRequest:
    return order_pb2.HandleSandboxPaymentCallbackRequest(
        payment_id=n.payment_id, provider_txn_id=n.provider_txn_id, amount=n.amount, currency=n.currency,
        result=n.result, timestamp=n.timestamp, signature=n.signature)


def _settings_input(msg: order_pb2.OrderSettings) -> tuple[OrderSettings, dict[str, str]]:
    """The settings asked for, and the currency each money field came with."""
    rules = msg.threshold_reductions
    wanted = OrderSettings(
        unpaid_expiry_s=msg.unpaid_expiry_seconds, flash_sale_expiry_s=msg.flash_sale_expiry_seconds,
        auto_confirm_days=msg.auto_confirm_days, after_sales_days=msg.after_sales_days,
        threshold_reductions=tuple(ThresholdReduction(r.threshold.amount, r.reduction.amount) for r in rules),
        shipping_fee=msg.shipping_fee.amount, free_shipping_over=msg.free_shipping_over.amount)
    currencies = {"settings.shipping_fee": msg.shipping_fee.currency,
                  "settings.free_shipping_over": msg.free_shipping_over.currency}
    for i, r in enumerate(rules):
        currencies[f"settings.threshold_reductions[{i}].threshold"] = r.threshold.currency
        currencies[f"settings.threshold_reductions[{i}].reduction"] = r.reduction.currency
    return wanted, currencies


def _cart_msg(view: CartView) -> order_pb2.Cart:
    return messages.cart(view.cart.items, view.cart.version, view.cart.updated_ms, view.skus)


def _enum_name(enum, value: int, prefix: str) -> str:
    """"" for the unspecified value; an unknown number keeps a name no rule accepts."""
    if value == 0:
        return ""
    return enum.Name(value).removeprefix(prefix) if value in enum.values() else f"UNKNOWN_{value}"


def _refund_input(request) -> RefundInput:
    return RefundInput(order_id=request.order_id, idempotency_key=request.idempotency_key, reason=request.reason,
                       lines=[LineRequest(l.line_id, l.quantity, l.amount if l.HasField("amount") else None)
                              for l in request.lines])


def _freight_input(msg: order_pb2.FreightTemplate) -> tuple[FreightTemplate, dict[str, str]]:
    """The template asked for, and the currency each money field came with."""
    def rule(r: order_pb2.FreightRule, name: str) -> FreightRule:
        currencies[f"{name}.first_fee"] = r.first_fee.currency
        currencies[f"{name}.additional_fee"] = r.additional_fee.currency
        basis = Basis.WEIGHT if r.basis == order_pb2.FREIGHT_BASIS_WEIGHT else Basis.UNITS
        return FreightRule(name=r.name, basis=basis, first=r.first, first_fee=r.first_fee.amount,
                           additional=r.additional or 1, additional_fee=r.additional_fee.amount,
                           regions=tuple(r.regions))

    currencies = {"template.free_over": msg.free_over.currency}
    wanted = FreightTemplate(
        merchant_id="", version=0, default_rule=rule(msg.default_rule, "template.default_rule"),
        rules=tuple(rule(r, f"template.rules[{i}]") for i, r in enumerate(msg.rules)),
        excluded_regions=tuple(msg.excluded_regions), free_over=msg.free_over.amount,
        free_shipping_tiers=tuple(msg.free_shipping_tiers))
    return wanted, currencies


def _time(request, field: str) -> datetime | None:
    return getattr(request, field).ToDatetime(tzinfo=timezone.utc) if request.HasField(field) else None


class OrderServicer(PayoutRpcs, WechatPayRpcs, StoredValueRpcs, MemberSummaryRpcs, PersonalDataRpcs, FinanceRpcs,
                    CommunityRpcs, BargainRpcs, PointsMallRpcs, GroupBuyRpcs,
                    order_pb2_grpc.OrderServiceServicer):
    def __init__(self, orders: OrderUseCases, payments: PaymentUseCases, *, carts: CartUseCases,
                 checkout: Checkout, settings: SettingsUseCases, fulfilment: FulfilmentUseCases,
                 refunds: RefundUseCases, staff: StaffOrderUseCases, flash: FlashOrderUseCases,
                 reservations: ReservationUseCases, freight: FreightUseCases | None = None,
                 sealer: Sealer | None = None, wechat: WechatPayUseCases | None = None,
                 stored_value: StoredValueUseCases | None = None,
                 member_summaries: MemberOrderSummaries | None = None,
                 personal_data: OrderDataExport | None = None,
                 payouts: PayoutUseCases | None = None):
        self.payouts = payouts  # PayOutTransfer (PayoutRpcs)
        self.member_summaries = member_summaries  # the member 360° view's orders (MemberSummaryRpcs)
        self.personal_data = personal_data  # the member's data export (PersonalDataRpcs)
        self.orders = orders
        self.stored_value = stored_value
        self.wechat = wechat
        self.freight = freight
        self.sealer = sealer
        self.flash = flash
        self.payments = payments
        self.carts = carts
        self.checkout = checkout
        self.settings = settings
        self.fulfilment = fulfilment
        self.refunds = refunds
        self.staff = staff
        self.reservations = reservations

    def _staff_order(self, order) -> order_pb2.Order:
        """The order as staff see it: the shipping phone in full for those who ship it."""
        msg = messages.order_of(order)
        a = order.shipping_address
        if (a is not None and a.phone_sealed and self.sealer is not None
                and sees_full_phone(context_mod.current().roles)):
            msg.shipping_address.phone = self.sealer.open(a.phone_sealed, order.merchant_id)
        return msg

    # ---- fulfilment and after-sales -------------------------------------------------

    async def ConfirmReceipt(self, request, context):
        order = await self.fulfilment.confirm_receipt(request.order_id)
        return order_pb2.ConfirmReceiptResponse(order=messages.for_member(messages.order_of(order)))

    async def ShipOrder(self, request, context):
        order = await self.fulfilment.ship(request.order_id, request.carrier, request.tracking_number)
        return order_pb2.ShipOrderResponse(order=self._staff_order(order))

    async def MarkDelivered(self, request, context):
        order = await self.fulfilment.mark_delivered(request.order_id)
        return order_pb2.MarkDeliveredResponse(order=messages.order_of(order))

    async def RequestRefund(self, request, context):
        doc = await self.refunds.request(_refund_input(request))
        return order_pb2.RequestRefundResponse(refund=messages.refund(doc))

    async def ListOrderRefunds(self, request, context):
        docs = await self.refunds.list_of_order(request.order_id)
        return order_pb2.ListOrderRefundsResponse(refunds=[messages.refund(d) for d in docs])

    async def CreateRefund(self, request, context):
        doc = await self.refunds.create(replace(_refund_input(request), after_window=request.after_window))
        return order_pb2.CreateRefundResponse(refund=messages.refund(doc))

    async def ApproveRefund(self, request, context):
        doc = await self.refunds.approve(request.refund_id)
        return order_pb2.ApproveRefundResponse(refund=messages.refund(doc))

    async def RejectRefund(self, request, context):
        doc = await self.refunds.reject(request.refund_id, request.note)
        return order_pb2.RejectRefundResponse(refund=messages.refund(doc))

    async def ListRefunds(self, request, context):
        docs, token = await self.refunds.list_for_staff(
            request.order_id, _enum_name(order_pb2.RefundState, request.state, "REFUND_STATE_"),
            request.page_size, request.page_token,
            provider_status=_enum_name(order_pb2.RefundProviderStatus, request.provider_status,
                                       "REFUND_PROVIDER_STATUS_"))
        return order_pb2.ListRefundsResponse(refunds=[messages.refund(d) for d in docs], next_page_token=token)

    # ---- staff reads ----------------------------------------------------------------

    async def SearchOrders(self, request, context):
        orders, token = await self.staff.search(OrderQuery(
            state=_enum_name(order_pb2.OrderState, request.state, "ORDER_STATE_"),
            created_from=_time(request, "created_from"), created_to=_time(request, "created_to"),
            channel=CHANNEL_NAME.get(request.channel, "" if request.channel == 0 else f"UNKNOWN_{request.channel}"),
            member_id=request.member_id, page_size=request.page_size, page_token=request.page_token))
        return order_pb2.SearchOrdersResponse(orders=[messages.order_of(o) for o in orders], next_page_token=token)

    async def GetOrderAsStaff(self, request, context):
        order, refunds, payments = await self.staff.get(request.order_id)
        return order_pb2.GetOrderAsStaffResponse(order=self._staff_order(order),
                                                 refunds=[messages.refund(d) for d in refunds],
                                                 payments=[messages.payment(d) for d in payments])

    async def GetPaymentLedger(self, request, context):
        view = await self.staff.ledger(request.order_id)
        currency = view.entries[0].currency if view.entries else "CNY"
        return order_pb2.GetPaymentLedgerResponse(
            entries=[messages.ledger_record(r) for r in view.entries],
            balances=[order_pb2.AccountBalance(account=a, balance=money(b, currency))
                      for a, b in sorted(view.balances.items())],
            balanced=view.balanced)

    # ---- placing and paying ---------------------------------------------------------

    async def PlaceOrder(self, request, context):
        a = request.attribution
        channel = CHANNEL_NAME.get(a.channel, "" if a.channel == 0 else f"UNKNOWN_{a.channel}")
        cmd = PlaceOrderInput(
            idempotency_key=request.idempotency_key,
            lines=[(line.sku_id, line.quantity) for line in request.lines],
            attribution={"channel": channel, "persona_id": a.persona_id, "content_id": a.content_id,
                         "live_session_id": a.live_session_id, "share_code": a.share_code},
            remark=request.remark, remove_from_cart=request.remove_from_cart, address_id=request.address_id,
            coupon_id=request.coupon_id, best_coupon=request.best_coupon, points=request.points)
        with deadline_of(context):
            return order_pb2.PlaceOrderResponse(order=messages.order_of(await self.orders.place(cmd)))

    async def PlaceFlashSaleOrder(self, request, context):
        a = request.attribution
        cmd = PlaceFlashSaleOrderInput(
            flash_sale_id=request.flash_sale_id, idempotency_key=request.idempotency_key, quantity=request.quantity,
            attribution={"channel": CHANNEL_NAME.get(a.channel, "" if a.channel == 0 else f"UNKNOWN_{a.channel}"),
                         "persona_id": a.persona_id, "content_id": a.content_id,
                         "live_session_id": a.live_session_id, "share_code": a.share_code},
            remark=request.remark, address_id=request.address_id, coupon_id=request.coupon_id,
            best_coupon=request.best_coupon, points=request.points)
        with deadline_of(context):
            return order_pb2.PlaceFlashSaleOrderResponse(order=messages.order_of(await self.flash.place(cmd)))

    async def GetOrder(self, request, context):
        return order_pb2.GetOrderResponse(order=messages.for_member(messages.order_of(await self.orders.get(request.order_id))))

    async def ListMyOrders(self, request, context):
        orders, token = await self.orders.list_mine(request.page_size, request.page_token, _tab_name(request.tab))
        return order_pb2.ListMyOrdersResponse(orders=[messages.for_member(messages.order_of(o)) for o in orders],
                                              next_page_token=token)

    async def CountMyOrders(self, request, context):
        counts = await self.orders.count_mine()
        return order_pb2.CountMyOrdersResponse(counts=[
            order_pb2.OrderTabCount(tab=order_pb2.OrderTab.Value(f"ORDER_TAB_{tab.value}"), count=n)
            for tab, n in counts.items()])

    async def CancelOrderAsStaff(self, request, context):
        order = await self.orders.cancel_as_staff(request.order_id)
        return order_pb2.CancelOrderAsStaffResponse(order=messages.order_of(order))

    async def CancelOrder(self, request, context):
        return order_pb2.CancelOrderResponse(order=messages.order_of(await self.orders.cancel(request.order_id)))

    async def PayOrder(self, request, context):
        if request.method == order_pb2.PAYMENT_METHOD_WECHAT:
            return await self._pay_wechat(request)
        doc = await self.payments.pay(request.order_id, request.idempotency_key, _method_name(request.method),
                                      use_balance=request.use_balance)
        return order_pb2.PayOrderResponse(payment=messages.payment(doc))

    async def HandleSandboxPaymentCallback(self, request, context):
        n = Notification(payment_id=request.payment_id, provider_txn_id=request.provider_txn_id,
                         amount=request.amount, currency=request.currency, result=request.result,
                         timestamp=request.timestamp, signature=request.signature)
        doc, applied = await self.payments.handle_callback(n)
        return order_pb2.HandleSandboxPaymentCallbackResponse(payment=messages.payment(doc), applied=applied)

    async def CompleteSandboxPayment(self, request, context):
        n, doc = await self.payments.complete_sandbox(request.payment_id)
        return order_pb2.CompleteSandboxPaymentResponse(callback=_callback_msg(n), payment=messages.payment(doc))

    async def GetCart(self, request, context):
        return order_pb2.GetCartResponse(cart=_cart_msg(await self.carts.get()))

    async def AddCartItem(self, request, context):
        return order_pb2.AddCartItemResponse(cart=_cart_msg(await self.carts.add(request.sku_id, request.quantity)))

    async def UpdateCartItem(self, request, context):
        view = await self.carts.update(request.sku_id, request.quantity, request.selected, request.expected_version)
        return order_pb2.UpdateCartItemResponse(cart=_cart_msg(view))

    async def RemoveCartItems(self, request, context):
        view = await self.carts.remove(list(request.sku_ids), request.expected_version)
        return order_pb2.RemoveCartItemsResponse(cart=_cart_msg(view))

    async def QuoteCheckout(self, request, context):
        a = request.attribution
        priced = await self.checkout.quote([(line.sku_id, line.quantity) for line in request.lines],
                                           request.address_id, ValueAsk(coupon_id=request.coupon_id,
                                                                        best_coupon=request.best_coupon,
                                                                        points=request.points),
                                           attribution={"persona_id": a.persona_id, "content_id": a.content_id,
                                                        "live_session_id": a.live_session_id,
                                                        "share_code": a.share_code})
        return order_pb2.QuoteCheckoutResponse(quote=messages.quote_value(
            messages.checkout_quote(priced.quote, priced.currency, priced.tier, priced.address), priced.value,
            priced.currency))

    async def GetOrderSettings(self, request, context):
        return order_pb2.GetOrderSettingsResponse(settings=messages.order_settings(await self.settings.get()))

    async def UpdateOrderSettings(self, request, context):
        wanted, currencies = _settings_input(request.settings)
        saved = await self.settings.update(wanted, currencies, request.expected_version)
        return order_pb2.UpdateOrderSettingsResponse(settings=messages.order_settings(saved))

    # ---- freight templates -----------------------------------------------------------

    async def GetFreightTemplate(self, request, context):
        template = await self._freight().get()
        if template is None:
            return order_pb2.GetFreightTemplateResponse(configured=False)
        return order_pb2.GetFreightTemplateResponse(template=messages.freight_template(template), configured=True)

    async def PutFreightTemplate(self, request, context):
        wanted, currencies = _freight_input(request.template)
        saved = await self._freight().put(wanted, currencies, request.expected_version)
        return order_pb2.PutFreightTemplateResponse(template=messages.freight_template(saved))

    def _freight(self) -> FreightUseCases:
        if self.freight is None:
            raise RuntimeError("this servicer was built without freight templates")
        return self.freight

    # ---- internal ------------------------------------------------------------------

    async def ResolveReservation(self, request, context):
        verdict, state = await self.reservations.resolve(request.order_id, request.reservation_id)
        return order_pb2.ResolveReservationResponse(
            verdict=order_pb2.ReservationVerdict.Value(f"RESERVATION_VERDICT_{verdict.value}"),
            order_state=order_pb2.OrderState.Value(f"ORDER_STATE_{state.value}") if state else 0)


def _tab_name(value: int) -> str:
    """ORDER_TAB_UNPAID → "UNPAID"; unspecified → "" (every order)."""
    if not value:
        return ""
    name = order_pb2.OrderTab.Name(value) if value in order_pb2.OrderTab.values() else str(value)
    return name.removeprefix("ORDER_TAB_")
