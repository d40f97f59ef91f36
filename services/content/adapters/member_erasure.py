"""The member service's AcknowledgeErasure, asked in the member's merchant (the request
context travels as metadata)."""
from __future__ import annotations

import grpc
from siyu.member.v1 import member_pb2, member_pb2_grpc

TIMEOUT_S = 10.0


class MemberErasureClient:
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = member_pb2_grpc.MemberServiceStub(channel)

    async def acknowledge(self, member_id: str, service: str) -> None:
        await self._stub.AcknowledgeErasure(member_pb2.AcknowledgeErasureRequest(member_id=member_id, service=service),
                                            timeout=TIMEOUT_S)
