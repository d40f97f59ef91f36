"""member.erased, the one event every service acts on (PIPL Art. 47). A service removes or
pseudonymises what it keeps about the member, then acknowledges to the member service
(AcknowledgeErasure), which marks the member ERASED once every service has. The work and
the acknowledgement are idempotent, so a redelivered event finishes what a crash left."""
from __future__ import annotations

from typing import Awaitable, Callable

import grpc
from siyu.common.v1 import common_pb2
from siyu.member.v1 import events_pb2 as member_events
from siyu.member.v1 import member_pb2, member_pb2_grpc

from siyu_kit import context
from siyu_kit.events.consumer import Poison, Subscription
from siyu_kit.ids import new_id

TIMEOUT_S = 10.0


class ErasureAcknowledgements:
    """The member service's AcknowledgeErasure, asked in the caller's merchant."""

    def __init__(self, channel: grpc.aio.Channel):
        self._stub = member_pb2_grpc.MemberServiceStub(channel)

    async def acknowledge(self, member_id: str, service: str) -> None:
        await self._stub.AcknowledgeErasure(member_pb2.AcknowledgeErasureRequest(member_id=member_id, service=service),
                                            timeout=TIMEOUT_S)


def acknowledge_only(service: str, acknowledgements: ErasureAcknowledgements) -> Callable[[str, str], Awaitable[None]]:
    """The erasure of a service that keeps nothing personal about a member beyond their id
    (the pseudonym orders and ledgers keep): it only acknowledges."""
    async def erase(merchant_id: str, member_id: str) -> None:
        token = context.use(context.RequestContext(request_id=new_id("req"), merchant_id=merchant_id))
        try:
            await acknowledgements.acknowledge(member_id, service)
        finally:
            context.reset(token)
    return erase


def subscription(durable: str, erase: Callable[[str, str], Awaitable[None]]) -> Subscription:
    """A durable consumer of member.erased calling erase(merchant_id, member_id)."""
    async def on_member_erased(envelope: common_pb2.EventEnvelope, erased: member_events.MemberErased) -> None:
        if not (envelope.merchant_id and erased.member_id):
            raise Poison("a MemberErased needs a merchant and a member")
        await erase(envelope.merchant_id, erased.member_id)

    return Subscription.to(durable, member_events.MemberErased, on_member_erased)
