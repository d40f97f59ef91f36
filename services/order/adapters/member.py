"""The member service's pricing API, seen from the order service."""
from __future__ import annotations

import grpc
from siyu.member.v1 import member_pb2, member_pb2_grpc

from siyu_kit import errors

from services.order.application.ports import MemberPricing

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
