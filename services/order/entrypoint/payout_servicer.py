"""OrderService's PayOutTransfer (internal: the member service pays approved withdrawals
through it): proto ⇄ use case only."""
from __future__ import annotations

from siyu.order.v1 import order_pb2

from siyu_kit.protos import CHANNEL_NAME

from services.order.application.payouts import PayoutUseCases


class PayoutRpcs:
    """Mixed into OrderServicer; `self.payouts` is the payout use cases."""
    payouts: PayoutUseCases | None

    async def PayOutTransfer(self, request, context):
        if self.payouts is None:
            raise RuntimeError("this servicer was built without payouts")
        payout = await self.payouts.pay_out(request.transfer_id, request.member_id, request.amount.amount,
                                            request.remark, CHANNEL_NAME.get(request.channel, "MINI_PROGRAM"))
        return order_pb2.PayOutTransferResponse(
            state=order_pb2.TransferState.Value(f"TRANSFER_STATE_{payout.state.value}"),
            provider_transfer_id=payout.provider_transfer_id, failure_reason=payout.failure_reason)
