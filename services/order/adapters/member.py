"""The member service's pricing API, seen from the order service."""
from __future__ import annotations

import grpc
from siyu.member.v1 import member_pb2, member_pb2_grpc

from siyu_kit import context, errors
from siyu_kit.ids import is_id
from siyu_kit.sealing import Sealer

from services.order.application.ports import MemberPricing
from services.order.domain.commissions import Referral
from services.order.domain.freight import ShippingAddress, mask_phone

TIMEOUT_S = 5.0


class MemberClient:
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = member_pb2_grpc.MemberServiceStub(channel)

    async def pricing(self, member_id: str) -> MemberPricing:
        """The member's tier and its discount. Fails rather than guess: charging the list
        price to a member whose tier is unknown would overcharge them."""
        try:
            resp = await self._stub.GetMemberPricing(member_pb2.GetMemberPricingRequest(member_id=member_id),
                                                     timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise errors.NotFound("no such member", reason="MEMBER_NOT_FOUND") from error
            raise errors.Unavailable("the member's tier could not be read; try again",
                                     reason="MEMBER_UNAVAILABLE") from error
        tier = member_pb2.Tier.Name(resp.tier).removeprefix("TIER_") if resp.tier else ""
        return MemberPricing(tier=tier, discount_bp=resp.tier_discount_bp)


class ReferralClient:
    """Who an order's sale is credited to (ResolveReferral), asked once per order placed."""

    def __init__(self, channel: grpc.aio.Channel):
        self._stub = member_pb2_grpc.MemberServiceStub(channel)

    async def resolve(self, member_id: str, sharer_id: str) -> Referral | None:
        """Fails like pricing rather than guess: an order placed without its referral
        would never pay the distributor it owes."""
        # A sharer that is neither a member nor a staff user cannot be bound to: the order
        # goes on with the buyer's own bindings rather than fail over someone else's link.
        sharer_id = sharer_id if is_id(sharer_id, "mem") or is_id(sharer_id, "stf") else ""
        try:
            resp = await self._stub.ResolveReferral(
                member_pb2.ResolveReferralRequest(member_id=member_id, sharer_id=sharer_id), timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise errors.NotFound("no such member", reason="MEMBER_NOT_FOUND") from error
            raise errors.Unavailable("who the order is credited to could not be read; try again",
                                     reason="MEMBER_UNAVAILABLE") from error
        r = resp.referral
        referral = Referral(distributor_id=r.distributor_id, distributor_rate_bp=r.distributor_rate_bp,
                            upline_distributor_id=r.upline_distributor_id, upline_rate_bp=r.upline_rate_bp,
                            guide_id=r.guide_id, guide_rate_bp=r.guide_rate_bp, guide_store=r.guide_store,
                            group_buy_commission=r.group_buy_commission)
        return None if referral.is_empty else referral


class WechatIdentityClient:
    """The member's WeChat openid per channel (GetWechatOpenid), the payer of a JSAPI
    payment: who the token says, never what a client sends."""

    def __init__(self, channel: grpc.aio.Channel):
        self._stub = member_pb2_grpc.MemberServiceStub(channel)

    async def openid(self, member_id: str, channel: str) -> str | None:
        try:
            resp = await self._stub.GetWechatOpenid(
                member_pb2.GetWechatOpenidRequest(member_id=member_id, channel=channel), timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None  # the member service's NO_WECHAT_IDENTITY (or no such member): nobody to charge
            raise errors.Unavailable(f"the member's WeChat identity could not be read; try again "
                                     f"({error.code().name})", reason="MEMBER_UNAVAILABLE") from error
        return resp.openid or None


class AddressClient:
    """The member's address book, read for a quote or an order's snapshot. The full phone
    is sealed at once (bound to the merchant) and never kept in the clear.

    Every call reads the member service, the default (an empty address_id) too: a member
    who changes their default and orders at once ships to the new one. Nothing is
    remembered between calls."""

    def __init__(self, channel: grpc.aio.Channel, sealer: Sealer):
        self._stub = member_pb2_grpc.MemberServiceStub(channel)
        self._sealer = sealer

    async def shipping_address(self, member_id: str, address_id: str) -> ShippingAddress | None:
        try:
            resp = await self._stub.GetShippingAddress(
                member_pb2.GetShippingAddressRequest(member_id=member_id, address_id=address_id), timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                if not address_id:
                    return None  # no default: the order ships without an address
                raise errors.NotFound(f"address {address_id} not found", reason="ADDRESS_NOT_FOUND") from error
            raise errors.Unavailable(f"the shipping address could not be read; try again ({error.code().name})",
                                     reason="ADDRESS_UNAVAILABLE") from error
        a = resp.address
        merchant_id = context.current().merchant_id
        return ShippingAddress(
            address_id=a.address_id, recipient=a.recipient, phone_masked=mask_phone(resp.phone) if resp.phone
            else a.phone_masked, phone_sealed=self._sealer.seal(resp.phone, merchant_id) if resp.phone else "",
            province_code=a.province_code, city_code=a.city_code, district_code=a.district_code,
            province_name=a.province_name, city_name=a.city_name, district_name=a.district_name, detail=a.detail)
