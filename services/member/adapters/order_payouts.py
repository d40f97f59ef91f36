"""The order service, seen from withdrawals: paying a withdrawal out through the payment
provider's transfer (PayOutTransfer, internal, idempotent by transfer id = the wdr_ id, so
asking again after a lost answer or a crash pays once)."""
from __future__ import annotations

import grpc
from siyu.common.v1 import common_pb2
from siyu.order.v1 import order_pb2, order_pb2_grpc

from services.member.application.commission_ports import Transfer
from siyu_kit import logging as slog

# The provider may take a moment; the withdrawal job asks again when it takes longer.
TIMEOUT_S = 10.0
# Not an answer about the transfer: ask again later (never a failure that returns money).
LATER = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.DEADLINE_EXCEEDED,
         grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL,
         grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED}
STATES = {order_pb2.TRANSFER_STATE_PROCESSING: "PROCESSING", order_pb2.TRANSFER_STATE_SUCCEEDED: "SUCCEEDED",
          order_pb2.TRANSFER_STATE_FAILED: "FAILED"}
log = slog.get("siyu.member.order_payouts")


class OrderPayoutsClient:
    """The Payouts port over the order service's PayOutTransfer."""

    def __init__(self, channel: grpc.aio.Channel):
        self._stub = order_pb2_grpc.OrderServiceStub(channel)

    async def transfer(self, merchant_id: str, transfer_id: str, member_id: str, amount: int,
                       remark: str) -> Transfer:
        request = order_pb2.PayOutTransferRequest(transfer_id=transfer_id, member_id=member_id,
                                                  amount=common_pb2.Money(amount=amount, currency="CNY"),
                                                  remark=remark[:32])
        try:
            response = await self._stub.PayOutTransfer(request, timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            if error.code() in LATER:
                log.warning("withdrawal.payout_later", transfer_id=transfer_id, code=error.code().name)
                return Transfer("LATER")
            # A refusal of the request itself (bad amount, unknown member) will not change
            # by asking again: the transfer failed and the money goes back.
            return Transfer("FAILED", failure_reason=f"{error.code().name}: {error.details() or ''}"[:200])
        return Transfer(STATES.get(response.state, "LATER"), provider_transfer_id=response.provider_transfer_id,
                        failure_reason=response.failure_reason)
