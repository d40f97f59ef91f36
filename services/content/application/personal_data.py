"""The content service's part of members' personal-information rights."""
from __future__ import annotations

from typing import Protocol

from siyu_kit import context
from siyu_kit.ids import new_id


# ---- erasure (PIPL Art. 47) -----------------------------------------------------------------


class ErasureAcknowledger(Protocol):
    async def acknowledge(self, member_id: str, service: str) -> None:
        """Tells the member service this service erased the member (AcknowledgeErasure)."""


class MemberErasure:
    """The content service's part of a member's erasure, on member.erased.

    The content service keeps nothing about a member (personas and contents are the merchant's;
funnels count clicks and orders without member ids), so there is nothing to erase: it
acknowledges, so the member's erasure completes."""

    def __init__(self, acknowledger: ErasureAcknowledger):
        self.acknowledger = acknowledger

    async def on_member_erased(self, merchant_id: str, member_id: str) -> None:
        token = context.use(context.RequestContext(request_id=new_id("req"), merchant_id=merchant_id))
        try:
            await self.acknowledger.acknowledge(member_id, "content")
        finally:
            context.reset(token)
