"""The points-mall coupon RPCs of MemberService: proto in, use case, proto out."""
from __future__ import annotations

from datetime import datetime, timezone

from siyu.member.v1 import member_pb2

from services.member.adapters.coupon_messages import coupon_proto
from services.member.application.points_mall import ItemDraft, PointsMallCoupons
from services.member.domain.points_mall import CouponItem, Redemption
from siyu_kit.protos import timestamp


def _time(message, name: str) -> datetime | None:
    return getattr(message, name).ToDatetime(tzinfo=timezone.utc) if message.HasField(name) else None


def item_proto(item: CouponItem) -> member_pb2.PointsMallCoupon:
    return member_pb2.PointsMallCoupon(
        item_id=item.id, template_id=item.template_id, name=item.name, points_price=item.points_price,
        total_units=item.total_units, units_left=max(item.left, 0), per_member_limit=item.per_member_limit,
        starts_at=timestamp(item.starts_at), ends_at=timestamp(item.ends_at),
        state=member_pb2.PointsMallCouponState.Value(f"POINTS_MALL_COUPON_STATE_{item.state.value}"),
        version=item.version, created_at=timestamp(item.created_at))


def redemption_proto(r: Redemption) -> member_pb2.Redemption:
    return member_pb2.Redemption(
        redemption_id=r.id, item_id=r.item_id, template_id=r.template_id, points=r.points,
        state=member_pb2.RedemptionState.Value(f"REDEMPTION_STATE_{r.state.value}"), coupon_id=r.coupon_id,
        failure_reason=r.failure_reason, created_at=timestamp(r.created_at))


class PointsMallRpcs:
    """Mixed into MemberServicer; `self.points_mall` is set by points_mall_wiring."""
    points_mall: PointsMallCoupons | None = None

    def _points_mall(self) -> PointsMallCoupons:
        if self.points_mall is None:
            raise RuntimeError("this servicer was built without the points mall")
        return self.points_mall

    async def CreatePointsMallCoupon(self, request, context):
        draft = ItemDraft(template_id=request.template_id, points_price=request.points_price, units=request.units,
                          per_member_limit=request.per_member_limit, starts_at=_time(request, "starts_at"),
                          ends_at=_time(request, "ends_at"))
        item = await self._points_mall().create(draft, request.idempotency_key)
        return member_pb2.CreatePointsMallCouponResponse(item=item_proto(item))

    async def UpdatePointsMallCoupon(self, request, context):
        item = await self._points_mall().update(request.item_id, request.points_price, request.add_units,
                                                request.expected_version)
        return member_pb2.UpdatePointsMallCouponResponse(item=item_proto(item))

    async def EndPointsMallCoupon(self, request, context):
        item = await self._points_mall().end(request.item_id)
        return member_pb2.EndPointsMallCouponResponse(item=item_proto(item))

    async def ListStaffPointsMallCoupons(self, request, context):
        items, token = await self._points_mall().staff_list(request.page_size, request.page_token)
        return member_pb2.ListStaffPointsMallCouponsResponse(items=[item_proto(i) for i in items],
                                                             next_page_token=token)

    async def ListPointsMallCoupons(self, request, context):
        items, token = await self._points_mall().listed(request.page_size, request.page_token)
        return member_pb2.ListPointsMallCouponsResponse(items=[item_proto(i) for i in items], next_page_token=token)

    async def RedeemPointsMallCoupon(self, request, context):
        redemption, coupon = await self._points_mall().redeem(request.item_id, request.idempotency_key)
        return member_pb2.RedeemPointsMallCouponResponse(redemption=redemption_proto(redemption),
                                                         coupon=coupon_proto(coupon) if coupon else None)

    async def ListMyRedemptions(self, request, context):
        found, token = await self._points_mall().my_redemptions(request.page_size, request.page_token)
        return member_pb2.ListMyRedemptionsResponse(redemptions=[redemption_proto(r) for r in found],
                                                    next_page_token=token)
