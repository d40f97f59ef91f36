"""Community group buy (社区团购): leaders with a pickup point, campaigns with a cut-off,
pickup codes, the uncollected rule and the pick list.

A leader (团长) is a member the merchant approved, with one pickup point. A campaign lists
SKUs at campaign prices and takes orders from its start until its cut-off; every order
names the leader whose group it came from, is collected at that leader's pickup point
with a code and pays that leader a commission (domain.commissions, COMMUNITY_LEADER).
Whether a campaign takes orders is decided by the clock, not by its stored state: the
job that marks it CLOSED only records (once) what the clock already says."""
from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Callable, Iterable, Sequence

from siyu_kit.aggregate import Aggregate
from siyu_kit.errors import FailedPrecondition

# Error reasons (declared in protos/siyu/order/v1/errors.proto).
CAMPAIGN_CLOSED = "CAMPAIGN_CLOSED"
CAMPAIGN_NOT_STARTED = "CAMPAIGN_NOT_STARTED"
LEADER_NOT_ACTIVE = "LEADER_NOT_ACTIVE"
LEADER_EXISTS = "LEADER_EXISTS"
LEADER_NOT_PENDING = "LEADER_NOT_PENDING"
CAMPAIGN_LIMIT_REACHED = "CAMPAIGN_LIMIT_REACHED"
PICKUP_CODE_MISMATCH = "PICKUP_CODE_MISMATCH"
ORDER_NOT_AT_PICKUP_POINT = "ORDER_NOT_AT_PICKUP_POINT"

KIND = "COMMUNITY"  # OrderActivity.kind
CARRIER = "COMMUNITY_PICKUP"  # the shipment of a batch delivered to the pickup point
CONFIRMED_BY_PICKUP = "PICKUP"  # Order.confirmed_by when the buyer collected it
DEFAULT_LEADER_RATE_BP = 1000
MAX_LEADER_RATE_BP = 5000
CODE_DIGITS = 8
DEFAULT_UNCOLLECTED_DAYS = 7
# A delivered community order is ended by the uncollected rule, never by auto-confirm:
# its auto-confirm time is put this far out.
PICKUP_AUTO_CONFIRM_DAYS = 3650


# ---- leaders ---------------------------------------------------------------------------

class LeaderState(str, Enum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class PickupPoint:
    """Where a leader's members collect: the district's region code and the detail, like
    a shipping address; the contact phone is sealed by the store and shown masked."""
    pickup_point_id: str
    name: str
    region_code: str
    detail: str
    opening_hours: str = ""
    capacity_per_day: int = 0
    contact_phone: str = ""

    def same_details(self, other: "PickupPoint") -> bool:
        return (self.name, self.region_code, self.detail, self.opening_hours, self.capacity_per_day,
                self.contact_phone) == (other.name, other.region_code, other.detail, other.opening_hours,
                                        other.capacity_per_day, other.contact_phone)


def mask_phone(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}" if len(phone) >= 7 else "****"


@dataclass
class CommunityLeader(Aggregate):
    id: str
    merchant_id: str
    member_id: str
    name: str
    pickup_point: PickupPoint
    created_at: datetime
    state: LeaderState = LeaderState.PENDING
    enabled: bool = True
    reject_reason: str = ""
    version: int = 1

    @property
    def is_active(self) -> bool:
        """Takes orders: approved and not disabled."""
        return self.state is LeaderState.APPROVED and self.enabled

    def review(self, approve: bool, reason: str = "") -> bool:
        """PENDING → APPROVED or REJECTED. False for the same decision again; refused
        once decided the other way."""
        target = LeaderState.APPROVED if approve else LeaderState.REJECTED
        if self.state is target:
            return False
        if self.state is not LeaderState.PENDING:
            raise FailedPrecondition(f"the leader is {self.state.value}", reason=LEADER_NOT_PENDING)
        self.state = target
        self.reject_reason = "" if approve else reason
        return True

    def set_enabled(self, enabled: bool) -> bool:
        """Disables or enables an approved leader; False when it already is so."""
        if self.state is not LeaderState.APPROVED:
            raise FailedPrecondition(f"the leader is {self.state.value}", reason=LEADER_NOT_ACTIVE)
        if self.enabled == enabled:
            return False
        self.enabled = enabled
        return True

    def require_active(self) -> None:
        if not self.is_active:
            raise FailedPrecondition("this leader takes no orders", reason=LEADER_NOT_ACTIVE)


def reapply(existing: CommunityLeader, name: str, point: PickupPoint) -> bool:
    """A member applies again. The same details answer the leader they have (False); a
    rejected applicant applies anew with new details, PENDING again (True); anything
    else is refused."""
    if existing.name == name and existing.pickup_point.same_details(point):
        return False
    if existing.state is not LeaderState.REJECTED:
        raise FailedPrecondition("this member is already a leader of the merchant", reason=LEADER_EXISTS)
    existing.name, existing.reject_reason, existing.state = name, "", LeaderState.PENDING
    existing.pickup_point = PickupPoint(**{**point.__dict__, "pickup_point_id": existing.pickup_point.pickup_point_id})
    return True


# ---- campaigns -------------------------------------------------------------------------

class CampaignState(str, Enum):
    SCHEDULED = "SCHEDULED"
    OPEN = "OPEN"
    CLOSED = "CLOSED"


@dataclass(frozen=True)
class CampaignLine:
    sku_id: str
    title: str
    price: int
    list_price: int
    per_member_limit: int = 0  # 0: none


@dataclass(frozen=True)
class CampaignClosed:
    at: datetime


@dataclass
class Campaign(Aggregate):
    id: str
    merchant_id: str
    title: str
    lines: tuple[CampaignLine, ...]
    starts_at: datetime
    cut_off_at: datetime
    pickup_date: str
    leader_rate_bp: int
    created_at: datetime
    idempotency_key: str = ""
    request_hash: str = ""
    closed_at: datetime | None = None
    version: int = 1

    def state_at(self, now: datetime) -> CampaignState:
        if self.closed_at is not None or now >= self.cut_off_at:
            return CampaignState.CLOSED
        return CampaignState.SCHEDULED if now < self.starts_at else CampaignState.OPEN

    def require_open(self, now: datetime) -> None:
        state = self.state_at(now)
        if state is CampaignState.CLOSED:
            raise FailedPrecondition("the campaign's order cut-off has passed", reason=CAMPAIGN_CLOSED)
        if state is CampaignState.SCHEDULED:
            raise FailedPrecondition("the campaign has not started", reason=CAMPAIGN_NOT_STARTED)

    def line(self, sku_id: str) -> CampaignLine | None:
        return next((l for l in self.lines if l.sku_id == sku_id), None)

    def close(self, now: datetime) -> bool:
        """Records the cut-off, once it has passed; False before it or when recorded already."""
        if self.closed_at is not None or now < self.cut_off_at:
            return False
        self.closed_at = now
        self.record(CampaignClosed(at=now))
        return True


def campaign_problems(lines: Sequence[tuple[str, int, int]], list_prices: dict[str, int], starts_at: datetime,
                      cut_off_at: datetime) -> list[tuple[str, str]]:
    """(field, problem) of a new campaign: every line's (sku, price, limit) priced below
    its list price, each SKU once, a window that ends after it starts."""
    problems = []
    seen: set[str] = set()
    for i, (sku_id, price, _limit) in enumerate(lines):
        if sku_id in seen:
            problems.append((f"lines[{i}].sku_id", "each SKU once"))
        seen.add(sku_id)
        listed = list_prices.get(sku_id)
        if listed is not None and not 0 < price < listed:
            problems.append((f"lines[{i}].price", f"more than 0 and below the list price {listed}"))
    if cut_off_at <= starts_at:
        problems.append(("cut_off_at", "after starts_at"))
    return problems


def leader_rate(requested_bp: int) -> int:
    return requested_bp or DEFAULT_LEADER_RATE_BP


# ---- pickup codes ----------------------------------------------------------------------

def new_pickup_code(randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    """Eight digits from the system's secure random source: 10^8 codes, so guessing one
    of a batch's few hundred is hopeless; the store keeps each unique per campaign and leader."""
    return str(randbelow(10 ** CODE_DIGITS)).zfill(CODE_DIGITS)


def code_matches(expected: str, given: str) -> bool:
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


# ---- the uncollected rule --------------------------------------------------------------

class UncollectedAction(str, Enum):
    REFUND = "REFUND"
    KEEP = "KEEP"


@dataclass(frozen=True)
class CommunitySettings:
    uncollected_days: int = DEFAULT_UNCOLLECTED_DAYS
    uncollected_action: UncollectedAction = UncollectedAction.REFUND


def uncollected_since(settings: CommunitySettings, now: datetime) -> datetime:
    """Orders delivered to the pickup point at or before this are uncollected."""
    return now - timedelta(days=settings.uncollected_days)


def is_uncollected(delivered_at: datetime | None, settings: CommunitySettings, now: datetime) -> bool:
    return delivered_at is not None and delivered_at <= uncollected_since(settings, now)


# ---- pick lists ------------------------------------------------------------------------

@dataclass(frozen=True)
class PickLine:
    sku_id: str
    title: str
    units: int


@dataclass(frozen=True)
class LeaderPick:
    leader_id: str
    orders: int
    lines: tuple[PickLine, ...]


def pick_lines(order_lines: Iterable) -> tuple[PickLine, ...]:
    """Units per SKU of the given order lines (units refunded are not picked), by SKU id."""
    units: dict[str, int] = {}
    titles: dict[str, str] = {}
    for line in order_lines:
        left = line.quantity - line.refunded_quantity
        if left > 0:
            units[line.sku_id] = units.get(line.sku_id, 0) + left
            titles.setdefault(line.sku_id, line.title)
    return tuple(PickLine(s, titles[s], units[s]) for s in sorted(units))


@dataclass(frozen=True)
class CommissionFigures:
    pending: int = 0
    confirmed: int = 0


def leader_commission(orders: Iterable, leader_member_id: str) -> CommissionFigures:
    """The leader's commission of the orders, net of refunds: pending while an order is
    paid but not completed, confirmed once completed."""
    pending = confirmed = 0
    for order in orders:
        net = sum(c.amount - c.voided for c in order.commissions
                  if c.level.value == "COMMUNITY_LEADER" and c.beneficiary_id == leader_member_id)
        if order.state.value == "COMPLETED":
            confirmed += net
        elif order.state.value in ("PAID", "SHIPPED", "DELIVERED"):
            pending += net
    return CommissionFigures(pending=pending, confirmed=confirmed)

