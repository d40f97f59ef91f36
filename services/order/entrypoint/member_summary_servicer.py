"""OrderService's member summary RPC (internal: the member service's 360° view)."""
from __future__ import annotations

from siyu.order.v1 import order_pb2

from services.order.application.member_summary import MemberOrderSummaries
from siyu_kit.protos import timestamp


class MemberSummaryRpcs:
    member_summaries: MemberOrderSummaries | None

    async def SummarizeMemberOrders(self, request, context):
        s = await self.member_summaries.summarize(request.member_id)
        response = order_pb2.SummarizeMemberOrdersResponse(
            order_count=s.order_count, paid_count=s.paid_count, paid_amount=s.paid_amount,
            refunded_amount=s.refunded_amount)
        if s.last is not None:
            response.last_order_id = s.last.order_id
            response.last_order_at.CopyFrom(timestamp(s.last.created_at))
            response.last_order_state = order_pb2.OrderState.Value("ORDER_STATE_" + s.last.state) \
                if "ORDER_STATE_" + s.last.state in order_pb2.OrderState.keys() else 0
            response.last_order_payable = s.last.payable
        return response
