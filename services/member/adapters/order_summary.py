"""The order service, seen from the member 360° view: one member's orders in figures
(SummarizeMemberOrders, internal). The view is still shown when the order service does not
answer in time: its orders part says so."""
from __future__ import annotations

from datetime import timezone

import grpc
from siyu.order.v1 import order_pb2, order_pb2_grpc

from services.member.application.member_view_ports import OrdersSummary
from siyu_kit import logging as slog

TIMEOUT_S = 3.0
log = slog.get("siyu.member.order_summary")


class OrderSummaryClient:
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = order_pb2_grpc.OrderServiceStub(channel)

    async def summarize(self, member_id: str) -> OrdersSummary | None:
        try:
            r = await self._stub.SummarizeMemberOrders(order_pb2.SummarizeMemberOrdersRequest(member_id=member_id),
                                                       timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            log.warning("member_360.orders_unavailable", code=error.code().name)
            return None
        state = order_pb2.OrderState.Name(r.last_order_state).removeprefix("ORDER_STATE_") \
            if r.last_order_state else ""
        return OrdersSummary(order_count=r.order_count, paid_count=r.paid_count, paid_amount=r.paid_amount,
                             refunded_amount=r.refunded_amount, last_order_id=r.last_order_id,
                             last_order_at=r.last_order_at.ToDatetime(tzinfo=timezone.utc) if r.last_order_id else None,
                             last_order_state=state, last_order_payable=r.last_order_payable)
