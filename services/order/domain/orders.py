"""The order aggregate and its state machine: cancelling and paying, fulfilment, refunds
taken, and when receipt is confirmed automatically."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Protocol, Sequence

from siyu_kit.aggregate import Aggregate, Move, StateMachine
from siyu_kit.errors import FailedPrecondition

from services.order.domain.commissions import Commission, Referral, after_refunds, all_voided, commissions_at_paid
from services.order.domain.freight import ShippingAddress
from services.order.domain.tender import StoredValue
from services.order.domain.member_value import UsedValue

DAY_MS = 24 * 3600 * 1000


class OrderState(str, Enum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    # A paid group-buy order waiting for its group: not shippable, not cancellable by the
    # member; PAID when the group forms, CANCELLED (refunded whole) when it cannot.
    GROUPING = "GROUPING"


TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    OrderState.PENDING_PAYMENT: frozenset({OrderState.PAID, OrderState.GROUPING, OrderState.CANCELLED}),
    OrderState.GROUPING: frozenset({OrderState.PAID, OrderState.CANCELLED}),
    OrderState.PAID: frozenset({OrderState.SHIPPED}),
    # Receipt may be confirmed before the carrier reports delivery.
    OrderState.SHIPPED: frozenset({OrderState.DELIVERED, OrderState.COMPLETED}),
    OrderState.DELIVERED: frozenset({OrderState.COMPLETED}),
    OrderState.COMPLETED: frozenset(),
    OrderState.CANCELLED: frozenset(),
}

CANCEL_BY_MEMBER = "MEMBER"
CANCEL_BY_TIMEOUT = "TIMEOUT"
# Staff (OPERATOR) cancelled an unpaid order.
CANCEL_BY_STAFF = "STAFF"
# A paid order whose units were gone when its payment reached the catalog: the system
# cancels it and refunds the payment. Never a member's choice.
CANCEL_STOCK_UNAVAILABLE = "STOCK_UNAVAILABLE"
NOT_PAYABLE = "ORDER_NOT_PAYABLE"
# A paid group-buy order whose group filled, or closed, before its payment took a slot;
# and the orders of a group that expired without enough members. Refunded whole.
CANCEL_GROUP_FULL = "GROUP_FULL"
CANCEL_GROUP_CLOSED = "GROUP_CLOSED"
CANCEL_GROUP_FAILED = "GROUP_FAILED"
GROUP_CANCEL_REASONS = frozenset({CANCEL_GROUP_FULL, CANCEL_GROUP_CLOSED, CANCEL_GROUP_FAILED})
# Cancellations of a paid order: its whole payment went back.
REFUNDED_CANCEL_REASONS = GROUP_CANCEL_REASONS | {CANCEL_STOCK_UNAVAILABLE}
GROUP_BUY = "GROUP_BUY"
CONFIRMED_BY_MEMBER = "MEMBER"
CONFIRMED_BY_AUTO = "AUTO"


def can_transition(source: OrderState, target: OrderState) -> bool:
    return target in TRANSITIONS[source]


# The catalog holds an order's stock a little longer than the order waits for payment: a
# payment accepted just before the order expires must still find its stock when order.paid
# reaches the catalog. An order that expires releases its stock at once (order.cancelled);
# at the reservation's own expiry the catalog asks the order service what to do
# (`reservation_verdict`), so it never releases the stock of a paid order.
DEFAULT_RESERVATION_GRACE = timedelta(seconds=60)


def reservation_expiry(order_expires_at: datetime, grace: timedelta = DEFAULT_RESERVATION_GRACE) -> datetime:
    return order_expires_at + grace


def is_expired(expires_at: datetime, now: datetime) -> bool:
    return now >= expires_at


def is_payable(state: OrderState, expires_at: datetime, now: datetime) -> bool:
    return state is OrderState.PENDING_PAYMENT and not is_expired(expires_at, now)


class CancelDecision(str, Enum):
    CANCEL = "CANCEL"
    ALREADY_CANCELLED = "ALREADY_CANCELLED"  # a repeat: nothing changes
    TOO_LATE = "TOO_LATE"  # paid or beyond


def member_cancel(state: OrderState) -> CancelDecision:
    if state is OrderState.CANCELLED:
        return CancelDecision.ALREADY_CANCELLED
    if state is OrderState.GROUPING:  # paid: only its group's outcome cancels it
        return CancelDecision.TOO_LATE
    if can_transition(state, OrderState.CANCELLED):
        return CancelDecision.CANCEL
    return CancelDecision.TOO_LATE


def decide(state: OrderState, target: OrderState) -> Move:
    """What a request to move an order to a state means in the state it is in."""
    return MACHINE.decide(state, target)


def auto_confirm_ms(shipped_ms: int, auto_confirm_days: int) -> int:
    return shipped_ms + auto_confirm_days * DAY_MS


def is_shippable(units_left: int, open_refunds: int) -> bool:
    """Something is left to ship, and no refund is waiting or under way (its units
    would otherwise leave the warehouse while they are being refunded)."""
    return units_left > 0 and open_refunds == 0


class ReservationVerdict(str, Enum):
    """What the catalog may do with an expired reservation made for an order."""
    COMMIT = "COMMIT"  # the order is paid or beyond: the units are sold
    RELEASE = "RELEASE"  # cancelled, or never written: the units go back
    KEEP = "KEEP"  # still waiting for payment: the order's own expiry releases them


def reservation_verdict(state: OrderState | None, owns_reservation: bool) -> ReservationVerdict:
    """Only the order decides. An order that was never written (None), or that was written
    with another reservation, does not hold this one; a payment that still comes for it
    is re-held or refunded by the catalog and the order service."""
    if state is None or not owns_reservation or state is OrderState.CANCELLED:
        return ReservationVerdict.RELEASE
    if state in (OrderState.PENDING_PAYMENT, OrderState.GROUPING):
        # GROUPING: paid but not sold until the group forms (order.paid commits it) or
        # fails (order.cancelled releases it).
        return ReservationVerdict.KEEP
    return ReservationVerdict.COMMIT


def stock_unavailable_cancel(state: OrderState) -> Move:
    """The system-only PAID → CANCELLED move of a paid order whose units were gone. A
    shipped order is refused: its units left the warehouse, so a person must look."""
    if state is OrderState.CANCELLED:
        return Move.REPEAT
    return Move.APPLY if state is OrderState.PAID else Move.REFUSE


# ---- the aggregate -----------------------------------------------------------------

MACHINE: StateMachine[OrderState] = StateMachine("order", TRANSITIONS, refused_reason="STATUS_TRANSITION")

NOT_CANCELLABLE = "ORDER_NOT_CANCELLABLE"
NOT_SHIPPABLE = "ORDER_NOT_SHIPPABLE"
NOT_SHIPPED = "ORDER_NOT_SHIPPED"
NOT_REFUNDABLE = "ORDER_NOT_REFUNDABLE"
REFUND_OPEN = "REFUND_OPEN"
NOTHING_TO_SHIP = "NOTHING_TO_SHIP"


@dataclass(frozen=True)
class PriceStep:
    """One step of the price an order line or the order went through, as it was charged."""
    step: str
    amount: int
    detail: str = ""


class RefundableAmounts:
    """What is left of a line after its refunds, in units and in money; for any dataclass
    with quantity, paid_amount, refunded_quantity and refunded_amount."""
    quantity: int
    paid_amount: int
    refunded_quantity: int
    refunded_amount: int

    @property
    def units_left(self) -> int:
        return self.quantity - self.refunded_quantity

    @property
    def amount_left(self) -> int:
        return self.paid_amount - self.refunded_amount


@dataclass(frozen=True)
class OrderLine(RefundableAmounts):
    line_id: str
    sku_id: str
    product_id: str
    title: str
    quantity: int
    unit_price: int
    line_total: int
    line_amount: int
    paid_amount: int
    steps: tuple[PriceStep, ...] = ()
    refunded_quantity: int = 0
    refunded_amount: int = 0
    # Earns commission: its product was not excluded from distribution when it was placed.
    commission_eligible: bool = True

    def step_amount(self, step: str) -> int:
        """This line's share of one step (COUPON, POINTS, …), 0 when it took none."""
        return sum(s.amount for s in self.steps if s.step == step)


@dataclass(frozen=True)
class OrderActivity:
    """The activity an order was bought through besides a flash sale, fixed at placement:
    its kind (GROUP_BUY, BARGAIN, POINTS_MALL, COMMUNITY), the activity, and what ties the
    order to it (the group, the bargain, the leader and pickup point, the points price)."""
    kind: str
    activity_id: str
    group_id: str = ""
    group_leader: bool = False
    bargain_id: str = ""
    leader_id: str = ""
    pickup_point_id: str = ""
    pickup_code: str = ""
    points_price: int = 0


@dataclass(frozen=True)
class Shipment:
    carrier: str
    tracking_number: str
    shipped_ms: int


@dataclass(frozen=True)
class RefundedUnits:
    """Units and money of one line that a refund took."""
    line_id: str
    sku_id: str
    quantity: int
    amount: int


@dataclass(frozen=True)
class AppliedRefund:
    """A refund as the order took it: what it returns (with the shipping fee, if that
    went back too), whether its units go back to stock, and per line what it took."""
    amount: int
    shipping_fee_refund: int
    restock: bool
    lines: tuple[RefundedUnits, ...]


class LineRefunded(Protocol):
    """A line's refunded totals after a refund (the refund rules compute them)."""
    line_id: str
    refunded_quantity: int
    refunded_amount: int


# Domain events: what a change of an order tells the rest of the system. `at` is when
# it happened.

@dataclass(frozen=True)
class OrderPlaced:
    at: datetime


@dataclass(frozen=True)
class OrderPaid:
    at: datetime
    payment_id: str
    # The payment as the paying side describes it (carried in the event as it is).
    payment: Any = None
    # A group-buy order whose group formed: paid earlier (OrderGrouping), so its own
    # expiry no longer matters.
    from_group: bool = False


@dataclass(frozen=True)
class OrderGrouping:
    """A group-buy order was paid and waits for its group (no order.paid yet)."""
    at: datetime
    payment_id: str
    payment: Any = None


@dataclass(frozen=True)
class OrderCancelled:
    at: datetime
    reason: str


@dataclass(frozen=True)
class OrderShipped:
    at: datetime


@dataclass(frozen=True)
class OrderDelivered:
    at: datetime


@dataclass(frozen=True)
class OrderCompleted:
    at: datetime
    confirmed_by: str


@dataclass(frozen=True)
class OrderRefunded:
    at: datetime
    refund_id: str
    # The refund as the refunding side shows it, with the amounts the order applied.
    refund: Any = None


@dataclass(frozen=True)
class OrderSettled:
    """The after-sales window closed: the order is settled (its payment split follows)."""
    at: datetime


@dataclass
class Order(Aggregate):
    """A member's order: what was bought at which price, and where it is between placing
    and completion. Every move is a method that checks the rule and records its event."""
    id: str
    merchant_id: str
    member_id: str
    idempotency_key: str
    state: OrderState
    lines: tuple[OrderLine, ...]
    currency: str
    total: int
    payable: int
    reservation_id: str
    created_at: datetime
    expires_at: datetime
    version: int = 1
    order_steps: tuple[PriceStep, ...] = ()
    shipping_fee: int = 0
    tier: str = ""
    # channel, persona_id, content_id, live_session_id, share_code (only those given)
    attribution: dict[str, str] = field(default_factory=dict)
    remark: str = ""
    flash_sale_id: str = ""
    paid_at: datetime | None = None
    payment_id: str = ""
    cancelled_at: datetime | None = None
    cancel_reason: str = ""
    shipment: Shipment | None = None
    auto_confirm_ms: int = 0
    delivered_at: datetime | None = None
    completed_at: datetime | None = None
    confirmed_by: str = ""
    refunded_amount: int = 0
    applied_refunds: dict[str, AppliedRefund] = field(default_factory=dict)
    # The fingerprint of the request that placed it (domain.idempotency); "" on orders
    # placed before fingerprints were kept.
    request_hash: str = ""
    # Where it ships, as it was when placed; None for an order placed without an address.
    shipping_address: ShippingAddress | None = None
    # Which shipping rule set shipping_fee.
    shipping_rule: str = ""
    # ---- stored value: the order's kind (goods or a recharge), its tender and balance hold
    stored_value: StoredValue = field(default_factory=StoredValue)
    # The coupon and points the order holds or used (domain.member_value); None: neither.
    value: UsedValue | None = None
    # Who the sale is credited to, fixed at placement (None: nobody), and the commissions
    # owed: set when it is paid, voided as its lines are refunded.
    referral: Referral | None = None
    commissions: tuple[Commission, ...] = ()
    # When the after-sales window closed and the order was settled; None before.
    settled_at: datetime | None = None
    # The group buy, bargain, points-mall item or community campaign it was bought through.
    activity: OrderActivity | None = None

    @classmethod
    def place(cls, *, order_id: str, merchant_id: str, member_id: str, idempotency_key: str,
              lines: Sequence[OrderLine], currency: str, total: int, payable: int, reservation_id: str,
              created_at: datetime, expires_at: datetime, order_steps: Sequence[PriceStep] = (),
              shipping_fee: int = 0, tier: str = "", attribution: dict[str, str] | None = None, remark: str = "",
              flash_sale_id: str = "", request_hash: str = "", shipping_address: ShippingAddress | None = None,
              shipping_rule: str = "", value: UsedValue | None = None,
              referral: Referral | None = None, activity: OrderActivity | None = None) -> "Order":
        """A new order waiting for payment, for stock already reserved under `reservation_id`."""
        order = cls(id=order_id, merchant_id=merchant_id, member_id=member_id, idempotency_key=idempotency_key,
                    state=OrderState.PENDING_PAYMENT, lines=tuple(lines), currency=currency, total=total,
                    payable=payable, reservation_id=reservation_id, created_at=created_at, expires_at=expires_at,
                    order_steps=tuple(order_steps), shipping_fee=shipping_fee, tier=tier,
                    attribution=dict(attribution or {}), remark=remark, flash_sale_id=flash_sale_id,
                    request_hash=request_hash, shipping_address=shipping_address, shipping_rule=shipping_rule,
                    value=None if value is None or value.is_empty else value,
                    referral=None if referral is None or referral.is_empty else referral, activity=activity)
        order.record(OrderPlaced(at=created_at))
        return order

    @property
    def channel(self) -> str:
        return self.attribution.get("channel", "")

    @property
    def units_left(self) -> int:
        return sum(line.units_left for line in self.lines)

    def is_payable(self, now: datetime) -> bool:
        return is_payable(self.state, self.expires_at, now)

    def is_expired(self, now: datetime) -> bool:
        return is_expired(self.expires_at, now)

    # ---- payment and cancellation -------------------------------------------------

    @property
    def is_group_buy(self) -> bool:
        return self.activity is not None and self.activity.kind == GROUP_BUY

    def pay(self, payment_id: str, now: datetime, payment: Any = None) -> None:
        """PENDING_PAYMENT → PAID by the payment `payment_id`, while the order is not expired;
        a group-buy order goes to GROUPING instead, and is PAID when its group forms."""
        if not self.is_payable(now):
            raise FailedPrecondition(f"the order is {self.state.value} or expired and cannot be paid",
                                     reason=NOT_PAYABLE)
        if self.is_group_buy:
            self.state, self.paid_at, self.payment_id = OrderState.GROUPING, now, payment_id
            self.record(OrderGrouping(at=now, payment_id=payment_id, payment=payment))
            return
        self.state, self.paid_at, self.payment_id = OrderState.PAID, now, payment_id
        # Owed from now on, and carried by order.paid: same write as the payment.
        self.commissions = commissions_at_paid(self.lines, self.referral, earns=not self.stored_value.is_recharge)
        self.record(OrderPaid(at=now, payment_id=payment_id, payment=payment))

    def group_formed(self, now: datetime) -> bool:
        """GROUPING → PAID: its group formed. The commissions are owed now, only when the
        activity pays them (the referral's group_buy_commission, fixed at placement).
        False when it is past GROUPING already (a repeat); refused when it was cancelled."""
        if self.state is not OrderState.GROUPING:
            if self.state is OrderState.CANCELLED:
                raise FailedPrecondition("the order was cancelled before its group formed", reason=NOT_PAYABLE)
            return False
        self.state = OrderState.PAID
        self.commissions = commissions_at_paid(
            self.lines, self.referral, earns=self.referral is not None and self.referral.group_buy_commission)
        self.record(OrderPaid(at=now, payment_id=self.payment_id, from_group=True))
        return True

    def cancel_grouping(self, now: datetime, reason: str) -> bool:
        """GROUPING → CANCELLED with one of GROUP_CANCEL_REASONS: its whole payment goes back.
        False when it was cancelled already; refused once its group formed."""
        if reason not in GROUP_CANCEL_REASONS:
            raise ValueError(f"not a group cancel reason: {reason}")
        if self.state is OrderState.CANCELLED:
            return False
        if self.state is not OrderState.GROUPING:
            raise FailedPrecondition(f"the order is {self.state.value}", reason=NOT_REFUNDABLE)
        self.refunded_amount = self.payable
        self._cancelled(now, reason)
        return True

    def cancel(self, now: datetime, cancel_reason: str = CANCEL_BY_MEMBER) -> bool:
        """The member (or staff, CANCEL_BY_STAFF) cancels an unpaid order. False when it was
        cancelled already (a repeat changes nothing); refused once it is paid."""
        decision = member_cancel(self.state)
        if decision is CancelDecision.ALREADY_CANCELLED:
            return False
        if decision is CancelDecision.TOO_LATE:
            raise FailedPrecondition(f"a {self.state.value} order cannot be cancelled", reason=NOT_CANCELLABLE)
        self._cancelled(now, cancel_reason)
        return True

    def expire(self, now: datetime) -> bool:
        """Cancels an unpaid order past its expiry. False when it is not (or no longer) due."""
        if self.state is not OrderState.PENDING_PAYMENT or not self.is_expired(now):
            return False
        self._cancelled(now, CANCEL_BY_TIMEOUT)
        return True

    def cancel_unfulfillable(self, now: datetime) -> bool:
        """The system-only PAID → CANCELLED of a paid order whose units were gone: its
        whole payment goes back (the refunded total becomes what was payable). False
        when it was cancelled already; refused beyond PAID (a person must look)."""
        decision = stock_unavailable_cancel(self.state)
        if decision is Move.REPEAT:
            return False
        if decision is Move.REFUSE:
            raise FailedPrecondition(f"the order is {self.state.value}", reason=NOT_REFUNDABLE)
        self.refunded_amount = self.payable
        self.commissions = all_voided(self.commissions)
        self._cancelled(now, CANCEL_STOCK_UNAVAILABLE)
        return True

    def _cancelled(self, now: datetime, cancel_reason: str) -> None:
        self.state, self.cancelled_at, self.cancel_reason = OrderState.CANCELLED, now, cancel_reason
        self.record(OrderCancelled(at=now, reason=cancel_reason))

    # ---- fulfilment ---------------------------------------------------------------

    def shipping(self) -> Move:
        """Whether shipping is asked again (REPEAT) or can be decided (APPLY); refused
        before payment and after it was shipped."""
        move = MACHINE.decide(self.state, OrderState.SHIPPED)
        if move is Move.REFUSE or self.stored_value.is_recharge:
            raise FailedPrecondition(f"a {self.state.value} order cannot be shipped", reason=NOT_SHIPPABLE)
        return move

    def ship(self, carrier: str, tracking_number: str, now_ms: int, *, auto_confirm_days: int,
             open_refunds: int) -> bool:
        """PAID → SHIPPED, when units are left to ship and no refund is waiting or under
        way. False when it was shipped already."""
        if self.shipping() is Move.REPEAT:
            return False
        units_left = self.units_left
        if not is_shippable(units_left, open_refunds):
            raise FailedPrecondition(
                "a refund of this order is waiting or under way" if units_left else "every unit was refunded",
                reason=REFUND_OPEN if units_left else NOTHING_TO_SHIP)
        self.state = OrderState.SHIPPED
        self.shipment = Shipment(carrier=carrier, tracking_number=tracking_number, shipped_ms=now_ms)
        self.auto_confirm_ms = auto_confirm_ms(now_ms, auto_confirm_days)
        self.record(OrderShipped(at=_at_ms(now_ms)))
        return True

    def deliver(self, now: datetime) -> bool:
        """SHIPPED → DELIVERED. False when it was marked delivered already."""
        move = MACHINE.decide(self.state, OrderState.DELIVERED)
        if move is Move.REPEAT:
            return False
        if move is Move.REFUSE:
            raise FailedPrecondition(f"a {self.state.value} order cannot be marked delivered", reason=NOT_SHIPPED)
        self.state, self.delivered_at = OrderState.DELIVERED, now
        self.record(OrderDelivered(at=now))
        return True

    def complete(self, now: datetime, confirmed_by: str = CONFIRMED_BY_MEMBER) -> bool:
        """Receipt confirmed (by the member, or automatically): SHIPPED or DELIVERED →
        COMPLETED. False when it was completed already."""
        move = MACHINE.decide(self.state, OrderState.COMPLETED)
        if move is Move.REPEAT:
            return False
        if move is Move.REFUSE:
            raise FailedPrecondition(f"a {self.state.value} order has no receipt to confirm", reason=NOT_SHIPPED)
        self.state, self.completed_at, self.confirmed_by = OrderState.COMPLETED, now, confirmed_by
        self.record(OrderCompleted(at=now, confirmed_by=confirmed_by))
        return True

    def settle(self, now: datetime) -> bool:
        """The after-sales window closed (domain.settlement decides when): a COMPLETED
        order is settled once. False when it was settled already."""
        if self.settled_at is not None:
            return False
        if self.state is not OrderState.COMPLETED:
            raise ValueError(f"a {self.state.value} order is not settled")
        self.settled_at = now
        self.record(OrderSettled(at=now))
        return True

    def reservation_verdict(self, reservation_id: str) -> ReservationVerdict:
        """What the catalog may do with the expired reservation `reservation_id`."""
        return reservation_verdict(self.state, self.reservation_id == reservation_id)

    def is_due_for_auto_confirm(self, now_ms: int) -> bool:
        return self.state in (OrderState.SHIPPED, OrderState.DELIVERED) and 0 < self.auto_confirm_ms <= now_ms

    # ---- refunds ------------------------------------------------------------------

    def applied_refund(self, refund_id: str) -> AppliedRefund | None:
        """The refund as this order took it, or None when it has not taken it."""
        return self.applied_refunds.get(refund_id)

    @property
    def shipping_fee_refunded(self) -> int:
        return sum(r.shipping_fee_refund for r in self.applied_refunds.values())

    def apply_refund(self, refund_id: str, applied: AppliedRefund, lines_after: Sequence[LineRefunded],
                     now: datetime, refund: Any = None) -> bool:
        """The order takes a refund, once: each line's refunded totals become those of
        `lines_after` (matched by line id), the refund is recorded as applied and the
        refunded total grows by its amount. False when the order took it already."""
        if refund_id in self.applied_refunds:
            return False
        after = {line.line_id: line for line in lines_after}
        unknown = set(after) - {line.line_id for line in self.lines}
        if unknown:
            raise ValueError(f"order {self.id} has no lines {sorted(unknown)}")
        self.lines = tuple(
            replace(line, refunded_quantity=after[line.line_id].refunded_quantity,
                    refunded_amount=after[line.line_id].refunded_amount) if line.line_id in after else line
            for line in self.lines)
        self.applied_refunds = {**self.applied_refunds, refund_id: applied}
        self.refunded_amount += applied.amount
        self.commissions = after_refunds(self.commissions, self.lines)
        self.record(OrderRefunded(at=now, refund_id=refund_id, refund=refund))
        return True


def _at_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
