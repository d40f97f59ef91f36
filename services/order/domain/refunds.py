"""After-sales refunds: the Refund aggregate and its states, who may ask when, how many
units and how much money a refund of some lines takes, and when the shipping fee goes
back with it."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Sequence

from siyu_kit.aggregate import Aggregate, Move, StateMachine
from siyu_kit.errors import FailedPrecondition, FieldViolation

from services.order.domain.orders import AppliedRefund, OrderState, RefundableAmounts, RefundedUnits


class RefundState(str, Enum):
    REQUESTED = "REQUESTED"
    REJECTED = "REJECTED"
    APPROVED = "APPROVED"  # being executed: the order took it, the money is on its way
    REFUNDED = "REFUNDED"


# REQUESTED → APPROVED (being executed) → REFUNDED; a request may be rejected, and an
# approved refund is rejected when another refund took what it asked for meanwhile.
MACHINE: StateMachine[RefundState] = StateMachine("refund", {
    RefundState.REQUESTED: {RefundState.APPROVED, RefundState.REJECTED},
    RefundState.APPROVED: {RefundState.REFUNDED, RefundState.REJECTED},
    RefundState.REJECTED: set(),
    RefundState.REFUNDED: set(),
}, refused_reason="STATUS_TRANSITION")

NOT_APPROVABLE = "REFUND_NOT_APPROVABLE"
NOT_REJECTABLE = "REFUND_NOT_REJECTABLE"
EXCEEDS_REMAINING = "REFUND_EXCEEDS_REMAINING"
NO_LONGER_FITS = "the order no longer has these units or this amount to refund"

# A refund in these states holds its units: the order must not ship meanwhile.
OPEN = (RefundState.REQUESTED, RefundState.APPROVED)

class ProviderStatus(str, Enum):
    """What the payment provider says of the money a refund sends back. Our refund's own
    state does not wait for it: the money is committed once the provider accepted the
    refund (REFUNDED, with the order's accounting). WeChat answers PROCESSING, then
    (by notification or query) SUCCEEDED, ABNORMAL (the payer's account cannot take it:
    staff must act) or CLOSED. "" on refunds that moved no money."""
    PROCESSING = "PROCESSING"
    SUCCEEDED = "SUCCEEDED"
    ABNORMAL = "ABNORMAL"
    CLOSED = "CLOSED"


# Where the provider's status may go: ABNORMAL may still end SUCCEEDED (the merchant
# re-sends it to another account) or CLOSED.
PROVIDER_MOVES = {
    ProviderStatus.PROCESSING: {ProviderStatus.SUCCEEDED, ProviderStatus.ABNORMAL, ProviderStatus.CLOSED},
    ProviderStatus.ABNORMAL: {ProviderStatus.SUCCEEDED, ProviderStatus.CLOSED},
    ProviderStatus.SUCCEEDED: set(),
    ProviderStatus.CLOSED: set(),
}
# WeChat's refund status (and REFUND.* event) words → ours.
WECHAT_REFUND_STATUS = {"PROCESSING": ProviderStatus.PROCESSING, "SUCCESS": ProviderStatus.SUCCEEDED,
                        "ABNORMAL": ProviderStatus.ABNORMAL, "CLOSED": ProviderStatus.CLOSED}
# A PROCESSING refund is asked about again this often while young, then every
# PROVIDER_QUERY_SLOW, and no more after PROVIDER_QUERY_UNTIL (its notification or staff
# take over).
PROVIDER_QUERY_SLOW = timedelta(minutes=10)
PROVIDER_QUERY_FAST_FOR = timedelta(minutes=10)
PROVIDER_QUERY_UNTIL = timedelta(days=3)

# How long a caller that took a refund to call the provider is left to finish before
# another takes it over (asking the provider first, then refunding under the same key).
PROVIDER_CALL_LEASE_MS = 30_000

BY_MEMBER = "MEMBER"
BY_STAFF = "STAFF"
# Who may refund a completed order after its after-sales window (never a member, never
# an OPERATOR: the money of a settled order went to suppliers and distributors).
AFTER_WINDOW_ROLES = frozenset({"OWNER", "FINANCE"})
AFTER_WINDOW_NOT_ALLOWED = "AFTER_WINDOW_REFUND_NOT_ALLOWED"

REFUNDABLE_STATES = (OrderState.PAID, OrderState.SHIPPED, OrderState.DELIVERED, OrderState.COMPLETED)
MAX_LINES = 50


@dataclass(frozen=True)
class LineBalance(RefundableAmounts):
    """An order line as far as refunds are concerned."""
    line_id: str
    sku_id: str
    quantity: int
    paid_amount: int
    refunded_quantity: int = 0
    refunded_amount: int = 0


@dataclass(frozen=True)
class LineRequest:
    line_id: str
    quantity: int
    amount: int | None = None  # None: the units' share of what was paid


@dataclass(frozen=True)
class RefundedLine:
    line_id: str
    sku_id: str
    quantity: int
    amount: int


@dataclass(frozen=True)
class Plan:
    lines: tuple[RefundedLine, ...]
    # (field, description) of every request line that does not fit the order
    problems: tuple[tuple[str, str], ...]

    @property
    def amount(self) -> int:
        return sum(line.amount for line in self.lines)


def share(line: LineBalance, quantity: int) -> int:
    """The default amount of `quantity` units: the last units take whatever is left, so
    a line refunded in parts returns exactly what was paid for it; earlier parts take
    the floor of their share, never more than is left."""
    if quantity >= line.units_left:
        return line.amount_left
    return min(line.paid_amount * quantity // line.quantity, line.amount_left)


def plan(lines: Sequence[LineBalance], requests: Sequence[LineRequest]) -> Plan:
    by_id = {line.line_id: line for line in lines}
    problems: list[tuple[str, str]] = []
    planned: list[RefundedLine] = []
    if not 1 <= len(requests) <= MAX_LINES:
        problems.append(("lines", f"1..{MAX_LINES} lines"))
    seen: dict[str, int] = {}
    for i, req in enumerate(requests):
        field = f"lines[{i}]"
        line = by_id.get(req.line_id)
        if line is None:
            problems.append((f"{field}.line_id", "not a line of this order"))
            continue
        if req.line_id in seen:
            problems.append((f"{field}.line_id", f"the same line as lines[{seen[req.line_id]}]"))
            continue
        seen[req.line_id] = i
        if not 1 <= req.quantity <= line.units_left:
            problems.append((f"{field}.quantity", f"1..{line.units_left} (units not yet refunded)"))
            continue
        if req.amount is None:
            amount = share(line, req.quantity)
        elif 1 <= req.amount <= line.amount_left:
            amount = req.amount
        else:
            problems.append((f"{field}.amount", f"1..{line.amount_left} (amount not yet refunded)"))
            continue
        planned.append(RefundedLine(line.line_id, line.sku_id, req.quantity, amount))
    return Plan(tuple(planned) if not problems else (), tuple(problems))


def after(lines: Sequence[LineBalance], refunded: Sequence[RefundedLine]) -> list[LineBalance]:
    """The lines once `refunded` is applied."""
    by_id = {r.line_id: r for r in refunded}
    return [replace(line, refunded_quantity=line.refunded_quantity + by_id[line.line_id].quantity,
                    refunded_amount=line.refunded_amount + by_id[line.line_id].amount)
            if line.line_id in by_id else line for line in lines]


def shipping_fee_refund(never_shipped: bool, lines_after: Sequence[LineBalance], shipping_fee: int,
                        shipping_fee_refunded: int) -> int:
    """The shipping fee goes back with the refund that leaves nothing to ship."""
    if never_shipped and all(line.units_left == 0 for line in lines_after):
        return shipping_fee - shipping_fee_refunded
    return 0


def may_refund(state: OrderState, completed_at: datetime | None, after_sales_days: int, now: datetime,
               after_window: bool = False) -> bool:
    """Paid and not completed, or completed within the after-sales window; with
    `after_window` (OWNER or FINANCE: a complaint, a chargeback) also a completed order
    whose window closed, settled or not."""
    if state not in REFUNDABLE_STATES:
        return False
    if state is OrderState.COMPLETED and not after_window:
        return completed_at is not None and now < completed_at + timedelta(days=after_sales_days)
    return True


# What approving or rejecting means in the refund's state.
RefundMove = Move


def approve(state: RefundState) -> Move:
    """Approving an approved or refunded refund is a repeat: it returns the refund."""
    if state is RefundState.REFUNDED:
        return Move.REPEAT
    return MACHINE.decide(state, RefundState.APPROVED)


def reject(state: RefundState) -> Move:
    return MACHINE.decide(state, RefundState.REJECTED) if state is not RefundState.APPROVED else Move.REFUSE


def take(lines: Sequence[LineBalance], requests: Sequence[LineRequest], *, never_shipped: bool,
         shipping_fee: int, shipping_fee_refunded: int) -> tuple[AppliedRefund | None, tuple[tuple[str, str], ...]]:
    """What the order takes for a refund, planned against the lines as they are now;
    or the problems when they no longer hold what the refund asked for."""
    planned = plan(lines, requests)
    if planned.problems:
        return None, planned.problems
    shipping_back = shipping_fee_refund(never_shipped, after(lines, planned.lines), shipping_fee,
                                        shipping_fee_refunded)
    return AppliedRefund(amount=planned.amount + shipping_back, shipping_fee_refund=shipping_back,
                         restock=never_shipped,
                         lines=tuple(RefundedUnits(l.line_id, l.sku_id, l.quantity, l.amount) for l in planned.lines)), ()


@dataclass(frozen=True)
class RefundLine:
    """A line of a refund. Amounts are estimates until the order takes the refund."""
    line_id: str
    sku_id: str
    quantity: int
    amount: int
    explicit: bool = False  # the amount was asked for, not worked out
    restocked: bool = False


@dataclass
class Refund(Aggregate):
    """An after-sales refund of some units of an order's lines. The order carries the
    refund's event (order.refunded), so a refund records none of its own."""
    id: str
    merchant_id: str
    version: int
    order_id: str
    member_id: str
    requested_by: str  # BY_MEMBER / BY_STAFF
    idempotency_key: str
    state: RefundState
    lines: tuple[RefundLine, ...]
    amount: int
    currency: str
    created_at: datetime
    shipping_fee_refund: int = 0
    reason: str = ""
    note: str = ""
    approved_ms: int | None = None  # when execution started: the job finishes refunds left APPROVED
    refunded_at: datetime | None = None
    provider_refund_id: str = ""
    # The fingerprint of the request that opened it (domain.idempotency); "" on older ones.
    request_hash: str = ""
    # What the payment provider says of the money (ProviderStatus value; "" when none moved).
    provider_status: str = ""
    # When to ask the provider about a PROCESSING refund (epoch ms); 0: never.
    provider_query_ms: int = 0
    # When a caller took the refund to call the provider (epoch ms; 0: nobody yet). A second
    # caller that finds it taken asks the provider by the refund id instead of refunding.
    provider_call_ms: int = 0
    # What the next save writes besides the state: the repository reads it.
    changed: set[str] = field(default_factory=set, repr=False, compare=False)

    @classmethod
    def open(cls, refund_id: str, *, merchant_id: str, order_id: str, member_id: str, requested_by: str,
             idempotency_key: str, planned: Plan, explicit: frozenset[str], currency: str, reason: str,
             now: datetime, request_hash: str = "") -> "Refund":
        """A member's request (REQUESTED), or a refund staff start, which is executed at
        once (APPROVED)."""
        by_staff = requested_by == BY_STAFF
        return cls(id=refund_id, merchant_id=merchant_id, version=1, order_id=order_id, member_id=member_id,
                   requested_by=requested_by, idempotency_key=idempotency_key,
                   state=RefundState.APPROVED if by_staff else RefundState.REQUESTED,
                   lines=tuple(RefundLine(l.line_id, l.sku_id, l.quantity, l.amount, l.line_id in explicit)
                               for l in planned.lines),
                   amount=planned.amount, currency=currency, reason=reason, created_at=now,
                   approved_ms=_epoch_ms(now) if by_staff else None, request_hash=request_hash)

    def requests(self) -> list[LineRequest]:
        """What the refund asked for; a default amount is worked out again when the order
        takes the refund, against what is left then."""
        return [LineRequest(l.line_id, l.quantity, l.amount if l.explicit else None) for l in self.lines]

    def approve(self, now: datetime) -> Move:
        """APPLY: the refund is now APPROVED and is to be executed. REPEAT: approved or
        refunded already (an approved one is finished by executing it again)."""
        move = approve(self.state)
        if move is Move.REFUSE:
            raise FailedPrecondition(f"a {self.state.value} refund cannot be approved", reason=NOT_APPROVABLE)
        if move is Move.APPLY:
            self.state = RefundState.APPROVED
            self.approved_ms = _epoch_ms(now)
            self.changed |= {"state", "approved_ms"}
        return move

    def reject(self, note: str) -> Move:
        move = reject(self.state)
        if move is Move.REFUSE:
            raise FailedPrecondition(f"a {self.state.value} refund cannot be rejected", reason=NOT_REJECTABLE)
        if move is Move.APPLY:
            self.state = RefundState.REJECTED
            self.note = note
            self.changed |= {"state", "note"}
        return move

    def no_longer_fits(self) -> None:
        """Another refund took what this approved one asked for: it is rejected."""
        MACHINE.require(self.state, RefundState.REJECTED)
        self.state = RefundState.REJECTED
        self.note = NO_LONGER_FITS
        self.changed |= {"state", "note"}

    def call_provider(self, now: datetime) -> None:
        """Takes the approved refund to call the provider (the compare-and-set the save
        makes on the version is the check): the caller that wins calls, any other asks."""
        if self.state is not RefundState.APPROVED:
            raise FailedPrecondition(f"a {self.state.value} refund is not sent to the provider",
                                     reason="STATUS_TRANSITION")
        self.provider_call_ms = _epoch_ms(now)
        self.changed |= {"provider_call_ms"}

    def provider_call_fresh(self, now: datetime) -> bool:
        """Another caller took the refund to call the provider less than
        PROVIDER_CALL_LEASE ago: it is still on its way."""
        return 0 < self.provider_call_ms and _epoch_ms(now) - self.provider_call_ms < PROVIDER_CALL_LEASE_MS

    def finish(self, applied: AppliedRefund, provider_refund_id: str, now: datetime, provider_status: str = "",
               query_after: timedelta = timedelta(seconds=30)) -> None:
        """The order took the refund and the provider accepted to send the money back:
        REFUNDED, with the final amounts of its lines. A PROCESSING provider status is
        asked about after `query_after`."""
        MACHINE.require(self.state, RefundState.REFUNDED)
        self.state = RefundState.REFUNDED
        self.refunded_at = now
        self.provider_refund_id = provider_refund_id
        self.provider_status = provider_status
        self.provider_query_ms = _epoch_ms(now + query_after) if provider_status == ProviderStatus.PROCESSING else 0
        self.show(applied)
        self.changed |= {"state", "refunded_at", "provider_refund_id", "amount", "shipping_fee_refund", "lines",
                         "provider_status", "provider_query_ms"}

    def provider_says(self, status: ProviderStatus) -> bool:
        """The provider's word on the money (a notification or a query): True when it moves
        the provider status on; a repeat, or a word that would move it back, changes nothing."""
        current = ProviderStatus(self.provider_status) if self.provider_status in ProviderStatus.__members__ \
            else None
        if current is None or status not in PROVIDER_MOVES[current]:
            return False
        self.provider_status = status.value
        if status is not ProviderStatus.PROCESSING:
            self.provider_query_ms = 0  # only PROCESSING is asked about; ABNORMAL waits for staff
        self.changed |= {"provider_status", "provider_query_ms"}
        return True

    def queried(self, now: datetime, query_after: timedelta) -> int:
        """The job takes the refund to ask the provider: it asks again later (soon while
        the refund is young), or never once it is old. Returns the query time it read
        (the compare-and-set the repository makes on it)."""
        seen = self.provider_query_ms
        age = now - (self.refunded_at or now)
        if age >= PROVIDER_QUERY_UNTIL:
            self.provider_query_ms = 0
        else:
            self.provider_query_ms = _epoch_ms(now + (query_after if age < PROVIDER_QUERY_FAST_FOR
                                                      else PROVIDER_QUERY_SLOW))
        return seen

    def show(self, applied: AppliedRefund) -> None:
        """The refund with the final amounts the order took."""
        explicit = {l.line_id: l.explicit for l in self.lines}
        self.amount = applied.amount
        self.shipping_fee_refund = applied.shipping_fee_refund
        self.lines = tuple(RefundLine(l.line_id, l.sku_id, l.quantity, l.amount, explicit.get(l.line_id, False),
                                      applied.restock) for l in applied.lines)


def no_longer_fits(problems: Sequence[tuple[str, str]]) -> FailedPrecondition:
    return FailedPrecondition(NO_LONGER_FITS, reason=EXCEEDS_REMAINING,
                              violations=[FieldViolation(f, d) for f, d in problems])


def _epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)
