"""The group-buy RPCs of OrderService: proto ⇄ use case only."""
from __future__ import annotations

from siyu.order.v1 import order_pb2

from siyu_kit import context as context_mod
from siyu_kit.cancellation import deadline_of
from siyu_kit.protos import CHANNEL_NAME, utcnow

from services.order.adapters import group_buy_messages as gm, messages
from services.order.application.group_buys import GroupBuyUseCases, PlaceGroupBuyOrderInput


def _attribution(a) -> dict:
    return {"channel": CHANNEL_NAME.get(a.channel, "" if a.channel == 0 else f"UNKNOWN_{a.channel}"),
            "persona_id": a.persona_id, "content_id": a.content_id, "live_session_id": a.live_session_id,
            "share_code": a.share_code}


class GroupBuyRpcs:
    """Mixed into OrderServicer; `self.group_buys` is set by group_buy_wiring."""
    group_buys: GroupBuyUseCases | None = None

    def _gb(self) -> GroupBuyUseCases:
        if self.group_buys is None:
            raise RuntimeError("this servicer was built without group buys")
        return self.group_buys

    async def CreateGroupBuyActivity(self, request, context):
        a = await self._gb().create_activity(request.idempotency_key, gm.terms_of(request.activity))
        return order_pb2.CreateGroupBuyActivityResponse(activity=gm.activity(a))

    async def UpdateGroupBuyActivity(self, request, context):
        a = await self._gb().update_activity(
            request.activity_id, request.expected_version, title=request.title, group_hours=request.group_hours,
            virtual_fill_bp=request.virtual_fill_bp,
            full_group_payment=gm.full_group_payment_of(request.full_group_payment),
            allow_coupons=request.allow_coupons, pay_commission=request.pay_commission)
        return order_pb2.UpdateGroupBuyActivityResponse(activity=gm.activity(a))

    async def EndGroupBuyActivity(self, request, context):
        a = await self._gb().end_activity(request.activity_id)
        return order_pb2.EndGroupBuyActivityResponse(activity=gm.activity(a))

    async def ListStaffGroupBuyActivities(self, request, context):
        found, token = await self._gb().staff_activities(request.page_size, request.page_token)
        return order_pb2.ListStaffGroupBuyActivitiesResponse(activities=[gm.activity(a) for a in found],
                                                             next_page_token=token)

    async def GetStaffGroup(self, request, context):
        g = await self._gb().group(request.group_id)
        return order_pb2.GetStaffGroupResponse(group=gm.group(g, utcnow(), staff=True))

    async def ListGroupBuyActivities(self, request, context):
        views, token = await self._gb().activities_on(request.page_size, request.page_token)
        return order_pb2.ListGroupBuyActivitiesResponse(activities=[gm.activity(v.activity, v.pools) for v in views],
                                                        next_page_token=token)

    async def GetGroupBuyActivity(self, request, context):
        v = await self._gb().activity(request.activity_id)
        return order_pb2.GetGroupBuyActivityResponse(activity=gm.activity(v.activity, v.pools))

    async def PlaceGroupBuyOrder(self, request, context):
        cmd = PlaceGroupBuyOrderInput(
            activity_id=request.activity_id, sku_id=request.sku_id, idempotency_key=request.idempotency_key,
            quantity=request.quantity, group_id=request.group_id, attribution=_attribution(request.attribution),
            remark=request.remark, address_id=request.address_id, coupon_id=request.coupon_id,
            points=request.points)
        with deadline_of(context):
            order = await self._gb().place(cmd)
        return order_pb2.PlaceGroupBuyOrderResponse(order=messages.order_of(order))

    async def ListJoinableGroups(self, request, context):
        found = await self._gb().joinable(request.activity_id, request.page_size)
        now = utcnow()
        return order_pb2.ListJoinableGroupsResponse(groups=[gm.group(g, now) for g in found])

    async def GetGroup(self, request, context):
        g = await self._gb().group(request.group_id)
        return order_pb2.GetGroupResponse(group=gm.group(g, utcnow(), viewer=context_mod.current().caller_id))

    async def ListMyGroups(self, request, context):
        found = await self._gb().my_groups(request.page_size)
        viewer, now = context_mod.current().caller_id, utcnow()
        return order_pb2.ListMyGroupsResponse(groups=[gm.group(g, now, viewer=viewer) for g in found])
