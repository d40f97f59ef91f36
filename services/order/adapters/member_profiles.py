"""The calling member's nickname and avatar (GetMyProfile), for the group pages."""
from __future__ import annotations

import grpc
from siyu.member.v1 import member_pb2, member_pb2_grpc

from siyu_kit import logging as slog

TIMEOUT_S = 2.0
log = slog.get("siyu.order.member_profiles")


class MemberProfileClient:
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = member_pb2_grpc.MemberServiceStub(channel)

    async def nickname_and_avatar(self, member_id: str) -> tuple[str, str]:
        """Asked as the calling member (the request's identity travels with the call).
        A profile that cannot be read is not worth refusing an order: ("", "")."""
        try:
            resp = await self._stub.GetMyProfile(member_pb2.GetMyProfileRequest(), timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            log.info("member.profile_unread", member_id=member_id, code=str(error.code()))
            return "", ""
        return resp.profile.nickname, resp.profile.avatar_url
