"""The order service, seen from the catalog: what may be done with an order's expired
reservation."""
from __future__ import annotations

import grpc
from siyu.order.v1 import order_pb2, order_pb2_grpc

from siyu_kit import context, logging as slog

from services.catalog.application.ports import COMMIT, KEEP, RELEASE

log = slog.get("siyu.catalog.orders")

TIMEOUT_S = 5.0


class OrderClient:
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = order_pb2_grpc.OrderServiceStub(channel)

    async def verdict(self, merchant_id: str, order_id: str, reservation_id: str) -> str | None:
        """COMMIT, RELEASE or KEEP; None when the order service cannot say now (the
        sweeper asks again on its next pass rather than guess)."""
        metadata = context.RequestContext(merchant_id=merchant_id).to_metadata()
        try:
            resp = await self._stub.ResolveReservation(
                order_pb2.ResolveReservationRequest(order_id=order_id, reservation_id=reservation_id),
                metadata=metadata, timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            log.warning("orders.unreachable", order_id=order_id, code=error.code().name)
            return None
        name = order_pb2.ReservationVerdict.Name(resp.verdict).removeprefix("RESERVATION_VERDICT_")
        return name if name in (COMMIT, RELEASE, KEEP) else None
