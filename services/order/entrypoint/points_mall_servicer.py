"""The points-mall RPCs of OrderService: proto ⇄ use case only."""
from __future__ import annotations

from siyu.order.v1 import order_pb2

from siyu_kit.cancellation import deadline_of
from siyu_kit.protos import CHANNEL_NAME

from services.order.adapters import messages
from services.order.adapters import points_mall_messages as pm
from services.order.application.points_mall import PointsMallUseCases


class PointsMallRpcs:
    """Mixed into OrderServicer; `self.points_mall` is set by points_mall_wiring."""
    points_mall: PointsMallUseCases | None = None

    def _points_mall(self) -> PointsMallUseCases:
        if self.points_mall is None:
            raise RuntimeError("this servicer was built without the points mall")
        return self.points_mall

    async def CreatePointsMallItem(self, request, context):
        view = await self._points_mall().create(pm.draft_of(request), request.idempotency_key)
        return order_pb2.CreatePointsMallItemResponse(item=pm.item_proto(view))

    async def UpdatePointsMallItem(self, request, context):
        view = await self._points_mall().update(request.item_id, request.title, request.points_price,
                                                request.expected_version)
        return order_pb2.UpdatePointsMallItemResponse(item=pm.item_proto(view))

    async def EndPointsMallItem(self, request, context):
        view = await self._points_mall().end(request.item_id)
        return order_pb2.EndPointsMallItemResponse(item=pm.item_proto(view))

    async def ListStaffPointsMallItems(self, request, context):
        views, token = await self._points_mall().staff_list(request.page_size, request.page_token)
        return order_pb2.ListStaffPointsMallItemsResponse(items=[pm.item_proto(v) for v in views],
                                                          next_page_token=token)

    async def ListPointsMallItems(self, request, context):
        views, token = await self._points_mall().listed(request.page_size, request.page_token)
        return order_pb2.ListPointsMallItemsResponse(items=[pm.item_proto(v) for v in views], next_page_token=token)

    async def GetPointsMallItem(self, request, context):
        view = await self._points_mall().get(request.item_id)
        return order_pb2.GetPointsMallItemResponse(item=pm.item_proto(view))

    async def PlacePointsMallOrder(self, request, context):
        a = request.attribution
        attribution = {"channel": CHANNEL_NAME.get(a.channel, "" if a.channel == 0 else f"UNKNOWN_{a.channel}"),
                       "persona_id": a.persona_id, "content_id": a.content_id,
                       "live_session_id": a.live_session_id, "share_code": a.share_code}
        with deadline_of(context):
            order = await self._points_mall().place(pm.place_of(request, attribution))
        return order_pb2.PlacePointsMallOrderResponse(order=messages.order_of(order))
