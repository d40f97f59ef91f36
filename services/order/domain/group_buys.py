"""Group buy (拼团): the activity's rules and the group's state machine.

A leader opens a group by paying for a group-buy order; others join it by paying. The
paid orders wait in GROUPING. The last slot is taken by one conditional update (the store
sends what `take_slot` decides as a filter, so a group never has more paid members than
its size); a full group is FORMED and its orders become PAID; a group past its deadline
is FAILED (its orders refunded) or, when the virtual-fill share was reached, FORMED with
placeholders.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum

from siyu_kit.aggregate import Aggregate
from siyu_kit.errors import FailedPrecondition, Violations

DEFAULT_GROUP_SIZE = 2
MIN_GROUP_SIZE, MAX_GROUP_SIZE = 2, 50
DEFAULT_GROUP_HOURS = 24
MAX_GROUP_HOURS = 720
DEFAULT_PER_MEMBER_LIMIT = 1
MAX_SKUS = 20
FULL_BP = 10_000

# Refusals (declared in protos/siyu/order/v1/errors.proto).
GROUP_NOT_JOINABLE = "GROUP_NOT_JOINABLE"
GROUP_OWN = "GROUP_OWN"
GROUP_ALREADY_JOINED = "GROUP_ALREADY_JOINED"
ACTIVITY_NOT_ACTIVE = "ACTIVITY_NOT_ACTIVE"
ACTIVITY_ENDED = "ACTIVITY_ENDED"
COUPON_NOT_ALLOWED = "COUPON_NOT_ALLOWED"
# Why a group failed, as group.failed says it.
GROUP_EXPIRED = "GROUP_EXPIRED"


class FullGroupPayment(str, Enum):
    """What a payment that finds its group full (or closed) does."""
    REFUND = "REFUND"
    OPEN_NEW_GROUP = "OPEN_NEW_GROUP"


class ActivityState(str, Enum):
    ACTIVE = "ACTIVE"
    ENDED = "ENDED"


class GroupState(str, Enum):
    OPEN = "OPEN"
    FORMED = "FORMED"
    FAILED = "FAILED"


# ---- the activity ----------------------------------------------------------------------

@dataclass(frozen=True)
class GroupBuySku:
    sku_id: str
    group_price: int
    leader_price: int = 0  # 0: the leader pays the group price
    units: int = 0
    pool_id: str = ""  # the catalog pool (fls_) holding the units

    def unit_price(self, leader: bool) -> int:
        return self.leader_price if leader and self.leader_price else self.group_price


@dataclass(frozen=True)
class ActivityTerms:
    """What staff give when creating an activity (defaults applied by `terms_with_defaults`)."""
    title: str
    product_id: str
    skus: tuple[GroupBuySku, ...]
    starts_at: datetime
    ends_at: datetime
    group_size: int = 0
    group_hours: int = 0
    per_member_limit: int = 0
    virtual_fill_bp: int = 0
    full_group_payment: FullGroupPayment = FullGroupPayment.REFUND
    allow_coupons: bool = False
    pay_commission: bool = False


def terms_with_defaults(t: ActivityTerms) -> ActivityTerms:
    return replace(t, group_size=t.group_size or DEFAULT_GROUP_SIZE, group_hours=t.group_hours or DEFAULT_GROUP_HOURS,
                   per_member_limit=t.per_member_limit or DEFAULT_PER_MEMBER_LIMIT)


def check_terms(t: ActivityTerms, v: Violations, list_prices: dict[str, tuple[str, int]] | None = None) -> None:
    """Adds a violation per broken rule. `list_prices`: sku id → (product id, list price)
    as the catalog says, when known; an unknown SKU is left to the catalog (NOT_FOUND)."""
    v.check(MIN_GROUP_SIZE <= t.group_size <= MAX_GROUP_SIZE, "activity.group_size",
            f"{MIN_GROUP_SIZE}..{MAX_GROUP_SIZE}, or 0 for {DEFAULT_GROUP_SIZE}")
    v.check(1 <= t.group_hours <= MAX_GROUP_HOURS, "activity.group_hours", f"1..{MAX_GROUP_HOURS}, or 0 for 24")
    v.check(t.ends_at > t.starts_at, "activity.ends_at", "must be after starts_at")
    v.check(0 <= t.virtual_fill_bp <= FULL_BP, "activity.virtual_fill_bp", "0..10000")
    v.check(1 <= len(t.skus) <= MAX_SKUS, "activity.skus", f"1..{MAX_SKUS} SKUs")
    seen: set[str] = set()
    for i, s in enumerate(t.skus):
        v.check(s.sku_id not in seen, f"activity.skus[{i}].sku_id", "listed twice")
        seen.add(s.sku_id)
        v.check(s.group_price > 0, f"activity.skus[{i}].group_price", "must be above 0")
        v.check(0 <= s.leader_price <= s.group_price, f"activity.skus[{i}].leader_price",
                "at most the group price (0: none)")
        v.check(s.units > 0, f"activity.skus[{i}].units", "at least 1")
        known = (list_prices or {}).get(s.sku_id)
        if known is not None:
            product_id, list_price = known
            v.check(product_id == t.product_id, f"activity.skus[{i}].sku_id", f"is not a SKU of {t.product_id}")
            v.check(s.group_price < list_price, f"activity.skus[{i}].group_price", "must be below the list price")


@dataclass
class GroupBuyActivity(Aggregate):
    id: str
    merchant_id: str
    idempotency_key: str
    terms: ActivityTerms
    created_at: datetime
    state: ActivityState = ActivityState.ACTIVE
    version: int = 1
    request_hash: str = ""
    # Whether the last move changed something (for the repository's save).
    changed: bool = field(default=False, compare=False)

    def is_on(self, now: datetime) -> bool:
        return self.state is ActivityState.ACTIVE and self.terms.starts_at <= now < self.terms.ends_at

    def sku(self, sku_id: str) -> GroupBuySku | None:
        return next((s for s in self.terms.skus if s.sku_id == sku_id), None)

    def require_on(self, sku_id: str, now: datetime) -> GroupBuySku:
        sku = self.sku(sku_id)
        if sku is None or not self.is_on(now):
            raise FailedPrecondition("the group buy is not on, or does not sell this SKU", reason=ACTIVITY_NOT_ACTIVE)
        return sku

    def group_deadline(self, opened_at: datetime) -> datetime:
        """A group stays open the activity's hours from when it opened, never past the
        activity's end."""
        return min(opened_at + timedelta(hours=self.terms.group_hours), self.terms.ends_at)

    def update(self, *, title: str = "", group_hours: int = 0, virtual_fill_bp: int = -1,
               full_group_payment: FullGroupPayment | None = None, allow_coupons: bool | None = None,
               pay_commission: bool | None = None) -> None:
        if self.state is ActivityState.ENDED:
            raise FailedPrecondition("the group buy has ended", reason=ACTIVITY_ENDED)
        t = self.terms
        self.terms = replace(
            t, title=title or t.title, group_hours=group_hours or t.group_hours,
            virtual_fill_bp=t.virtual_fill_bp if virtual_fill_bp < 0 else virtual_fill_bp,
            full_group_payment=full_group_payment or t.full_group_payment,
            allow_coupons=t.allow_coupons if allow_coupons is None else allow_coupons,
            pay_commission=t.pay_commission if pay_commission is None else pay_commission)
        self.changed = True

    def end(self) -> bool:
        """Ends it now; False when it had ended already."""
        if self.state is ActivityState.ENDED:
            return False
        self.state, self.changed = ActivityState.ENDED, True
        return True


def pool_key(activity_key: str, sku_id: str) -> str:
    """The catalog pool's idempotency key for one SKU of an activity (at most 64
    characters): a retried creation finds the same pool instead of moving the units twice."""
    return f"gb{hashlib.sha256(activity_key.encode()).hexdigest()[:24]}:{sku_id}"


# ---- the group ------------------------------------------------------------------------

@dataclass(frozen=True)
class GroupMember:
    member_id: str
    order_id: str
    leader: bool
    joined_at: datetime
    nickname: str = ""  # masked already
    avatar_url: str = ""
    # The order's attribution, carried by the group's events for the funnels.
    share_code: str = ""
    persona_id: str = ""
    channel: str = ""


@dataclass(frozen=True)
class Group:
    """A group as stored: `paid` is the number of members (each a paid order)."""
    id: str
    merchant_id: str
    activity_id: str
    sku_id: str
    size: int
    state: GroupState
    opened_at: datetime
    expires_at: datetime
    members: tuple[GroupMember, ...] = ()
    placeholders: int = 0
    failed_reason: str = ""
    version: int = 1

    @property
    def paid(self) -> int:
        return len(self.members)

    @property
    def leader(self) -> GroupMember | None:
        return next((m for m in self.members if m.leader), None)

    @property
    def slots_left(self) -> int:
        return max(0, self.size - self.paid - self.placeholders) if self.state is GroupState.OPEN else 0

    def member(self, member_id: str) -> GroupMember | None:
        return next((m for m in self.members if m.member_id == member_id), None)

    def has_order(self, order_id: str) -> bool:
        return any(m.order_id == order_id for m in self.members)

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def seconds_left(self, now: datetime) -> int:
        if self.state is not GroupState.OPEN:
            return 0
        return max(0, int((self.expires_at - now).total_seconds()))

    def is_joinable(self, now: datetime) -> bool:
        return self.state is GroupState.OPEN and not self.is_expired(now) and self.paid < self.size


def join_refusal(group: Group | None, member_id: str, now: datetime) -> tuple[str, str] | None:
    """Why a member may not place an order joining `group` now: (reason, message), or None."""
    if group is None or not group.is_joinable(now):
        return GROUP_NOT_JOINABLE, "the group is not open, has expired or is full"
    mine = group.member(member_id)
    if mine is not None and mine.leader:
        return GROUP_OWN, "a member cannot join the group they lead"
    if mine is not None:
        return GROUP_ALREADY_JOINED, "the member is in this group already"
    return None


class Slot(str, Enum):
    """What a paid order's attempt at a slot of its group came to."""
    JOINED = "JOINED"  # took a slot, the group still waits
    FORMED = "FORMED"  # took the last slot: the group formed
    REPEAT = "REPEAT"  # this order holds a slot already
    FULL = "FULL"  # no slot left: the group formed
    CLOSED = "CLOSED"  # the group expired or failed; or the member is in it with another order


def take_slot(group: Group, member_id: str, order_id: str, now: datetime) -> Slot:
    """The decision the store's conditional update makes: open, not expired, a slot left,
    neither this order nor this member in it yet."""
    if group.has_order(order_id):
        return Slot.REPEAT
    if group.state is GroupState.FORMED or (group.state is GroupState.OPEN and group.paid >= group.size):
        return Slot.FULL
    if group.state is not GroupState.OPEN or group.is_expired(now) or group.member(member_id) is not None:
        return Slot.CLOSED
    return Slot.FORMED if group.paid + 1 == group.size else Slot.JOINED


def refusal_reason(slot: Slot) -> str:
    """The cancel reason of a paid order that could not take a slot."""
    return "GROUP_FULL" if slot is Slot.FULL else "GROUP_CLOSED"


def members_needed(size: int, virtual_fill_bp: int) -> int:
    """Paid members an expired group needs to be completed with placeholders: the share
    of its size rounded to the nearest member (6700 of 3 → 2), at least 1; 0 when the
    activity has no virtual fill."""
    if virtual_fill_bp <= 0:
        return 0
    return min(size, max(1, (size * virtual_fill_bp + FULL_BP // 2) // FULL_BP))


@dataclass(frozen=True)
class Expiry:
    state: GroupState
    placeholders: int = 0
    reason: str = ""


def expiry_outcome(group: Group, virtual_fill_bp: int) -> Expiry:
    """What an OPEN group past its deadline becomes: FORMED with placeholders for the
    slots left when the virtual-fill share was reached, otherwise FAILED."""
    needed = members_needed(group.size, virtual_fill_bp)
    if needed and group.paid >= needed:
        return Expiry(GroupState.FORMED, placeholders=group.size - group.paid)
    return Expiry(GroupState.FAILED, reason=GROUP_EXPIRED)


def mask_nickname(nickname: str) -> str:
    """The first character and two stars (张** ); "**" for none."""
    nickname = nickname.strip()
    return f"{nickname[:1]}**" if nickname else "**"
