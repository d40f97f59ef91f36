"""OrderService over gRPC: requests to use-case inputs, results to messages."""
from __future__ import annotations

from siyu.order.v1 import order_pb2, order_pb2_grpc

from siyu_kit.protos import CHANNEL_NAME

from services.order.adapters import messages
from services.order.application.orders import OrderUseCases, PlaceOrderInput
from services.order.application.payments import PaymentUseCases
from services.order.domain.payments import Notification


def _method_name(value: int) -> str:
    if value == order_pb2.PAYMENT_METHOD_UNSPECIFIED:
        return ""
    name = order_pb2.PaymentMethod.Name(value) if value in order_pb2.PaymentMethod.values() else str(value)
    return name.removeprefix("PAYMENT_METHOD_")


def _callback_msg(n: Notification) -> order_pb2.HandleSandboxPaymentCallbackRequest:
    return order_pb2.HandleSandboxPaymentCallbackRequest(
        payment_id=n.payment_id, provider_txn_id=n.provider_txn_id, amount=n.amount, currency=n.currency,
        result=n.result, timestamp=n.timestamp, signature=n.signature)


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, orders: OrderUseCases, payments: PaymentUseCases):
        self.orders = orders
        self.payments = payments

    async def PlaceOrder(self, request, context):
        a = request.attribution
        channel = CHANNEL_NAME.get(a.channel, "" if a.channel == 0 else f"UNKNOWN_{a.channel}")
        cmd = PlaceOrderInput(
            idempotency_key=request.idempotency_key,
            lines=[(line.sku_id, line.quantity) for line in request.lines],
            attribution={"channel": channel, "persona_id": a.persona_id, "content_id": a.content_id,
                         "live_session_id": a.live_session_id, "share_code": a.share_code},
            remark=request.remark)
        return order_pb2.PlaceOrderResponse(order=messages.order(await self.orders.place(cmd)))

    async def GetOrder(self, request, context):
        return order_pb2.GetOrderResponse(order=messages.order(await self.orders.get(request.order_id)))

    async def ListMyOrders(self, request, context):
        docs, token = await self.orders.list_mine(request.page_size, request.page_token)
        return order_pb2.ListMyOrdersResponse(orders=[messages.order(d) for d in docs], next_page_token=token)

    async def CancelOrder(self, request, context):
        return order_pb2.CancelOrderResponse(order=messages.order(await self.orders.cancel(request.order_id)))

    async def PayOrder(self, request, context):
        doc = await self.payments.pay(request.order_id, request.idempotency_key, _method_name(request.method))
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
