"""The member service's BindInvitee, for a bargain activity that binds new helpers."""
from __future__ import annotations

import grpc
from siyu.member.v1 import member_pb2, member_pb2_grpc

TIMEOUT_S = 2.0


class InviteeClient:
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = member_pb2_grpc.MemberServiceStub(channel)

    async def bind(self, inviter_id: str, invitee_id: str, cause: str) -> bool:
        resp = await self._stub.BindInvitee(member_pb2.BindInviteeRequest(
            inviter_id=inviter_id, invitee_id=invitee_id, cause=cause[:64]), timeout=TIMEOUT_S)
        return resp.bound_now
