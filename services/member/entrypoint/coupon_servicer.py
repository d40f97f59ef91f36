"""The coupon RPCs of MemberService: proto in, use case, proto out."""
from __future__ import annotations

from datetime import timezone

from siyu.member.v1 import member_pb2

from siyu_kit.errors import FieldViolation, InvalidArgument

from services.member.adapters import coupon_messages as out
from services.member.application.coupons import CouponUseCases
from services.member.domain.coupons import TemplateState

_MOVES = {TemplateState.ACTIVE: CouponUseCases.activate, TemplateState.PAUSED: CouponUseCases.pause,
          TemplateState.ENDED: CouponUseCases.end}


class CouponRpcs:
    coupons: CouponUseCases

    # ---- staff ---------------------------------------------------------------------------
    async def CreateCouponTemplate(self, request, context):
        template = await self.coupons.create_template(out.draft_of(request), request.idempotency_key)
        return member_pb2.CreateCouponTemplateResponse(template=out.template_proto(template))

    async def GetCouponTemplate(self, request, context):
        template = await self.coupons.get_template(request.template_id)
        return member_pb2.GetCouponTemplateResponse(template=out.template_proto(template))

    async def ListCouponTemplates(self, request, context):
        state = out.TEMPLATE_STATE_BACK.get(request.state) if request.state else None
        templates, token = await self.coupons.list_templates(state, request.page_size, request.page_token)
        return member_pb2.ListCouponTemplatesResponse(templates=[out.template_proto(t) for t in templates],
                                                      next_page_token=token)

    async def UpdateCouponTemplate(self, request, context):
        template = await self.coupons.edit_template(request.template_id, out.draft_of(request))
        return member_pb2.UpdateCouponTemplateResponse(template=out.template_proto(template))

    async def SetCouponTemplateTotal(self, request, context):
        template = await self.coupons.change_total(request.template_id, request.total or None)
        return member_pb2.SetCouponTemplateTotalResponse(template=out.template_proto(template))

    async def SetCouponTemplateState(self, request, context):
        target = out.TEMPLATE_STATE_BACK.get(request.state)
        move = _MOVES.get(target)
        if move is None:
            raise InvalidArgument("the request has invalid fields", reason="INVALID_FIELDS",
                                  violations=[FieldViolation("state", "ACTIVE, PAUSED or ENDED")])
        template = await move(self.coupons, request.template_id)
        return member_pb2.SetCouponTemplateStateResponse(template=out.template_proto(template))

    async def GetCouponTemplateStats(self, request, context):
        stats = await self.coupons.template_stats(request.template_id)
        return member_pb2.GetCouponTemplateStatsResponse(
            issued=stats.issued, locked=stats.locked, used=stats.used, expired=stats.expired,
            discount_given=stats.discount_given, gmv=stats.gmv)

    async def StartCouponGrant(self, request, context):
        job = await self.coupons.start_grant(request.template_id, list(request.member_ids), request.idempotency_key,
                                             segment_id=request.segment_id)
        return member_pb2.StartCouponGrantResponse(grant=out.grant_proto(job))

    async def GetCouponGrant(self, request, context):
        return member_pb2.GetCouponGrantResponse(grant=out.grant_proto(await self.coupons.grant_progress(
            request.grant_id)))

    async def GetCouponSettings(self, request, context):
        return member_pb2.GetCouponSettingsResponse(settings=out.config_proto(await self.coupons.get_settings()))

    async def UpdateCouponSettings(self, request, context):
        config = await self.coupons.update_settings(out.config_of(request.settings))
        return member_pb2.UpdateCouponSettingsResponse(settings=out.config_proto(config))

    # ---- members -------------------------------------------------------------------------
    async def ClaimCoupon(self, request, context):
        coupon, repeated = await self.coupons.claim_once(request.template_id, request.idempotency_key)
        return member_pb2.ClaimCouponResponse(coupon=out.coupon_proto(coupon), repeated=repeated)

    async def ListMyCoupons(self, request, context):
        states = tuple(out.COUPON_STATE_BACK.get(s, s) for s in request.states)
        coupons, token = await self.coupons.my_coupons(states, request.page_size, request.page_token)
        return member_pb2.ListMyCouponsResponse(coupons=[out.coupon_proto(c) for c in coupons],
                                                next_page_token=token)

    async def ListClaimableCoupons(self, request, context):
        rows, token = await self.coupons.claimable(request.page_size, request.page_token)
        return member_pb2.ListClaimableCouponsResponse(coupons=[out.claimable_proto(r) for r in rows],
                                                       next_page_token=token)

    async def ListCouponsForCart(self, request, context):
        options = await self.coupons.for_cart(out.lines_of(request.lines), out.order_kind_of(request.order_kind))
        return member_pb2.ListCouponsForCartResponse(options=[
            member_pb2.CouponOption(coupon=out.coupon_proto(o.coupon), discount=out.discount_proto(o.discount),
                                    usable=o.usable) for o in options])

    # ---- the order service ---------------------------------------------------------------------
    async def QuoteCoupon(self, request, context):
        quoted = await self.coupons.quote(request.member_id, request.coupon_id, out.lines_of(request.lines),
                                          out.order_kind_of(request.order_kind))
        if quoted is None:
            return member_pb2.QuoteCouponResponse(applied=False)
        return member_pb2.QuoteCouponResponse(applied=True, coupon=out.coupon_proto(quoted.coupon),
                                              discount=out.discount_proto(quoted.discount))

    async def LockCoupon(self, request, context):
        locked = await self.coupons.lock(request.coupon_id, request.member_id, request.order_id,
                                         out.lines_of(request.lines), out.order_kind_of(request.order_kind),
                                         request.pay_by.ToDatetime(tzinfo=timezone.utc))
        return member_pb2.LockCouponResponse(coupon=out.coupon_proto(locked.coupon),
                                             discount=out.discount_proto(locked.discount))

    async def UseCoupon(self, request, context):
        coupon = await self.coupons.use(request.coupon_id, request.order_id,
                                        request.order_amount if request.HasField("order_amount") else None)
        return member_pb2.UseCouponResponse(coupon=out.coupon_proto(coupon))

    async def ReleaseCoupon(self, request, context):
        coupon = await self.coupons.release(request.coupon_id, request.order_id)
        return member_pb2.ReleaseCouponResponse(coupon=out.coupon_proto(coupon))

    async def RestoreCoupon(self, request, context):
        coupon = await self.coupons.restore(request.coupon_id, request.order_id)
        return member_pb2.RestoreCouponResponse(coupon=out.coupon_proto(coupon))
