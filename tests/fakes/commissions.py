"""In-memory commission and withdrawal ports. `FakeCommissions.move` checks every guard
the store's conditional update carries (`domain.commissions.applies`) and yields to the
event loop between a read and a write, so concurrent use cases interleave as they do over
MongoDB; the ledger keeps one entry per cause. A record movement then writes the record's
credited value and releases its subject, each step after a yield, as the store does; a
withdrawal movement stays under way until `release`. `crash_after_move` leaves that many
record movements under way (the process died after the update)."""
from __future__ import annotations

import asyncio
import copy

from services.member.application.commission_ports import BalanceTotals, Liability, StateTotals, Transfer
from services.member.domain.commissions import (FROZEN, PENDING, SETTLED, CommissionBook, CommissionEntry,
                                                CommissionRecord, Movement, applies, apply, release)
from services.member.domain.withdrawals import HOLDING, PAYING, SHOWN, Withdrawal, WithdrawalSettings
from siyu_kit.protos import epoch_ms
from tests.fakes.store import VersionedStore, require_version


async def _round_trip() -> None:
    await asyncio.sleep(0)


class FakeCommissions:
    def __init__(self):
        self.records_by_id: dict[str, CommissionRecord] = {}
        self.books: dict[tuple[str, str], CommissionBook] = {}
        self.ledger: dict[tuple[str, str], CommissionEntry] = {}
        self.lost_writes = 0  # that many record saves lose to "another writer"
        self.crash_after_move = 0
        self.under_way: dict[tuple[str, str, str], tuple[Movement, CommissionEntry]] = {}

    async def records(self, merchant_id: str, order_id: str) -> list[CommissionRecord]:
        await _round_trip()
        return [copy.deepcopy(r) for r in self.records_by_id.values()
                if r.merchant_id == merchant_id and r.order_id == order_id]

    async def save_record(self, record: CommissionRecord, was: CommissionRecord | None) -> bool:
        await _round_trip()
        stored = self.records_by_id.get(record.id)
        if self.lost_writes:
            self.lost_writes -= 1
            return False
        if was is None:
            if stored is not None:
                return False
        elif stored is None or (stored.stage, stored.voided) != (was.stage, was.voided):
            return False
        self.records_by_id[record.id] = copy.deepcopy(record)
        return True

    async def book(self, merchant_id: str, beneficiary_id: str) -> CommissionBook:
        await _round_trip()
        book = self.books.get((merchant_id, beneficiary_id))
        return copy.deepcopy(book) if book else CommissionBook(merchant_id, beneficiary_id)

    async def record(self, merchant_id: str, record_id: str) -> CommissionRecord | None:
        await _round_trip()
        r = self.records_by_id.get(record_id)
        return copy.deepcopy(r) if r is not None and r.merchant_id == merchant_id else None

    async def move(self, merchant_id: str, movement: Movement, entry: CommissionEntry) -> bool:
        await _round_trip()
        key = (merchant_id, movement.beneficiary_id)
        book = self.books.setdefault(key, CommissionBook(merchant_id, movement.beneficiary_id))
        if not applies(book, movement):
            return False
        apply(book, movement)
        self.under_way[(merchant_id, movement.beneficiary_id, movement.subject)] = (movement, entry)
        if movement.record_id and self.crash_after_move:
            self.crash_after_move -= 1
            return True
        await self.finish(merchant_id, movement.beneficiary_id, movement.subject)
        return True

    async def finish(self, merchant_id: str, beneficiary_id: str, subject: str) -> None:
        owed = self.under_way.get((merchant_id, beneficiary_id, subject))
        if owed is None:
            return
        movement, entry = owed
        await _round_trip()
        self.ledger.setdefault((merchant_id, movement.cause), entry)
        if movement.record_id:
            await _round_trip()
            r = self.records_by_id.get(movement.record_id)
            if r is not None and r.credited == movement.credited_was:
                r.credited = movement.credited_now
            await self._release(merchant_id, beneficiary_id, subject, movement.cause)

    async def release(self, merchant_id: str, beneficiary_id: str, cause: str) -> None:
        await self._release(merchant_id, beneficiary_id, cause, cause)

    async def _release(self, merchant_id: str, beneficiary_id: str, subject: str, cause: str) -> None:
        await _round_trip()
        book = self.books.get((merchant_id, beneficiary_id))
        if book is not None and release(book, subject, cause):
            self.under_way.pop((merchant_id, beneficiary_id, subject), None)

    async def entries(self, merchant_id: str, beneficiary_id: str) -> list[CommissionEntry]:
        return [e for (m, _), e in self.ledger.items() if m == merchant_id and e.beneficiary_id == beneficiary_id]

    async def page(self, merchant_id, beneficiary_id, state, before_id, limit):
        rows = sorted((r for r in self.records_by_id.values() if r.merchant_id == merchant_id
                       and r.beneficiary_id == beneficiary_id and (not state or r.state == state)
                       and (not before_id or r.id < before_id)), key=lambda r: r.id, reverse=True)
        return [copy.deepcopy(r) for r in rows[:limit]]

    async def state_totals(self, merchant_id: str, beneficiary_id: str) -> StateTotals:
        sums = {PENDING: 0, FROZEN: 0, SETTLED: 0}
        void = 0
        for r in self.records_by_id.values():
            if r.merchant_id != merchant_id or (beneficiary_id and r.beneficiary_id != beneficiary_id):
                continue
            if r.state in sums:
                sums[r.state] += r.net
            void += r.voided
        return StateTotals(pending=sums[PENDING], frozen=sums[FROZEN], settled=sums[SETTLED], void=void)

    async def balance_totals(self, merchant_id: str) -> BalanceTotals:
        books = [b for (m, _), b in self.books.items() if m == merchant_id]
        return BalanceTotals(available=sum(b.available for b in books), withdrawing=sum(b.withdrawing for b in books),
                             withdrawn=sum(b.withdrawn for b in books), debt=sum(b.debt for b in books))

    async def payees(self, merchant_id: str, after_id: str, limit: int) -> list[CommissionBook]:
        rows = sorted((b for (m, bid), b in self.books.items() if m == merchant_id and bid > after_id),
                      key=lambda b: b.beneficiary_id)
        return [copy.deepcopy(b) for b in rows[:limit]]

    async def repair(self, now_ms: int) -> int:
        """Finishes every record movement under way (the fake has no clock for its age)."""
        left = [k for k, (m, _) in self.under_way.items() if m.record_id]
        for merchant_id, beneficiary_id, subject in left:
            await self.finish(merchant_id, beneficiary_id, subject)
        return len(left)


class FakeWithdrawals(VersionedStore):
    items: dict[str, Withdrawal]

    def __init__(self):
        super().__init__()
        self.leases: dict[str, int] = {}

    async def get(self, merchant_id: str, withdrawal_id: str) -> Withdrawal | None:
        await _round_trip()
        w = self.items.get(withdrawal_id)
        return copy.deepcopy(w) if w is not None and w.merchant_id == merchant_id else None

    async def by_key(self, merchant_id: str, member_id: str, key: str) -> Withdrawal | None:
        await _round_trip()
        return next((copy.deepcopy(w) for w in self.items.values() if (w.merchant_id, w.member_id,
                                                                       w.idempotency_key) == (merchant_id, member_id,
                                                                                              key)), None)

    async def add(self, withdrawal: Withdrawal) -> bool:
        await _round_trip()
        if await self.by_key(withdrawal.merchant_id, withdrawal.member_id, withdrawal.idempotency_key):
            return False
        self.items[withdrawal.id] = copy.deepcopy(withdrawal)
        return True

    async def save(self, withdrawal: Withdrawal) -> None:
        await _round_trip()
        require_version(self.items.get(withdrawal.id), withdrawal)
        self._compare_and_set(withdrawal)

    async def page(self, merchant_id, member_id, state, before_id, limit):
        rows = sorted((w for w in self.items.values() if w.merchant_id == merchant_id and w.state in SHOWN
                       and (not member_id or w.member_id == member_id) and (not state or w.state == state)
                       and (not before_id or w.id < before_id)), key=lambda w: w.id, reverse=True)
        return [copy.deepcopy(w) for w in rows[:limit]]

    async def claim(self, now_ms: int, lease_ms: int, stale_before_ms: int) -> Withdrawal | None:
        for w in sorted(self.items.values(), key=lambda w: w.id):
            work = w.state == PAYING or w.owes_booking or (w.state == HOLDING
                                                           and epoch_ms(w.created_at) < stale_before_ms)
            if work and self.leases.get(w.id, 0) < now_ms:
                self.leases[w.id] = now_ms + lease_ms
                return copy.deepcopy(w)
        return None


class FakeWithdrawalSettings:
    def __init__(self, settings: WithdrawalSettings | None = None):
        self.by_merchant: dict[str, tuple[WithdrawalSettings, int]] = {}
        self.default = settings or WithdrawalSettings()

    async def get(self, merchant_id: str) -> tuple[WithdrawalSettings, int]:
        return self.by_merchant.get(merchant_id, (self.default, 1))

    async def put(self, merchant_id: str, settings: WithdrawalSettings, expected_version: int) -> int | None:
        _, version = await self.get(merchant_id)
        if version != expected_version:
            return None
        self.by_merchant[merchant_id] = (settings, version + 1)
        return version + 1


class FakePayouts:
    """Answers each transfer with the next of `answers` (the last one again once they run
    out); remembers every request."""

    def __init__(self, *answers: Transfer):
        self.answers = list(answers) or [Transfer("SUCCEEDED", provider_transfer_id="tr-1")]
        self.calls: list[tuple[str, str, int]] = []

    async def transfer(self, merchant_id, transfer_id, member_id, amount, remark) -> Transfer:
        self.calls.append((transfer_id, member_id, amount))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class FakeStoredValueTotals:
    def __init__(self, liability: Liability | None = None):
        self.value = liability or Liability(0, 0, 0)

    async def liability(self, merchant_id: str) -> Liability:
        return self.value
