"""The points ledger (积分): append-only, one entry per source, balance = sum of entries."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from siyu_kit.money import BASIS_POINTS, yuan_floor

SOURCES = ("ORDER", "CHECK_IN", "REFERRAL", "ADJUSTMENT", "EXPIRY")


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
class Balance:
    balance: int
    frozen: int

    @property
    def available(self) -> int:
        return self.balance - self.frozen


def balance_of(entries: list[tuple[int, bool]]) -> Balance:
    """`entries` as (points, frozen); the balance is always the sum of the ledger."""
    return Balance(balance=sum(p for p, _ in entries), frozen=sum(p for p, f in entries if f))
