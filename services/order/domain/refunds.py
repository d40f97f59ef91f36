"""After-sales refunds: who may ask when, how many units and how much money a refund
of some lines takes, and when the shipping fee goes back with it."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Sequence

from services.order.domain.orders import OrderState


class RefundState(str, Enum):
    REQUESTED = "REQUESTED"
    REJECTED = "REJECTED"
    APPROVED = "APPROVED"  # being executed: the order took it, the money is on its way
    REFUNDED = "REFUNDED"


# A refund in these states holds its units: the order must not ship meanwhile.
OPEN = (RefundState.REQUESTED, RefundState.APPROVED)

BY_MEMBER = "MEMBER"
BY_STAFF = "STAFF"

REFUNDABLE_STATES = (OrderState.PAID, OrderState.SHIPPED, OrderState.DELIVERED, OrderState.COMPLETED)
MAX_LINES = 50


@dataclass(frozen=True)
class LineBalance:
    """An order line as far as refunds are concerned."""
    line_id: str
    sku_id: str
    quantity: int
    paid_amount: int
    refunded_quantity: int = 0
    refunded_amount: int = 0

    @property
    def units_left(self) -> int:
        return self.quantity - self.refunded_quantity

    @property
    def amount_left(self) -> int:
        return self.paid_amount - self.refunded_amount


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


def may_refund(state: OrderState, completed_at: datetime | None, after_sales_days: int, now: datetime) -> bool:
    """Paid and not completed, or completed within the after-sales window."""
    if state not in REFUNDABLE_STATES:
        return False
    if state is OrderState.COMPLETED:
        return completed_at is not None and now < completed_at + timedelta(days=after_sales_days)
    return True


class RefundMove(str, Enum):
    APPLY = "APPLY"
    REPEAT = "REPEAT"
    REFUSE = "REFUSE"


def approve(state: RefundState) -> RefundMove:
    """Approving an approved or refunded refund is a repeat: it returns the refund."""
    if state is RefundState.REQUESTED:
        return RefundMove.APPLY
    if state in (RefundState.APPROVED, RefundState.REFUNDED):
        return RefundMove.REPEAT
    return RefundMove.REFUSE


def reject(state: RefundState) -> RefundMove:
    if state is RefundState.REQUESTED:
        return RefundMove.APPLY
    return RefundMove.REPEAT if state is RefundState.REJECTED else RefundMove.REFUSE
