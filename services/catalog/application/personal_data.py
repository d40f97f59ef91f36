"""The catalog's part of a member's data export (PIPL Art. 45): what it keeps about a
member — their flash-sale quotas and the flash-sale reservations held for them."""
from __future__ import annotations

from typing import Protocol

from siyu_kit import context
from siyu_kit.ids import new_id

PARTS = ("flash_sale_quotas", "flash_sale_reservations")


class MemberRecords(Protocol):
    async def of_member(self, merchant_id: str, member_id: str, part: str) -> list[dict]:
        """The member's records of one part (a name of PARTS) as plain JSON values."""


class CatalogDataExport:
    def __init__(self, records: MemberRecords):
        self.records = records

    async def export(self, member_id: str) -> dict[str, list[dict]]:
        merchant_id = context.current().require_merchant()
        return {part: await self.records.of_member(merchant_id, member_id, part) for part in PARTS}


# ---- erasure (PIPL Art. 47) -----------------------------------------------------------------


class ErasureAcknowledger(Protocol):
    async def acknowledge(self, member_id: str, service: str) -> None:
        """Tells the member service this service erased the member (AcknowledgeErasure)."""


class MemberErasure:
    """The catalog service's part of a member's erasure, on member.erased.

    The catalog keeps a member's id only (flash-sale quotas and the reservations held for them):
the id is the pseudonym orders and ledgers keep, with no name or phone, so there is
nothing to anonymise: it acknowledges, so the member's erasure completes."""

    def __init__(self, acknowledger: ErasureAcknowledger):
        self.acknowledger = acknowledger

    async def on_member_erased(self, merchant_id: str, member_id: str) -> None:
        token = context.use(context.RequestContext(request_id=new_id("req"), merchant_id=merchant_id))
        try:
            await self.acknowledger.acknowledge(member_id, "catalog")
        finally:
            context.reset(token)
