"""The member service's tier pricing, seen from the catalog (for "my price")."""
from __future__ import annotations

import grpc
from siyu.member.v1 import member_pb2, member_pb2_grpc

from siyu_kit import errors

from services.catalog.application.ports import MemberTier

# A listing waits at most this long for the member's tier, then shows list prices only.
TIMEOUT_S = 1.0


class MemberClient:
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = member_pb2_grpc.MemberServiceStub(channel)

    async def pricing(self, member_id: str) -> MemberTier:
        try:
            resp = await self._stub.GetMemberPricing(member_pb2.GetMemberPricingRequest(member_id=member_id),
                                                     timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise errors.NotFound("no such member", reason="NOT_FOUND") from error
            raise errors.Unavailable("the member's tier could not be read", reason="UNAVAILABLE") from error
        tier = member_pb2.Tier.Name(resp.tier).removeprefix("TIER_") if resp.tier else ""
        return MemberTier(tier=tier, discount_bp=resp.tier_discount_bp)
