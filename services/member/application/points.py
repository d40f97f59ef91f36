"""Points and growth from paid orders: one ledger entry per order, whatever the replays."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.member.application.merchants import merchant_config
from services.member.application.ports import MemberRepository, MerchantRepository, PointsLedger
from services.member.domain.points import PointsEntry
from siyu_kit import logging as slog
from siyu_kit.ids import new_id
from siyu_kit.protos import utcnow

log = slog.get("siyu.member.points")


@dataclass(frozen=True)
class PaidOrder:
    """What a paid order tells the points ledger."""
    event_id: str
    merchant_id: str
    order_id: str
    member_id: str
    payable: int  # minor units
    paid_at: datetime
    channel: str = ""


class UnknownMember(Exception):
    """The paid order names a member this merchant does not have."""


class OrderPoints:
    def __init__(self, members: MemberRepository, merchants: MerchantRepository, ledger: PointsLedger):
        self.members = members
        self.merchants = merchants
        self.ledger = ledger

    async def on_order_paid(self, order: PaidOrder) -> PointsEntry | None:
        """Earns the order's points once: the entry written now, None when the order had
        been applied already (a replay or a second delivery)."""
        if await self.members.get(order.merchant_id, order.member_id) is None:
            raise UnknownMember(f"no member {order.member_id} in this merchant")
        config = await merchant_config(self.merchants, order.merchant_id)
        account = await self.ledger.account(order.merchant_id, order.member_id)
        entry = account.earn_for_order(new_id("pte"), order.order_id, order.payable, order.paid_at, config,
                                       utcnow(), order.channel)
        if not await self.ledger.save(account):
            log.info("points.already_applied", order_id=order.order_id, event_id=order.event_id)
            return None
        log.info("points.earned", order_id=order.order_id, member_id=order.member_id, points=entry.points)
        return entry
