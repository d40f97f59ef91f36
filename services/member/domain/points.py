"""The points ledger (积分): append-only, one entry per source, balance = sum of entries."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from siyu_kit.aggregate import Aggregate
from siyu_kit.money import BASIS_POINTS, yuan_floor

from services.member.domain import tiers
from services.member.domain.config import MerchantConfig

SOURCES = ("ORDER", "CHECK_IN", "REFERRAL", "ADJUSTMENT", "EXPIRY", "REFUND")


@dataclass(frozen=True)
class Earning:
    points: int
    growth: int


def earn_for_payment(paid_fen: int, multiplier_bp: int) -> Earning:
    """1 point per whole yuan paid × the tier multiplier (rounded down); 1 growth per yuan."""
    if multiplier_bp < 0:
        raise ValueError("multiplier must not be negative")
    yuan = yuan_floor(paid_fen)
    return Earning(points=yuan * multiplier_bp // BASIS_POINTS, growth=yuan)


def frozen_until(paid_at: datetime, frozen_days: int) -> datetime:
    return paid_at + timedelta(days=frozen_days)


@dataclass(frozen=True)
class PointsEntry:
    id: str  # pte_…
    source: str  # one of SOURCES
    source_id: str  # the order id of an ORDER entry
    points: int
    growth: int = 0
    frozen: bool = False
    frozen_until: datetime | None = None
    created_at: datetime | None = None
    # ---- the points account's movements (entries from before them have kind "") ----
    kind: str = ""  # services.member.domain.points_account.KINDS
    member_id: str = ""
    available: int = 0  # what the movement did to each counter
    frozen_delta: int = 0
    held: int = 0
    owed: int = 0
    gross: int = 0  # EARN: points earned before paying off what was owed; REVERSE: taken back
    returned: int = 0  # REVERSE: spent points returned
    refunded: int = 0  # REVERSE: the refunded amount (fen) its points were taken back for
    order_id: str = ""
    reason: str = ""
    actor_id: str = ""

    def deltas(self) -> dict[str, int]:
        """What the entry did to each counter; an entry from before movements is an
        order's earning, frozen or not."""
        if self.kind:
            return {"balance": self.points, "available": self.available, "frozen": self.frozen_delta,
                    "held": self.held, "owed": self.owed}
        frozen = self.points if self.frozen else 0
        return {"balance": self.points, "available": self.points - frozen, "frozen": frozen, "held": 0, "owed": 0}


@dataclass(frozen=True)
class PointsEarned:
    """A member earned points (and growth) from a paid order, on the order's channel."""
    member_id: str
    entry: PointsEntry
    channel: str = ""


@dataclass
class PointsAccount(Aggregate):
    """A member's points and growth: the sum of its ledger. The ledger is append-only and
    holds one entry per source, so an earning is one insert that a unique index makes
    happen once; the account has no version to compare (0)."""
    id: str  # the member id
    merchant_id: str
    version: int
    growth: int = 0
    new_entries: list[PointsEntry] = field(default_factory=list)

    def earn_for_order(self, entry_id: str, order_id: str, paid_fen: int, paid_at: datetime,
                       config: MerchantConfig, now: datetime, channel: str = "") -> PointsEntry:
        """Points for a paid order at the tier its growth so far reaches; frozen until the
        order's after-sales window closes."""
        earning = earn_for_payment(paid_fen, tiers.multiplier_bp(self.growth, config))
        entry = PointsEntry(id=entry_id, source="ORDER", source_id=order_id, points=earning.points,
                            growth=earning.growth, frozen=True,
                            frozen_until=frozen_until(paid_at, config.points_frozen_days), created_at=now)
        self.new_entries.append(entry)
        self.growth += earning.growth
        self.record(PointsEarned(member_id=self.id, entry=entry, channel=channel))
        return entry


@dataclass(frozen=True)
class PointsMoved:
    """Points were held, spent, released, unfrozen, reversed, expired or adjusted."""
    member_id: str
    entry: PointsEntry
    channel: str = ""
