"""What the commission and withdrawal use cases need from outside. Every method is async;
implementations live in the adapters (commission_store.py, order_payouts.py).

`CommissionStore.move` is the one conditional update every balance movement is (the
guards are in services/member/domain/commissions.py `Movement`); it answers False,
having written nothing, when a guard did not hold. That update marks its subject under
way with the ledger entry it owes; the entry is then stored in the ledger (unique per
cause). A record movement then writes the record's credited value and releases its
subject; a withdrawal movement is released (`release`) once the withdrawal's state records
it. `finish` completes a record movement someone else left under way; `repair` finishes
what a crash left.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.member.domain.commissions import CommissionBook, CommissionEntry, CommissionRecord, Movement
from services.member.domain.withdrawals import Withdrawal, WithdrawalSettings


@dataclass(frozen=True)
class StateTotals:
    """amount − voided per record state, and everything voided."""
    pending: int = 0
    frozen: int = 0
    settled: int = 0
    void: int = 0


@dataclass(frozen=True)
class BalanceTotals:
    available: int = 0
    withdrawing: int = 0
    withdrawn: int = 0
    debt: int = 0


@dataclass(frozen=True)
class Liability:
    principal: int
    bonus: int
    accounts: int


@dataclass(frozen=True)
class Transfer:
    """What the provider says of a payout: PROCESSING, SUCCEEDED, FAILED, or LATER when it
    could not be asked (the order service or the provider is away)."""
    state: str
    provider_transfer_id: str = ""
    failure_reason: str = ""


class CommissionStore(Protocol):
    async def records(self, merchant_id: str, order_id: str) -> list[CommissionRecord]: ...

    async def save_record(self, record: CommissionRecord, was: CommissionRecord | None) -> bool:
        """Inserts (was None) or moves the record on from `was` (stage and voided as read);
        False when another writer came first."""
        ...

    async def book(self, merchant_id: str, beneficiary_id: str) -> CommissionBook:
        """The beneficiary's balance (an empty one when none exists yet)."""
        ...

    async def record(self, merchant_id: str, record_id: str) -> CommissionRecord | None: ...

    async def move(self, merchant_id: str, movement: Movement, entry: CommissionEntry) -> bool: ...

    async def finish(self, merchant_id: str, beneficiary_id: str, subject: str) -> None:
        """Stores the entry of the subject's movement under way; for a record, also writes its
        credited value and releases it. Idempotent."""
        ...

    async def release(self, merchant_id: str, beneficiary_id: str, cause: str) -> None:
        """Ends a withdrawal's movement (once; its cause is its subject): the withdrawal's
        own state now records it."""
        ...

    async def entries(self, merchant_id: str, beneficiary_id: str) -> list[CommissionEntry]: ...

    async def page(self, merchant_id: str, beneficiary_id: str, state: str, before_id: str,
                   limit: int) -> list[CommissionRecord]:
        """The beneficiary's records, newest first (ids below `before_id`), in `state` when given."""
        ...

    async def state_totals(self, merchant_id: str, beneficiary_id: str) -> StateTotals:
        """Over the beneficiary's records; over the merchant's when beneficiary_id is empty."""
        ...

    async def balance_totals(self, merchant_id: str) -> BalanceTotals: ...

    async def payees(self, merchant_id: str, after_id: str, limit: int) -> list[CommissionBook]:
        """Balances by beneficiary id, ids above `after_id`."""
        ...

    async def repair(self, now_ms: int) -> int: ...


class WithdrawalStore(Protocol):
    async def get(self, merchant_id: str, withdrawal_id: str) -> Withdrawal | None: ...

    async def by_key(self, merchant_id: str, member_id: str, key: str) -> Withdrawal | None: ...

    async def add(self, withdrawal: Withdrawal) -> bool:
        """False when the member already has a withdrawal with that key."""
        ...

    async def save(self, withdrawal: Withdrawal) -> None:
        """Compare-and-set on the version read; StaleVersion on a lost race."""
        ...

    async def page(self, merchant_id: str, member_id: str, state: str, before_id: str,
                   limit: int) -> list[Withdrawal]:
        """Newest first; one member's when member_id is given; one state when given."""
        ...

    async def claim(self, now_ms: int, lease_ms: int, stale_before_ms: int) -> Withdrawal | None:
        """One withdrawal the job must finish (PAYING, HOLDING since before `stale_before_ms`,
        or a final state not yet booked) whose lease expired, leased to the caller."""
        ...


class WithdrawalSettingsStore(Protocol):
    async def get(self, merchant_id: str) -> tuple[WithdrawalSettings, int]:
        """The terms and their version (the defaults at version 1 when never set)."""
        ...

    async def put(self, merchant_id: str, settings: WithdrawalSettings, expected_version: int) -> int | None:
        """The new version, or None when the version was not `expected_version`."""
        ...


class Payouts(Protocol):
    async def transfer(self, merchant_id: str, transfer_id: str, member_id: str, amount: int,
                       remark: str) -> Transfer:
        """Asks for (or again about) the transfer; idempotent by transfer_id."""
        ...


class StoredValueTotals(Protocol):
    async def liability(self, merchant_id: str) -> Liability: ...
