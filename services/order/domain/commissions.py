"""Commissions an order owes: who its sale is credited to (the referral, fixed when it is
placed), what each eligible line owes each level when the order is paid, and how much of
that refunds void.

amount = floor(paid_amount × rate_bp / 10000) on the line's paid amount (after coupon and
points, never the shipping fee). A refund voids the refunded share of each commission of
the line, cumulatively: floor(amount × refunded_amount / paid_amount), and all of it once
the line is fully refunded, so voided only grows and never exceeds amount."""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Protocol, Sequence

BP = 10_000


class CommissionLevel(str, Enum):
    LEVEL_1 = "LEVEL_1"  # the buyer's distributor
    LEVEL_2 = "LEVEL_2"  # that distributor's upline
    GUIDE = "GUIDE"  # the guide credited with the sale
    COMMUNITY_LEADER = "COMMUNITY_LEADER"  # the community leader whose campaign sold it


@dataclass(frozen=True)
class Referral:
    """Who an order's sale is credited to, as the member service answered at placement."""
    distributor_id: str = ""
    distributor_rate_bp: int = 0
    upline_distributor_id: str = ""
    upline_rate_bp: int = 0
    guide_id: str = ""
    guide_rate_bp: int = 0
    guide_store: str = ""
    group_buy_commission: bool = False
    # The community leader (a member) whose campaign the order came from, and their rate.
    community_leader_id: str = ""
    community_leader_rate_bp: int = 0

    @property
    def is_empty(self) -> bool:
        return not (self.distributor_id or self.upline_distributor_id or self.guide_id or self.community_leader_id)

    def beneficiaries(self) -> tuple[tuple[CommissionLevel, str, int], ...]:
        """(level, beneficiary, rate) of every level that earns: a beneficiary and a rate
        above 0. Never a third distributor level."""
        levels = ((CommissionLevel.LEVEL_1, self.distributor_id, self.distributor_rate_bp),
                  (CommissionLevel.LEVEL_2, self.upline_distributor_id, self.upline_rate_bp),
                  (CommissionLevel.GUIDE, self.guide_id, self.guide_rate_bp),
                  (CommissionLevel.COMMUNITY_LEADER, self.community_leader_id, self.community_leader_rate_bp))
        return tuple((level, who, rate) for level, who, rate in levels if who and rate > 0)


@dataclass(frozen=True)
class Commission:
    """What one line owes one level; voided grows as the line is refunded."""
    line_id: str
    level: CommissionLevel
    beneficiary_id: str
    rate_bp: int
    base: int
    amount: int
    voided: int = 0


class CommissionLine(Protocol):
    line_id: str
    paid_amount: int
    refunded_amount: int
    commission_eligible: bool


def commission_amount(paid_amount: int, rate_bp: int) -> int:
    return paid_amount * rate_bp // BP


def commissions_at_paid(lines: Sequence[CommissionLine], referral: Referral | None, *,
                        earns: bool = True) -> tuple[Commission, ...]:
    """One commission per eligible line and earning level; none without a referral, or
    when the order earns none (`earns` False: a recharge order). A line paid 0 owes 0
    and is left out."""
    if referral is None or not earns:
        return ()
    levels = referral.beneficiaries()
    return tuple(Commission(line_id=line.line_id, level=level, beneficiary_id=who, rate_bp=rate,
                            base=line.paid_amount, amount=commission_amount(line.paid_amount, rate))
                 for line in lines if line.commission_eligible and line.paid_amount > 0
                 for level, who, rate in levels)


def voided_share(amount: int, line: CommissionLine) -> int:
    """How much of `amount` the line's refunds void: all of it once every fen paid for
    the line went back, else the refunded share of the money, rounded down (commission
    follows the money the merchant keeps, whatever happened to the units)."""
    if line.refunded_amount >= line.paid_amount:
        return amount
    return amount * line.refunded_amount // line.paid_amount


def after_refunds(commissions: Sequence[Commission], lines: Sequence[CommissionLine]) -> tuple[Commission, ...]:
    """The commissions with voided brought to the lines' refunded totals; voided never
    goes down (a late or repeated figure changes nothing)."""
    by_id = {line.line_id: line for line in lines}
    out = []
    for c in commissions:
        line = by_id.get(c.line_id)
        voided = c.voided if line is None else max(c.voided, min(c.amount, voided_share(c.amount, line)))
        out.append(c if voided == c.voided else replace(c, voided=voided))
    return tuple(out)


def all_voided(commissions: Sequence[Commission]) -> tuple[Commission, ...]:
    """Every commission voided in full: the whole payment went back."""
    return tuple(c if c.voided == c.amount else replace(c, voided=c.amount) for c in commissions)
