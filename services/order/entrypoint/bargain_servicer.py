"""The bargain RPCs of OrderService: proto ⇄ use case only."""
from __future__ import annotations

from datetime import timezone

from siyu.order.v1 import order_pb2

from siyu_kit import context as context_mod
from siyu_kit.cancellation import deadline_of
from siyu_kit.protos import CHANNEL_NAME, money, utcnow

from services.order.adapters import bargain_messages as bm, messages
from services.order.application.bargains import BargainUseCases, PlaceBargainOrderInput


def _attribution(a) -> dict:
    return {"channel": CHANNEL_NAME.get(a.channel, "" if a.channel == 0 else f"UNKNOWN_{a.channel}"),
            "persona_id": a.persona_id, "content_id": a.content_id, "live_session_id": a.live_session_id,
            "share_code": a.share_code}


def _viewer() -> str:
    ctx = context_mod.current()
    return ctx.caller_id if ctx.caller_kind == "member" else ""


class BargainRpcs:
    """Mixed into OrderServicer; `self.bargains` is set by bargain_wiring."""
    bargains: BargainUseCases | None = None

    def _bargains(self) -> BargainUseCases:
        if self.bargains is None:
            raise RuntimeError("this servicer was built without bargains")
        return self.bargains

    def _bargain(self, b, staff: bool = False) -> order_pb2.Bargain:
        return bm.bargain(b, viewer_id=_viewer(), now=utcnow(), staff=staff)

    async def _activity(self, a, staff: bool = False) -> order_pb2.BargainActivity:
        return bm.activity(a, await self._bargains().pool_left(a), staff=staff)

    async def CreateBargainActivity(self, request, context):
        a = await self._bargains().create_activity(request.idempotency_key, bm.terms_of(request.activity))
        return order_pb2.CreateBargainActivityResponse(activity=await self._activity(a, staff=True))

    async def UpdateBargainActivity(self, request, context):
        a = await self._bargains().update_activity(
            request.activity_id, title=request.title, ends_at=request.ends_at.ToDatetime(tzinfo=timezone.utc),
            helps_per_member=request.helps_per_member, helps_per_day=request.helps_per_day,
            buy_before_floor=request.buy_before_floor, bind_new_helpers=request.bind_new_helpers)
        return order_pb2.UpdateBargainActivityResponse(activity=await self._activity(a, staff=True))

    async def EndBargainActivity(self, request, context):
        a = await self._bargains().end_activity(request.activity_id)
        return order_pb2.EndBargainActivityResponse(activity=await self._activity(a, staff=True))

    async def ListStaffBargainActivities(self, request, context):
        rows, token = await self._bargains().list_activities(request.page_size, request.page_token, open_only=False)
        return order_pb2.ListStaffBargainActivitiesResponse(
            activities=[await self._activity(a, staff=True) for a in rows], next_page_token=token)

    async def GetStaffBargain(self, request, context):
        b = await self._bargains().get_as_staff(request.bargain_id)
        return order_pb2.GetStaffBargainResponse(bargain=self._bargain(b, staff=True))

    async def ListBargainActivities(self, request, context):
        rows, token = await self._bargains().list_activities(request.page_size, request.page_token, open_only=True)
        return order_pb2.ListBargainActivitiesResponse(activities=[await self._activity(a) for a in rows],
                                                       next_page_token=token)

    async def GetBargainActivity(self, request, context):
        a = await self._bargains().get_activity(request.activity_id)
        return order_pb2.GetBargainActivityResponse(activity=await self._activity(a))

    async def StartBargain(self, request, context):
        b, created = await self._bargains().start(request.activity_id, _attribution(request.attribution))
        return order_pb2.StartBargainResponse(bargain=self._bargain(b), created=created)

    async def HelpBargain(self, request, context):
        r = await self._bargains().help(request.bargain_id, request.nickname)
        return order_pb2.HelpBargainResponse(bargain=self._bargain(r.bargain), cut=money(r.cut),
                                             bound_as_invitee=r.bound_as_invitee)

    async def GetBargain(self, request, context):
        return order_pb2.GetBargainResponse(bargain=self._bargain(await self._bargains().get(request.bargain_id)))

    async def ListMyBargains(self, request, context):
        rows, token = await self._bargains().mine(request.page_size, request.page_token)
        return order_pb2.ListMyBargainsResponse(bargains=[self._bargain(b) for b in rows], next_page_token=token)

    async def PlaceBargainOrder(self, request, context):
        cmd = PlaceBargainOrderInput(bargain_id=request.bargain_id, idempotency_key=request.idempotency_key,
                                     attribution=_attribution(request.attribution), remark=request.remark,
                                     address_id=request.address_id)
        with deadline_of(context):
            order, b = await self._bargains().place_order(cmd)
        return order_pb2.PlaceBargainOrderResponse(order=messages.for_member(messages.order_of(order)),
                                                   bargain=self._bargain(b))
