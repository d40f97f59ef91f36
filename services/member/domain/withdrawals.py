"""Withdrawals of settled commission and the merchant's withdrawal terms.

A withdrawal is first HOLDING (stored, its money not yet taken), then REQUESTED once the
balance gave the amount (one guarded decrement), then FINANCE approves (PAYING: the
provider's transfer, keyed by the withdrawal id) or rejects it. A transfer ends PAID or
FAILED; a rejected or failed withdrawal returns its money. `booked` says whether the
balance movement its final state owes (paid out, or returned) is done: the job finishes
what a crash left between the two writes.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from siyu_kit.aggregate import Aggregate, StateMachine
from siyu_kit.errors import FailedPrecondition

HOLDING, REQUESTED, PAYING, PAID, REJECTED, FAILED, DROPPED = (
    "HOLDING", "REQUESTED", "PAYING", "PAID", "REJECTED", "FAILED", "DROPPED")
SHOWN = (REQUESTED, PAYING, PAID, REJECTED, FAILED)
RETURNS_MONEY = (REJECTED, FAILED)

MACHINE = StateMachine("withdrawal", {
    HOLDING: {REQUESTED, DROPPED},
    REQUESTED: {PAYING, REJECTED},
    PAYING: {PAID, FAILED},
    PAID: set(), REJECTED: set(), FAILED: set(), DROPPED: set(),
}, refused_reason="WITHDRAWAL_STATE")

BUSINESS_ZONE = ZoneInfo("Asia/Shanghai")
MIN_FLOOR = 100  # ¥1: the smallest minimum a merchant may set
MAX_FEE_BP = 5000


def business_day(at: datetime) -> str:
    return at.astimezone(BUSINESS_ZONE).date().isoformat()


@dataclass(frozen=True)
class WithdrawalSettings:
    min_amount: int = 100
    fee_bp: int = 0
    daily_limit: int = 500_000

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.min_amount < MIN_FLOOR:
            out.append(("settings.min_amount", f"at least {MIN_FLOOR} (¥1)"))
        if not 0 <= self.fee_bp <= MAX_FEE_BP:
            out.append(("settings.fee_bp", f"0..{MAX_FEE_BP}"))
        if self.daily_limit < self.min_amount:
            out.append(("settings.daily_limit", "at least the minimum"))
        return out

    def fee(self, amount: int) -> int:
        return amount * self.fee_bp // 10_000

    def check(self, amount: int) -> None:
        if amount < self.min_amount:
            raise FailedPrecondition(f"the smallest withdrawal is {self.min_amount} fen",
                                     reason="WITHDRAWAL_BELOW_MINIMUM")
        if amount > self.daily_limit:
            raise FailedPrecondition(f"at most {self.daily_limit} fen a day", reason="WITHDRAWAL_DAILY_LIMIT")
        if amount - self.fee(amount) <= 0:
            raise FailedPrecondition("the fee would leave nothing to pay out", reason="WITHDRAWAL_NOTHING_TO_PAY")


@dataclass
class Withdrawal(Aggregate):
    id: str
    merchant_id: str
    version: int
    member_id: str
    amount: int
    fee: int
    state: str
    idempotency_key: str
    day: str
    created_at: datetime
    updated_at: datetime
    reason: str = ""
    provider_transfer_id: str = ""
    booked: bool = False

    @property
    def payout(self) -> int:
        return self.amount - self.fee

    @property
    def owes_booking(self) -> bool:
        return not self.booked and self.state in (PAID, REJECTED, FAILED)

    def _move(self, target: str, now: datetime) -> bool:
        if self.state == target:
            return False
        MACHINE.require(self.state, target)
        self.state = target
        self.updated_at = now
        if target in (PAID, REJECTED, FAILED):
            self.booked = False
        return True

    def held(self, now: datetime) -> bool:
        return self._move(REQUESTED, now)

    def drop(self, reason: str, now: datetime) -> bool:
        """The money was not there (`reason`: the refusal's word); the key stays used."""
        moved = self._move(DROPPED, now)
        if moved:
            self.reason = reason
        return moved

    def approve(self, now: datetime) -> bool:
        return self._move(PAYING, now)

    def reject(self, reason: str, now: datetime) -> bool:
        moved = self._move(REJECTED, now)
        if moved:
            self.reason = reason
        return moved

    def paid(self, provider_transfer_id: str, now: datetime) -> bool:
        moved = self._move(PAID, now)
        if moved:
            self.provider_transfer_id = provider_transfer_id
        return moved

    def failed(self, reason: str, now: datetime) -> bool:
        moved = self._move(FAILED, now)
        if moved:
            self.reason = reason
        return moved
