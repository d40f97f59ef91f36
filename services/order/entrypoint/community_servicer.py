"""The community group buy RPCs of OrderService: proto ⇄ use case only."""
from __future__ import annotations

from datetime import timezone

from siyu.order.v1 import order_pb2

from siyu_kit.cancellation import deadline_of
from siyu_kit.protos import CHANNEL_NAME, money

from services.order.adapters import community_messages as cm, messages
from services.order.application.community import CommunityUseCases, NewCampaign, PlaceCommunityOrderInput
from services.order.domain.community import CONFIRMED_BY_PICKUP


def _attribution(a) -> dict:
    return {"channel": CHANNEL_NAME.get(a.channel, "" if a.channel == 0 else f"UNKNOWN_{a.channel}"),
            "persona_id": a.persona_id, "content_id": a.content_id, "live_session_id": a.live_session_id,
            "share_code": a.share_code}


class CommunityRpcs:
    """Mixed into OrderServicer; `self.community` is set by community_wiring."""
    community: CommunityUseCases | None = None

    def _community(self) -> CommunityUseCases:
        if self.community is None:
            raise RuntimeError("this servicer was built without community group buy")
        return self.community

    async def ApplyCommunityLeader(self, request, context):
        leader = await self._community().apply(request.name, cm.pickup_point_of(request.pickup_point))
        return order_pb2.ApplyCommunityLeaderResponse(leader=cm.leader(leader))

    async def ReviewCommunityLeader(self, request, context):
        leader = await self._community().review(request.leader_id, request.approve, request.reason)
        return order_pb2.ReviewCommunityLeaderResponse(leader=cm.leader(leader))

    async def SetCommunityLeaderEnabled(self, request, context):
        leader = await self._community().set_enabled(request.leader_id, request.enabled)
        return order_pb2.SetCommunityLeaderEnabledResponse(leader=cm.leader(leader))

    async def GetCommunityLeader(self, request, context):
        return order_pb2.GetCommunityLeaderResponse(
            leader=cm.leader(await self._community().get_leader(request.leader_id)))

    async def ListCommunityLeaders(self, request, context):
        state = cm.LEADER_STATE_BACK.get(request.state, "")
        found, token = await self._community().list_leaders(state, request.page_size, request.page_token)
        return order_pb2.ListCommunityLeadersResponse(leaders=[cm.leader(l) for l in found], next_page_token=token)

    async def CreateCommunityCampaign(self, request, context):
        cmd = NewCampaign(
            idempotency_key=request.idempotency_key, title=request.title,
            lines=[(l.sku_id, l.price.amount, l.per_member_limit) for l in request.lines],
            starts_at=request.starts_at.ToDatetime(tzinfo=timezone.utc) if request.HasField("starts_at") else None,
            cut_off_at=request.cut_off_at.ToDatetime(tzinfo=timezone.utc), pickup_date=request.pickup_date,
            leader_rate_bp=request.leader_rate_bp)
        uc = self._community()
        c = await uc.create_campaign(cmd)
        return order_pb2.CreateCommunityCampaignResponse(campaign=cm.campaign(c, uc.state_of(c)))

    async def ListCommunityCampaigns(self, request, context):
        uc = self._community()
        found, leader = await uc.list_campaigns(request.leader_id)
        return order_pb2.ListCommunityCampaignsResponse(campaigns=[cm.campaign(c, uc.state_of(c), leader)
                                                                   for c in found])

    async def GetCommunityCampaign(self, request, context):
        uc = self._community()
        c, leader = await uc.get_campaign(request.campaign_id, request.leader_id)
        return order_pb2.GetCommunityCampaignResponse(campaign=cm.campaign(c, uc.state_of(c), leader))

    async def PlaceCommunityOrder(self, request, context):
        cmd = PlaceCommunityOrderInput(campaign_id=request.campaign_id, leader_id=request.leader_id,
                                       lines=[(l.sku_id, l.quantity) for l in request.lines],
                                       idempotency_key=request.idempotency_key, remark=request.remark,
                                       attribution=_attribution(request.attribution))
        with deadline_of(context):
            order = await self._community().place(cmd)
        return order_pb2.PlaceCommunityOrderResponse(order=messages.for_member(messages.order_of(order)))

    async def GetCommunityPickList(self, request, context):
        per_leader, total = await self._community().pick_list(request.campaign_id, request.leader_id)
        return order_pb2.GetCommunityPickListResponse(leaders=[cm.leader_pick(p, who) for p, who in per_leader],
                                                      total=cm.pick_lines(total))

    async def MarkCommunityBatchDelivered(self, request, context):
        delivered, skipped = await self._community().mark_delivered(request.campaign_id, request.leader_id)
        return order_pb2.MarkCommunityBatchDeliveredResponse(delivered=delivered, skipped=skipped)

    async def ConfirmCommunityPickup(self, request, context):
        o = await self._community().confirm_by_leader(request.campaign_id, request.pickup_code, request.order_id)
        return order_pb2.ConfirmCommunityPickupResponse(
            order_id=o.id, state=order_pb2.OrderState.Value(f"ORDER_STATE_{o.state.value}"))

    async def StaffConfirmCommunityPickup(self, request, context):
        o = await self._community().confirm_by_staff(request.campaign_id, request.leader_id, request.pickup_code,
                                                     request.order_id)
        return order_pb2.StaffConfirmCommunityPickupResponse(
            order_id=o.id, state=order_pb2.OrderState.Value(f"ORDER_STATE_{o.state.value}"))

    async def GetCommunityLeaderDashboard(self, request, context):
        d = await self._community().dashboard(request.campaign_id)
        return order_pb2.GetCommunityLeaderDashboardResponse(
            leader=cm.leader(d.leader),
            orders=[cm.dashboard_order(o, o.confirmed_by == CONFIRMED_BY_PICKUP) for o in d.orders],
            pick_list=cm.pick_lines(d.pick_list), picked_up=d.picked_up, waiting=d.waiting,
            commission_pending=money(d.commission.pending), commission_confirmed=money(d.commission.confirmed))

    async def GetCommunitySettings(self, request, context):
        return order_pb2.GetCommunitySettingsResponse(settings=cm.settings(await self._community().get_settings()))

    async def UpdateCommunitySettings(self, request, context):
        saved = await self._community().update_settings(cm.settings_of(request.settings))
        return order_pb2.UpdateCommunitySettingsResponse(settings=cm.settings(saved))
