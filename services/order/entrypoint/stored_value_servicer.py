"""The stored-value RPCs of OrderService: proto ⇄ use case only."""
from __future__ import annotations

from siyu.order.v1 import order_pb2

from services.order.adapters import messages
from services.order.application.refunds import RefundUseCases
from services.order.application.stored_value import StoredValueUseCases


class StoredValueRpcs:
    """Mixed into OrderServicer; `self.stored_value` is the stored-value use cases."""
    stored_value: StoredValueUseCases | None
    refunds: RefundUseCases

    def _stored_value(self) -> StoredValueUseCases:
        if self.stored_value is None:
            raise RuntimeError("this servicer was built without stored value")
        return self.stored_value

    async def PlaceRechargeOrder(self, request, context):
        order = await self._stored_value().place_recharge(request.idempotency_key, request.package_id)
        return order_pb2.PlaceRechargeOrderResponse(order=messages.order_of(order))

    async def RefundRechargeOrder(self, request, context):
        refund = await self.refunds.refund_recharge(request.order_id, request.recharge_id, request.amount,
                                                    request.reason)
        return order_pb2.RefundRechargeOrderResponse(refund_id=refund.id)
