"""Commission records and the commission balance of a beneficiary.

A record is one commission an order owes on one line at one level (a distributor's two
levels, or the guide). The order service decides the amounts: every order event carries
the whole order with its commissions, and the member service follows them. Events come
late, twice or out of order, so a record only moves forward: its stage never goes back
(PENDING < FROZEN < SETTLED) and its voided part never shrinks.

The balance (`CommissionBook`) is what the beneficiary can withdraw. A settled record
credits amount − voided; a void after settlement debits the difference, from `available`
first and the rest as `debt` (never a negative balance, never forgiven); a later credit
pays the debt first. Every movement names its cause, applied once. What a record has
credited so far lives on the record (`CommissionRecord.credited`), so the book stays the
same size however many records it has squared: it keeps only its counters, the current
business day's withdrawals, and the movements under way (`moving`, by subject: a record,
or a withdrawal's cause), each there from its update until its record (or withdrawal)
says it is done. A movement's guard is its subject not under way plus its subject's
bucket counter (`cleared`) as read: every release bumps it, so a decision made from a
record or withdrawal read before another movement of the same subject finished loses.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

PENDING, FROZEN, SETTLED, VOID = "PENDING", "FROZEN", "SETTLED", "VOID"
STAGES = (PENDING, FROZEN, SETTLED)
RANK = {PENDING: 0, FROZEN: 1, SETTLED: 2}
STATES = (PENDING, FROZEN, SETTLED, VOID)

LEVEL_1, LEVEL_2, GUIDE = "LEVEL_1", "LEVEL_2", "GUIDE"
# The community leader (团长) of a campaign's order: a member like a distributor, the same lifecycle.
COMMUNITY_LEADER = "COMMUNITY_LEADER"
LEVELS = (LEVEL_1, LEVEL_2, GUIDE, COMMUNITY_LEADER)

# Entry kinds: what moved the balance.
SETTLE, CLAWBACK, HOLD, RETURN, PAID = "SETTLE", "CLAWBACK", "HOLD", "RETURN", "PAID"


class OrderStage(str, Enum):
    """Where the order is, as far as commission cares."""
    PAID = PENDING
    COMPLETED = FROZEN
    SETTLED = SETTLED


@dataclass(frozen=True)
class CommissionLine:
    """One commission as an order event tells it (the order service's truth)."""
    line_id: str
    level: str
    beneficiary_id: str
    rate_bp: int
    base: int
    amount: int
    voided: int


@dataclass(frozen=True)
class OrderCommissions:
    """An order event, reduced to what commission needs."""
    merchant_id: str
    order_id: str
    buyer_id: str
    stage: str  # PENDING, FROZEN or SETTLED: what the order's state means for its records
    lines: tuple[CommissionLine, ...]
    at: datetime


def record_id(order_id: str, line_id: str, level: str) -> str:
    return f"{order_id}:{line_id}:{level}"


@dataclass
class CommissionRecord:
    id: str
    merchant_id: str
    order_id: str
    line_id: str
    level: str
    beneficiary_id: str
    buyer_id: str
    rate_bp: int
    base: int
    amount: int
    voided: int
    stage: str
    created_at: datetime
    updated_at: datetime
    credited: int | None = None  # what the balance has received from it (None: never credited)

    @property
    def state(self) -> str:
        return VOID if self.amount > 0 and self.voided >= self.amount or self.amount == 0 else self.stage

    @property
    def net(self) -> int:
        return self.amount - self.voided

    @property
    def credit_due(self) -> int:
        """What the beneficiary's balance should have received from this record by now."""
        return self.net if self.stage == SETTLED else 0


def stage_of(state: str) -> str | None:
    """An order state's stage, by the order service's names (PAID…COMPLETED). A paid order
    cancelled because its units were gone carries every commission voided: its records end VOID."""
    return {"PAID": PENDING, "SHIPPED": PENDING, "DELIVERED": PENDING, "CANCELLED": PENDING,
            "COMPLETED": FROZEN}.get(state)


def merged(current: CommissionRecord | None, event: OrderCommissions, line: CommissionLine) -> CommissionRecord | None:
    """The record after the event: created from it, or moved forward by it; None when the
    event changes nothing."""
    voided = max(0, min(line.voided, line.amount))
    if current is None:
        return CommissionRecord(
            id=record_id(event.order_id, line.line_id, line.level), merchant_id=event.merchant_id,
            order_id=event.order_id, line_id=line.line_id, level=line.level, beneficiary_id=line.beneficiary_id,
            buyer_id=event.buyer_id, rate_bp=line.rate_bp, base=line.base, amount=line.amount, voided=voided,
            stage=event.stage, created_at=event.at, updated_at=event.at)
    stage = current.stage if RANK[current.stage] >= RANK[event.stage] else event.stage
    voided = min(max(current.voided, voided), current.amount)
    if stage == current.stage and voided == current.voided:
        return None
    return CommissionRecord(**{**current.__dict__, "stage": stage, "voided": voided, "updated_at": event.at})


# ---- the balance ---------------------------------------------------------------------------------

BUCKETS = 32  # the release counters: a bounded map, few enough races between subjects


def bucket_of(subject: str) -> str:
    """The release counter a subject's guard reads (stable across processes)."""
    return str(zlib.crc32(subject.encode()) % BUCKETS)


@dataclass(frozen=True)
class Movement:
    """One change of a beneficiary's balance, applied once by its cause.

    Guards: its subject (the record, or the withdrawal's cause) has no movement under way
    and its bucket's release counter is `cleared_was` as read; the balance holds at least
    what it takes; and, when the split between available and debt depends on them,
    `available`/`debt` are exactly as read. A record movement also carries the record's
    credited value before (`credited_was`, None: never credited) and after."""
    cause: str
    kind: str
    beneficiary_id: str
    available: int = 0
    debt: int = 0
    withdrawing: int = 0
    withdrawn: int = 0
    record_id: str = ""
    credited_was: int | None = None
    credited_now: int | None = None
    withdrawal_id: str = ""
    exact_available: int | None = None
    exact_debt: int | None = None
    cleared_was: int | None = None  # the subject's bucket counter as read (None: never bumped)
    day: str = ""  # a withdrawal's business day: its counter moves by the amount
    day_limit: int = 0
    day_used: int | None = None  # the day's counter as read (None: none that day yet): picks the guard's form

    @property
    def subject(self) -> str:
        return self.record_id or self.cause

    @property
    def bucket(self) -> str:
        return bucket_of(self.subject)


@dataclass
class CommissionBook:
    merchant_id: str
    beneficiary_id: str
    available: int = 0
    withdrawing: int = 0
    withdrawn: int = 0
    debt: int = 0
    moving: dict[str, str] = field(default_factory=dict)  # subject → cause, while under way
    cleared: dict[str, int] = field(default_factory=dict)  # bucket → releases
    days: dict[str, int] = field(default_factory=dict)  # the current business day only


@dataclass(frozen=True)
class CommissionEntry:
    id: str
    beneficiary_id: str
    cause: str
    kind: str
    available: int
    debt: int
    withdrawing: int
    withdrawn: int
    record_id: str
    withdrawal_id: str
    created_at: datetime


def _credit(book: CommissionBook, amount: int) -> tuple[int, int, int | None]:
    """(available, debt, exact debt) deltas of a credit: the debt is paid first."""
    if book.debt == 0:
        return amount, 0, 0
    paid = min(book.debt, amount)
    return amount - paid, -paid, book.debt


def _debit(book: CommissionBook, amount: int) -> tuple[int, int, int | None]:
    """(available, debt, exact available) deltas of a clawback: from available first, the
    rest becomes debt."""
    if book.available >= amount:
        return -amount, 0, None
    return -book.available, amount - book.available, book.available


def record_movement(book: CommissionBook, record: CommissionRecord) -> Movement | None:
    """What the balance owes the record now; None when it is square."""
    due = record.credit_due
    had = record.credited
    if had is None and due == 0:
        return None
    if had is not None and due >= had:
        # Once credited, a record is only ever owed less (voided only grows): a record read
        # before a later void was applied must not give the clawback back.
        return None
    delta = due - (had or 0)
    if had is None:
        cause, kind = f"settle:{record.id}", SETTLE
    else:
        cause, kind = f"void:{record.id}:{record.voided}", CLAWBACK
    common = dict(cause=cause, kind=kind, beneficiary_id=record.beneficiary_id, record_id=record.id,
                  credited_was=had, credited_now=due, cleared_was=book.cleared.get(bucket_of(record.id)))
    if delta >= 0:
        available, debt, exact_debt = _credit(book, delta)
        return Movement(available=available, debt=debt, exact_debt=exact_debt, **common)
    available, debt, exact_available = _debit(book, -delta)
    return Movement(available=available, debt=debt, exact_available=exact_available, **common)


def hold_movement(book: CommissionBook, withdrawal_id: str, amount: int, day: str, day_limit: int) -> Movement:
    cause = f"hold:{withdrawal_id}"
    if any(d > day for d in book.days):
        day = ""  # a hold a crash left from a day already over: today's counter is not its
    return Movement(cause=cause, kind=HOLD, beneficiary_id=book.beneficiary_id,
                    available=-amount, withdrawing=amount, withdrawal_id=withdrawal_id, day=day, day_limit=day_limit,
                    day_used=book.days.get(day) if day else None, cleared_was=book.cleared.get(bucket_of(cause)))


def return_movement(book: CommissionBook, withdrawal_id: str, amount: int) -> Movement:
    cause = f"return:{withdrawal_id}"
    available, debt, exact_debt = _credit(book, amount)
    return Movement(cause=cause, kind=RETURN, beneficiary_id=book.beneficiary_id,
                    available=available, debt=debt, exact_debt=exact_debt, withdrawing=-amount,
                    withdrawal_id=withdrawal_id, cleared_was=book.cleared.get(bucket_of(cause)))


def paid_movement(book: CommissionBook, withdrawal_id: str, amount: int) -> Movement:
    cause = f"paid:{withdrawal_id}"
    return Movement(cause=cause, kind=PAID, beneficiary_id=book.beneficiary_id,
                    withdrawing=-amount, withdrawn=amount, withdrawal_id=withdrawal_id,
                    cleared_was=book.cleared.get(bucket_of(cause)))


def applies(book: CommissionBook, m: Movement) -> bool:
    """Whether the movement's guards hold on the book (what the store's filter checks)."""
    if m.subject in book.moving or book.cleared.get(m.bucket) != m.cleared_was:
        return False
    if m.exact_available is not None and book.available != m.exact_available:
        return False
    if m.exact_debt is not None and book.debt != m.exact_debt:
        return False
    for have, delta in ((book.available, m.available), (book.debt, m.debt), (book.withdrawing, m.withdrawing)):
        if delta < 0 and have < -delta:
            return False
    if m.day:
        used = book.days.get(m.day)
        if (used is None) != (m.day_used is None) or (used or 0) + m.withdrawing > m.day_limit:
            return False
    return True


def apply(book: CommissionBook, m: Movement) -> None:
    """The movement on the book in memory (fakes and tests; the store does the same in one
    update): the counters, the day (a new day replaces the old one), the subject under way."""
    book.available += m.available
    book.debt += m.debt
    book.withdrawing += m.withdrawing
    book.withdrawn += m.withdrawn
    if m.day:
        book.days = {m.day: m.withdrawing} if m.day_used is None else {**book.days, m.day: book.days.get(m.day, 0) + m.withdrawing}
    book.moving[m.subject] = m.cause


def release(book: CommissionBook, subject: str, cause: str) -> bool:
    """The subject's movement of that cause is done for good (its record or withdrawal says so)."""
    if book.moving.get(subject) != cause:
        return False
    del book.moving[subject]
    b = bucket_of(subject)
    book.cleared[b] = book.cleared.get(b, 0) + 1
    return True


def entry_for(m: Movement, entry_id: str, at: datetime) -> CommissionEntry:
    return CommissionEntry(id=entry_id, beneficiary_id=m.beneficiary_id, cause=m.cause, kind=m.kind,
                           available=m.available, debt=m.debt, withdrawing=m.withdrawing, withdrawn=m.withdrawn,
                           record_id=m.record_id, withdrawal_id=m.withdrawal_id, created_at=at)


def mask(member_id: str) -> str:
    """A buyer as a distributor may see them: the id's ends only."""
    if len(member_id) <= 10:
        return "***"
    return f"{member_id[:6]}***{member_id[-4:]}"
