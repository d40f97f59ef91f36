"""The order service, seen from stored value: refunding a recharge order in full through
the payment provider when finance refunds the recharge."""
from __future__ import annotations

import grpc
from siyu.order.v1 import order_pb2, order_pb2_grpc

from siyu_kit import errors

# The provider refund may take a moment; the retry job asks again when it takes longer.
TIMEOUT_S = 10.0


class OrderRefundsClient:
    """The OrderRefunds port over the order service's RefundRechargeOrder (idempotent by
    recharge id, so asking again after a lost answer refunds once)."""

    def __init__(self, channel: grpc.aio.Channel):
        self._stub = order_pb2_grpc.OrderServiceStub(channel)

    async def refund_recharge_order(self, order_id: str, recharge_id: str, amount: int, reason: str) -> str:
        request = order_pb2.RefundRechargeOrderRequest(order_id=order_id, recharge_id=recharge_id, amount=amount,
                                                       reason=reason)
        try:
            response = await self._stub.RefundRechargeOrder(request, timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            raise errors.Unavailable(f"the order service did not refund the recharge order: {error.code().name}",
                                     reason="UNAVAILABLE") from error
        if not response.refund_id:
            raise errors.Unavailable("the order service answered without a refund", reason="UNAVAILABLE")
        return response.refund_id
