"""Coupons (优惠券): the templates an operator designs, the coupons members hold, and the
pure maths of what a coupon takes off an order and from which lines.

A template's discount rule (`CouponRule`) is copied into every coupon it issues, so a
coupon keeps the rule it was claimed with. Amounts are fen; rates are basis points.

Claiming is raced by many members at once: the template's issued counter changes by one
conditional atomic update and a member's coupons of a template hold unique slots
1..per_member_limit (services.member.application.coupon_ports says how). The aggregates
here decide the moves; they never count."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import ClassVar, Sequence

from siyu_kit.aggregate import Aggregate, Move, StateMachine
from siyu_kit.errors import AlreadyExists, FailedPrecondition, FieldViolation
from siyu_kit.money import BASIS_POINTS, MAX_AMOUNT, split_largest_remainder

# ---- reason words (declared in protos/siyu/member/v1/errors.proto) ------------------------
NOT_CLAIMABLE = "COUPON_NOT_CLAIMABLE"
SOLD_OUT = "COUPON_SOLD_OUT"
LIMIT_REACHED = "COUPON_LIMIT_REACHED"
NOT_EDITABLE = "COUPON_TEMPLATE_NOT_EDITABLE"
TOTAL_BELOW_ISSUED = "COUPON_TOTAL_BELOW_ISSUED"
NOT_AVAILABLE = "COUPON_NOT_AVAILABLE"
IN_USE = "COUPON_IN_USE"
NOT_STARTED = "COUPON_NOT_STARTED"
EXPIRED_REASON = "COUPON_EXPIRED"
WRONG_ORDER_KIND = "COUPON_WRONG_ORDER_KIND"
OUT_OF_SCOPE = "COUPON_OUT_OF_SCOPE"
BELOW_THRESHOLD = "COUPON_BELOW_THRESHOLD"
GRANT_KEY_REUSED = "COUPON_GRANT_KEY_REUSED"
LOCK_ENDED = "COUPON_LOCK_ENDED"
TRANSITION = "STATUS_TRANSITION"

# ---- event subjects (the proto messages of events.proto will name these) ---------------------
TEMPLATE_CREATED = "siyu.member.coupon_template.created"
TEMPLATE_CHANGED = "siyu.member.coupon_template.changed"
TEMPLATE_STATE_CHANGED = "siyu.member.coupon_template.state_changed"
COUPON_CLAIMED = "siyu.member.coupon.claimed"
COUPON_LOCKED = "siyu.member.coupon.locked"
COUPON_USED = "siyu.member.coupon.used"
COUPON_RELEASED = "siyu.member.coupon.released"
COUPON_RESTORED = "siyu.member.coupon.restored"
COUPON_EXPIRED = "siyu.member.coupon.expired"
COUPON_REVOKED = "siyu.member.coupon.revoked"
GRANT_PROGRESSED = "siyu.member.coupon_grant.progressed"


class CouponKind(str, Enum):
    AMOUNT_OFF = "AMOUNT_OFF"  # 满减: amount off once the threshold is reached
    PERCENT_OFF = "PERCENT_OFF"  # 折扣: a rate off (basis points), at most a cap, above an optional threshold
    NO_THRESHOLD = "NO_THRESHOLD"  # 无门槛: amount off any order


class Scope(str, Enum):
    ALL = "ALL"
    CATEGORIES = "CATEGORIES"  # the categories and every category below them
    PRODUCTS = "PRODUCTS"


# Order kinds as the order service names them. A coupon is accepted by NORMAL orders
# unless its template says otherwise; the others refuse coupons unless named.
NORMAL = "NORMAL"
FLASH_SALE = "FLASH_SALE"
GROUP_BUY = "GROUP_BUY"
BARGAIN = "BARGAIN"
ORDER_KINDS = (NORMAL, FLASH_SALE, GROUP_BUY, BARGAIN)

# Issue sources: how a member came to hold a coupon.
CLAIM = "CLAIM"
GRANT = "GRANT"
NEW_MEMBER = "NEW_MEMBER"
REFERRAL = "REFERRAL"
BIRTHDAY = "BIRTHDAY"
SOURCES = (CLAIM, GRANT, NEW_MEMBER, REFERRAL, BIRTHDAY)

MAX_NAME = 60
MAX_SCOPE_IDS = 200
MAX_PER_MEMBER = 100
MAX_VALID_DAYS = 3660
MAX_TOTAL = 10_000_000


# ---- the discount rule and its maths ---------------------------------------------------------

@dataclass(frozen=True)
class CouponRule:
    """What a coupon takes off and where; copied from its template when issued."""
    kind: CouponKind
    threshold: int = 0  # fen the lines in scope must reach (0: none)
    amount_off: int = 0  # fen; AMOUNT_OFF and NO_THRESHOLD
    percent_off_bp: int = 0  # PERCENT_OFF: the part taken off (2,000 = 20% off, 8折)
    cap: int = 0  # PERCENT_OFF: the most it takes off, fen
    scope: Scope = Scope.ALL
    category_ids: tuple[str, ...] = ()
    product_ids: tuple[str, ...] = ()
    excluded_product_ids: tuple[str, ...] = ()
    order_kinds: tuple[str, ...] = (NORMAL,)

    def problems(self, prefix: str = "") -> list[FieldViolation]:
        """Every field that does not make a valid rule, as field violations."""
        out: list[FieldViolation] = []

        def check(ok: bool, name: str, description: str) -> None:
            if not ok:
                out.append(FieldViolation(prefix + name, description))

        if self.kind == CouponKind.AMOUNT_OFF:
            check(1 <= self.threshold <= MAX_AMOUNT, "threshold", f"1..{MAX_AMOUNT} fen for an amount-off coupon")
            check(1 <= self.amount_off <= MAX_AMOUNT, "amount_off", f"1..{MAX_AMOUNT} fen")
            check(self.percent_off_bp == 0 and self.cap == 0, "percent_off_bp", "only for a percent-off coupon")
        elif self.kind == CouponKind.NO_THRESHOLD:
            check(self.threshold == 0, "threshold", "none for a no-threshold coupon")
            check(1 <= self.amount_off <= MAX_AMOUNT, "amount_off", f"1..{MAX_AMOUNT} fen")
            check(self.percent_off_bp == 0 and self.cap == 0, "percent_off_bp", "only for a percent-off coupon")
        else:
            check(0 <= self.threshold <= MAX_AMOUNT, "threshold", f"0..{MAX_AMOUNT} fen")
            check(1 <= self.percent_off_bp < BASIS_POINTS, "percent_off_bp", f"1..{BASIS_POINTS - 1} basis points off")
            check(1 <= self.cap <= MAX_AMOUNT, "cap", f"1..{MAX_AMOUNT} fen")
            check(self.amount_off == 0, "amount_off", "only for an amount-off coupon")
        if self.scope == Scope.CATEGORIES:
            check(1 <= len(self.category_ids) <= MAX_SCOPE_IDS, "category_ids", f"1..{MAX_SCOPE_IDS} categories")
        else:
            check(not self.category_ids, "category_ids", "only with the CATEGORIES scope")
        if self.scope == Scope.PRODUCTS:
            check(1 <= len(self.product_ids) <= MAX_SCOPE_IDS, "product_ids", f"1..{MAX_SCOPE_IDS} products")
        else:
            check(not self.product_ids, "product_ids", "only with the PRODUCTS scope")
        check(len(self.excluded_product_ids) <= MAX_SCOPE_IDS, "excluded_product_ids",
              f"at most {MAX_SCOPE_IDS} products")
        check(not set(self.excluded_product_ids) & set(self.product_ids), "excluded_product_ids",
              "a product cannot be both in scope and excluded")
        check(bool(self.order_kinds) and set(self.order_kinds) <= set(ORDER_KINDS)
              and len(set(self.order_kinds)) == len(self.order_kinds), "order_kinds",
              "distinct order kinds of " + ", ".join(ORDER_KINDS))
        return out

    def covers(self, line: "CouponLine") -> bool:
        """Whether the line is in scope: excluded products never are; a category covers
        every category below it (the line's path names its ancestors)."""
        if line.product_id in self.excluded_product_ids:
            return False
        if self.scope == Scope.CATEGORIES:
            return bool(set(line.category_path) & set(self.category_ids))
        if self.scope == Scope.PRODUCTS:
            return line.product_id in self.product_ids
        return True


@dataclass(frozen=True)
class CouponLine:
    """An order line as the coupon sees it: its unit price after the activity or tier
    price, and `amount`, what is left of the line before the coupon (after any threshold
    reduction; unit_price × quantity when none)."""
    sku_id: str
    product_id: str
    category_path: tuple[str, ...]  # the line's category and its ancestors
    unit_price: int
    quantity: int
    amount: int | None = None

    @property
    def subtotal(self) -> int:
        return self.unit_price * self.quantity if self.amount is None else self.amount


@dataclass(frozen=True)
class Discount:
    """What a coupon does to an order: `reason` is empty when it applies; `shares` is
    per line (in the order given) and adds up to `amount`; lines out of scope get 0."""
    amount: int
    shares: tuple[int, ...]
    eligible: tuple[bool, ...]
    eligible_subtotal: int
    reason: str = ""
    shortfall: int = 0  # what the lines in scope lack to reach the threshold
    order_subtotal: int = 0  # every line's amount, in scope or not

    @property
    def applies(self) -> bool:
        return not self.reason and self.amount > 0


def discount_for(rule: CouponRule, lines: Sequence[CouponLine], order_kind: str = NORMAL) -> Discount:
    """The discount a coupon gives an order, and its allocation: proportional to each
    eligible line's amount by largest remainder (earlier lines win ties), so the shares
    add up to the discount exactly and no line ever pays below zero. The discount never
    exceeds the eligible lines' amount; shipping is never part of it."""
    eligible = tuple(rule.covers(line) and line.subtotal > 0 for line in lines)
    subtotal = sum(line.subtotal for line, ok in zip(lines, eligible) if ok)
    whole = sum(line.subtotal for line in lines)
    none = tuple(0 for _ in lines)
    if order_kind not in rule.order_kinds:
        return Discount(0, none, eligible, subtotal, WRONG_ORDER_KIND, order_subtotal=whole)
    if not any(eligible):
        return Discount(0, none, eligible, subtotal, OUT_OF_SCOPE, order_subtotal=whole)
    if subtotal < rule.threshold:
        return Discount(0, none, eligible, subtotal, BELOW_THRESHOLD, rule.threshold - subtotal, whole)
    if rule.kind == CouponKind.PERCENT_OFF:
        wanted = min(subtotal * rule.percent_off_bp // BASIS_POINTS, rule.cap)
    else:
        wanted = rule.amount_off
    amount = min(wanted, subtotal)
    weights = [line.subtotal if ok else 0 for line, ok in zip(lines, eligible)]
    shares = tuple(split_largest_remainder(amount, weights)) if amount else none
    return Discount(amount, shares, eligible, subtotal, order_subtotal=whole)


@dataclass(frozen=True)
class TemplateStats:
    """What a template did: coupons issued, held by unpaid orders, used by paid orders,
    the discount they gave and the goods amount of those orders (GMV)."""
    issued: int = 0
    locked: int = 0
    used: int = 0
    expired: int = 0
    discount_given: int = 0
    gmv: int = 0


@dataclass(frozen=True)
class CouponConfig:
    """A merchant's coupon settings."""
    # A fully refunded, unshipped order gives its coupon back while still valid.
    return_on_refund: bool = True
    # The template whose coupon a new member gets at registration ("": none).
    new_member_template_id: str = ""


# ---- the template -----------------------------------------------------------------------------

class TemplateState(str, Enum):
    DRAFT = "DRAFT"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    ENDED = "ENDED"


TEMPLATE_MACHINE: StateMachine[TemplateState] = StateMachine("coupon template", {
    TemplateState.DRAFT: {TemplateState.ACTIVE},
    TemplateState.ACTIVE: {TemplateState.PAUSED, TemplateState.ENDED},
    TemplateState.PAUSED: {TemplateState.ACTIVE, TemplateState.ENDED},
    TemplateState.ENDED: set(),
}, refused_reason=TRANSITION)


@dataclass(frozen=True)
class Validity:
    """A fixed window [starts_at, ends_at), or `days` from the moment of claim."""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    days: int = 0

    def problems(self, prefix: str = "") -> list[FieldViolation]:
        fixed = self.starts_at is not None or self.ends_at is not None
        if fixed and self.days:
            return [FieldViolation(prefix + "days", "either a fixed window or days from claim, not both")]
        if fixed:
            if self.starts_at is None or self.ends_at is None or self.starts_at >= self.ends_at:
                return [FieldViolation(prefix + "ends_at", "a window with a start before its end")]
            return []
        if not 1 <= self.days <= MAX_VALID_DAYS:
            return [FieldViolation(prefix + "days", f"1..{MAX_VALID_DAYS} days from claim, or a fixed window")]
        return []

    def window_from(self, claimed_at: datetime) -> tuple[datetime, datetime]:
        """The window of a coupon claimed at `claimed_at`."""
        if self.days:
            return claimed_at, claimed_at + timedelta(days=self.days)
        assert self.starts_at is not None and self.ends_at is not None
        return self.starts_at, self.ends_at


@dataclass(frozen=True)
class TemplateDraft:
    """What an operator designs; a DRAFT template can be replaced by another draft."""
    name: str
    rule: CouponRule
    validity: Validity
    total: int | None  # None: unlimited
    per_member_limit: int = 1
    self_claim: bool = True  # False: issued by staff grants and rewards only
    marketing: bool = False  # a segment grant gives it only to members with marketing consent

    def problems(self) -> list[FieldViolation]:
        out = []
        if not 1 <= len(self.name.strip()) <= MAX_NAME:
            out.append(FieldViolation("name", f"1..{MAX_NAME} characters"))
        out += self.rule.problems("rule.")
        out += self.validity.problems("validity.")
        if self.total is not None and not 1 <= self.total <= MAX_TOTAL:
            out.append(FieldViolation("total", f"1..{MAX_TOTAL}, or unlimited"))
        if not 1 <= self.per_member_limit <= MAX_PER_MEMBER:
            out.append(FieldViolation("per_member_limit", f"1..{MAX_PER_MEMBER}"))
        return out


def draft_fingerprint(draft: TemplateDraft) -> str:
    """What a creation asked for, to tell a replay of its idempotency key from another
    request under the same key: a digest of the design's canonical JSON."""
    rule = draft.rule
    canonical = json.dumps({
        "name": draft.name.strip(), "kind": rule.kind.value, "threshold": rule.threshold,
        "amount_off": rule.amount_off, "percent_off_bp": rule.percent_off_bp, "cap": rule.cap,
        "scope": rule.scope.value, "category_ids": list(rule.category_ids), "product_ids": list(rule.product_ids),
        "excluded_product_ids": list(rule.excluded_product_ids), "order_kinds": list(rule.order_kinds),
        "starts_at": draft.validity.starts_at.isoformat() if draft.validity.starts_at else "",
        "ends_at": draft.validity.ends_at.isoformat() if draft.validity.ends_at else "",
        "days": draft.validity.days, "total": draft.total or 0, "per_member_limit": draft.per_member_limit,
        "self_claim": draft.self_claim, **({"marketing": True} if draft.marketing else {})},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class TemplateCreated:
    subject: ClassVar[str] = TEMPLATE_CREATED
    template_id: str
    name: str
    at: datetime


@dataclass(frozen=True)
class TemplateChanged:
    subject: ClassVar[str] = TEMPLATE_CHANGED
    template_id: str
    at: datetime


@dataclass(frozen=True)
class TemplateStateChanged:
    subject: ClassVar[str] = TEMPLATE_STATE_CHANGED
    template_id: str
    state: TemplateState
    at: datetime


@dataclass
class CouponTemplate(Aggregate):
    id: str  # cpt_…
    merchant_id: str
    version: int
    name: str
    rule: CouponRule
    validity: Validity
    total: int | None
    per_member_limit: int
    self_claim: bool
    state: TemplateState = TemplateState.DRAFT
    marketing: bool = False
    # Coupons issued: changed only by the repository's conditional atomic update, never
    # by a save of the aggregate (the value here is what was read).
    issued: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # The creating request's idempotency key (unique per merchant) and the digest of what
    # it asked for (draft_fingerprint): a repeat answers this template, another body is
    # refused. Empty on templates created before keys were required.
    creation_key: str = ""
    fingerprint: str = ""

    @classmethod
    def create(cls, template_id: str, merchant_id: str, draft: TemplateDraft, now: datetime,
               creation_key: str = "") -> "CouponTemplate":
        template = cls(id=template_id, merchant_id=merchant_id, version=1, name=draft.name.strip(), rule=draft.rule,
                       validity=draft.validity, total=draft.total, per_member_limit=draft.per_member_limit,
                       self_claim=draft.self_claim, marketing=draft.marketing, created_at=now, updated_at=now,
                       creation_key=creation_key,
                       fingerprint=draft_fingerprint(draft))
        template.record(TemplateCreated(template_id, template.name, now))
        return template

    def edit(self, draft: TemplateDraft, now: datetime) -> None:
        """Replaces the whole design; only while DRAFT."""
        if self.state != TemplateState.DRAFT:
            raise FailedPrecondition("only a draft template can be changed", reason=NOT_EDITABLE)
        self.name, self.rule, self.validity = draft.name.strip(), draft.rule, draft.validity
        self.total, self.per_member_limit, self.self_claim = draft.total, draft.per_member_limit, draft.self_claim
        self.marketing = draft.marketing
        self.updated_at = now
        self.record(TemplateChanged(self.id, now))

    def change_total(self, total: int | None, now: datetime) -> bool:
        """A new total quantity (None: unlimited), never below what has been issued. The
        repository's save also refuses it (StaleVersion) if claims passed it meanwhile."""
        if self.state == TemplateState.ENDED:
            raise FailedPrecondition("an ended template no longer changes", reason=NOT_EDITABLE)
        if total == self.total:
            return False
        if total is not None and total < self.issued:
            raise FailedPrecondition(f"{self.issued} coupons are issued already", reason=TOTAL_BELOW_ISSUED)
        self.total = total
        self.updated_at = now
        self.record(TemplateChanged(self.id, now))
        return True

    def move(self, target: TemplateState, now: datetime) -> bool:
        """Activate, pause, resume or end; asking for the state it is in changes nothing."""
        decided = TEMPLATE_MACHINE.decide(self.state, target)
        if decided == Move.REPEAT:
            return False
        TEMPLATE_MACHINE.require(self.state, target)
        self.state = target
        self.updated_at = now
        self.record(TemplateStateChanged(self.id, target, now))
        return True

    @property
    def left(self) -> int | None:
        return None if self.total is None else max(self.total - self.issued, 0)

    def replay(self, draft: TemplateDraft) -> "CouponTemplate":
        """This template, found by its creation key, answering a repeat of that creation;
        refused when the key now comes with another design."""
        if self.fingerprint != draft_fingerprint(draft):
            raise AlreadyExists("the idempotency key was used for another coupon template; use a new key",
                                reason="IDEMPOTENCY_KEY_REUSED")
        return self

    def in_claim_window(self, now: datetime) -> bool:
        """An ACTIVE self-claim template whose validity has not ended and that has coupons
        left: what a member may claim now (their own limit aside)."""
        return (self.state == TemplateState.ACTIVE and self.self_claim and self.left != 0
                and (self.validity.ends_at is None or now < self.validity.ends_at))

    def claimable(self, now: datetime, by_staff: bool = False) -> None:
        """Raises unless a coupon can be issued now (the counter's race is the repository's)."""
        if self.state != TemplateState.ACTIVE:
            raise FailedPrecondition(f"the template is {self.state.value}", reason=NOT_CLAIMABLE)
        if not (self.self_claim or by_staff):
            raise FailedPrecondition("this coupon is given by the shop, not claimed", reason=NOT_CLAIMABLE)
        if self.validity.ends_at is not None and now >= self.validity.ends_at:
            raise FailedPrecondition("the coupon's validity has ended", reason=NOT_CLAIMABLE)
        if self.left == 0:
            raise FailedPrecondition("every coupon has been claimed", reason=SOLD_OUT)


# ---- the member's coupon ------------------------------------------------------------------------

class CouponState(str, Enum):
    CLAIMING = "CLAIMING"  # its slot is held, the template's unit not yet confirmed; nobody sees it
    AVAILABLE = "AVAILABLE"
    LOCKED = "LOCKED"  # an unpaid order holds it
    USED = "USED"  # the order was paid
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"  # taken back before use (a referral whose first order was refunded in full)


COUPON_MACHINE: StateMachine[CouponState] = StateMachine("coupon", {
    CouponState.CLAIMING: {CouponState.AVAILABLE},
    CouponState.AVAILABLE: {CouponState.LOCKED, CouponState.EXPIRED, CouponState.REVOKED},
    CouponState.LOCKED: {CouponState.USED, CouponState.AVAILABLE, CouponState.EXPIRED},
    CouponState.USED: {CouponState.AVAILABLE},
    CouponState.EXPIRED: set(),
    CouponState.REVOKED: set(),
}, refused_reason=TRANSITION)

VISIBLE = (CouponState.AVAILABLE, CouponState.LOCKED, CouponState.USED, CouponState.EXPIRED, CouponState.REVOKED)


@dataclass(frozen=True)
class CouponClaimed:
    subject: ClassVar[str] = COUPON_CLAIMED
    coupon_id: str
    template_id: str
    member_id: str
    source: str
    source_id: str
    valid_from: datetime
    valid_until: datetime
    at: datetime


@dataclass(frozen=True)
class CouponLocked:
    subject: ClassVar[str] = COUPON_LOCKED
    coupon_id: str
    template_id: str
    member_id: str
    order_id: str
    discount: int
    at: datetime


@dataclass(frozen=True)
class CouponUsed:
    subject: ClassVar[str] = COUPON_USED
    coupon_id: str
    template_id: str
    member_id: str
    order_id: str
    discount: int
    at: datetime


@dataclass(frozen=True)
class CouponReleased:
    """An unpaid order let go of the coupon: back to AVAILABLE, or EXPIRED if its
    validity ended meanwhile (`state` says which)."""
    subject: ClassVar[str] = COUPON_RELEASED
    coupon_id: str
    template_id: str
    member_id: str
    order_id: str
    state: CouponState
    at: datetime


@dataclass(frozen=True)
class CouponRestored:
    """A fully refunded, unshipped order gave the coupon back."""
    subject: ClassVar[str] = COUPON_RESTORED
    coupon_id: str
    template_id: str
    member_id: str
    order_id: str
    at: datetime


@dataclass(frozen=True)
class CouponExpired:
    subject: ClassVar[str] = COUPON_EXPIRED
    coupon_id: str
    template_id: str
    member_id: str
    at: datetime


@dataclass(frozen=True)
class CouponRevoked:
    """Taken back while AVAILABLE, for the cause it was issued for."""
    subject: ClassVar[str] = COUPON_REVOKED
    coupon_id: str
    template_id: str
    member_id: str
    at: datetime


@dataclass
class MemberCoupon(Aggregate):
    id: str  # cpn_…
    merchant_id: str
    version: int
    template_id: str
    member_id: str
    # 1..per_member_limit: (template, member, slot) is unique, which makes the limit exact.
    slot: int
    # The issuing request's key, unique per merchant: a repeated claim finds this coupon.
    claim_key: str
    name: str
    rule: CouponRule
    valid_from: datetime
    valid_until: datetime
    source: str = CLAIM
    source_id: str = ""
    state: CouponState = CouponState.CLAIMING
    order_id: str = ""  # the order that holds it, or last held it
    discount: int = 0  # what it took off that order
    order_amount: int = 0  # the order's goods amount before the coupon (the template's GMV)
    # A lock lasts until the order's payment deadline: if the order never comes to be (a
    # crash after the lock) or is never cancelled, the sweep releases it after that.
    locked_until: datetime | None = None
    # Orders whose cancellation or refund gave it back, or that released it without holding
    # it (a release overtaking its lock): a repeat of theirs changes nothing and a late lock
    # of theirs is refused.
    returned_by: tuple[str, ...] = ()
    # The order whose lock the sweep ended (its payment deadline and the grace passed): if
    # that order is paid after all, it may still use the coupon while nobody else took it.
    swept_order_id: str = ""
    claimed_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def claiming(cls, coupon_id: str, template: CouponTemplate, member_id: str, slot: int, claim_key: str,
                 source: str, source_id: str, now: datetime) -> "MemberCoupon":
        """A coupon holding its slot while the template's unit is taken; nothing recorded yet."""
        valid_from, valid_until = template.validity.window_from(now)
        return cls(id=coupon_id, merchant_id=template.merchant_id, version=1, template_id=template.id,
                   member_id=member_id, slot=slot, claim_key=claim_key, name=template.name, rule=template.rule,
                   valid_from=valid_from, valid_until=valid_until, source=source, source_id=source_id,
                   claimed_at=now, updated_at=now)

    def confirm(self, now: datetime) -> bool:
        """The template's unit is taken: the coupon is the member's."""
        if self.state != CouponState.CLAIMING:
            return False
        self.state = CouponState.AVAILABLE
        self.updated_at = now
        self.record(CouponClaimed(self.id, self.template_id, self.member_id, self.source, self.source_id,
                                  self.valid_from, self.valid_until, now))
        return True

    def valid_at(self, now: datetime) -> bool:
        return self.valid_from <= now < self.valid_until

    def applicability(self, lines: Sequence[CouponLine], order_kind: str, now: datetime) -> Discount:
        """What this coupon would do to the order now, with the reason when it would not."""
        result = discount_for(self.rule, lines, order_kind)
        if now < self.valid_from:
            return replace(result, amount=0, shares=tuple(0 for _ in lines), reason=NOT_STARTED)
        if now >= self.valid_until:
            return replace(result, amount=0, shares=tuple(0 for _ in lines), reason=EXPIRED_REASON)
        return result

    def lock(self, order_id: str, discount: Discount, now: datetime, until: datetime) -> bool:
        """The order was placed with this coupon, to be paid by `until`. The same order
        again changes nothing."""
        if self.order_id == order_id and self.state in (CouponState.LOCKED, CouponState.USED):
            return False
        if order_id in self.returned_by:
            raise FailedPrecondition("this order released the coupon already", reason=LOCK_ENDED)
        if self.state == CouponState.LOCKED:
            raise FailedPrecondition("the coupon is held by another order", reason=IN_USE)
        if self.state != CouponState.AVAILABLE:
            raise FailedPrecondition(f"the coupon is {self.state.value}", reason=NOT_AVAILABLE)
        if not discount.applies:
            raise FailedPrecondition("the coupon does not apply to this order", reason=discount.reason or OUT_OF_SCOPE)
        self.state = CouponState.LOCKED
        self.order_id = order_id
        self.discount = discount.amount
        self.order_amount = discount.order_subtotal
        self.locked_until = until
        self.swept_order_id = ""
        self.updated_at = now
        self.record(CouponLocked(self.id, self.template_id, self.member_id, order_id, discount.amount, now))
        return True

    def use(self, order_id: str, now: datetime, order_amount: int | None = None) -> bool:
        """The order that holds it was paid; `order_amount` (fen), when given, is the
        order's amount the template's GMV counts. An order whose lock the sweep ended may
        still use it while it is AVAILABLE and valid: nobody took it meanwhile. Another
        order holding or having used it is COUPON_IN_USE."""
        if self.state == CouponState.USED and self.order_id == order_id:
            return False
        late = (self.state == CouponState.AVAILABLE and self.swept_order_id == order_id
                and self.order_id == order_id)
        if not late and (self.state != CouponState.LOCKED or self.order_id != order_id):
            if self.state in (CouponState.LOCKED, CouponState.USED) and self.order_id != order_id:
                raise FailedPrecondition("another order holds or used the coupon", reason=IN_USE)
            if self.swept_order_id == order_id and self.state == CouponState.EXPIRED:
                raise FailedPrecondition("the coupon expired after this order's lock ended", reason=EXPIRED_REASON)
            raise FailedPrecondition("the coupon is not held by this order", reason=NOT_AVAILABLE)
        if late and not self.valid_at(now):
            raise FailedPrecondition("the coupon's validity ended after this order's lock ended",
                                     reason=EXPIRED_REASON)
        self.state = CouponState.USED
        self.swept_order_id = ""
        if order_amount is not None:
            self.order_amount = order_amount
        self.updated_at = now
        self.record(CouponUsed(self.id, self.template_id, self.member_id, order_id, self.discount, now))
        return True

    def release(self, order_id: str, now: datetime) -> bool:
        """The unpaid order was cancelled or expired: the coupon comes back if still valid,
        else it expires. A release for an order that does not hold it only notes the order
        (its lock may still be on its way: arriving later, it is refused with
        COUPON_LOCK_ENDED); a paid order's coupon is refused. True when anything changed."""
        if self.state != CouponState.LOCKED or self.order_id != order_id:
            if self.state == CouponState.USED and self.order_id == order_id:
                raise FailedPrecondition("the order using this coupon is paid", reason=TRANSITION)
            changed = False
            if self.swept_order_id == order_id:
                self.swept_order_id = ""  # cancelled after the sweep: no late use either
                changed = True
            if order_id not in self.returned_by:
                self.returned_by = (*self.returned_by, order_id)
                changed = True
            if changed:
                self.updated_at = now
            return changed
        target = CouponState.AVAILABLE if now < self.valid_until else CouponState.EXPIRED
        self.state = target
        self.returned_by = (*self.returned_by, order_id)
        self.updated_at = now
        self.record(CouponReleased(self.id, self.template_id, self.member_id, order_id, target, now))
        return True

    def release_overdue(self, now: datetime) -> bool:
        """The sweep: a lock past its order's payment deadline and the grace after it
        (`locked_until`) ends as if the order had been cancelled, but the order is
        remembered: paid late after all, it may still use the coupon (see `use`)."""
        if self.state != CouponState.LOCKED or self.locked_until is None or now < self.locked_until:
            return False
        order_id = self.order_id
        self.release(order_id, now)
        self.swept_order_id = order_id
        return True

    def restore(self, order_id: str, now: datetime) -> bool:
        """A full refund of the unshipped order gives the coupon back while it is still
        valid (the merchant's switch is the caller's to check). Otherwise it stays USED."""
        if self.state != CouponState.USED or self.order_id != order_id or not now < self.valid_until:
            return False
        self.state = CouponState.AVAILABLE
        if order_id not in self.returned_by:
            self.returned_by = (*self.returned_by, order_id)
        self.updated_at = now
        self.record(CouponRestored(self.id, self.template_id, self.member_id, order_id, now))
        return True

    def expire(self, now: datetime) -> bool:
        """The expiry job: an AVAILABLE coupon past its validity."""
        if self.state != CouponState.AVAILABLE or now < self.valid_until:
            return False
        self.state = CouponState.EXPIRED
        self.updated_at = now
        self.record(CouponExpired(self.id, self.template_id, self.member_id, now))
        return True

    def revoke(self, now: datetime) -> bool:
        """Taken back: only an AVAILABLE coupon; a locked, used or expired one stays as it is
        (False), so a coupon already spent on an order is never undone."""
        if self.state != CouponState.AVAILABLE:
            return False
        self.state = CouponState.REVOKED
        self.updated_at = now
        self.record(CouponRevoked(self.id, self.template_id, self.member_id, now))
        return True


def best(candidates: Sequence[tuple[MemberCoupon, Discount]]) -> tuple[MemberCoupon, Discount] | None:
    """The coupon to apply when the member asks for the best: the largest discount, then
    the one that expires first, then the lowest id (deterministic)."""
    usable = [c for c in candidates if c[1].applies]
    if not usable:
        return None
    return min(usable, key=lambda c: (-c[1].amount, c[0].valid_until, c[0].id))


# ---- the grant job ---------------------------------------------------------------------------------

class GrantState(str, Enum):
    RUNNING = "RUNNING"
    DONE = "DONE"


@dataclass(frozen=True)
class GrantProgressed:
    subject: ClassVar[str] = GRANT_PROGRESSED
    job_id: str
    template_id: str
    granted: int
    skipped: int
    done: bool
    at: datetime


@dataclass
class GrantJob(Aggregate):
    """Staff giving a template's coupons to an audience of members, in chunks. The cursor
    says how far it got; every member's coupon is issued with the key
    `grant:<job>:<member>`, so a chunk run again after a crash issues nothing twice. The
    audience is a list of member ids today; a segment plugs in as another audience whose
    cursor is its own."""
    id: str  # cgj_…
    merchant_id: str
    version: int
    template_id: str
    key: str  # the staff request's idempotency key
    audience: str  # "LIST" (a segment later)
    member_ids: tuple[str, ...]
    state: GrantState = GrantState.RUNNING
    cursor: str = ""  # opaque to the job: the audience's position after the last chunk
    granted: int = 0
    # Members who got nothing, by reason word (limit reached, sold out, unknown member).
    skipped: dict[str, int] = field(default_factory=dict)
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def claim_key(self, member_id: str) -> str:
        return f"grant:{self.id}:{member_id}"

    def progress(self, cursor: str, granted: int, skipped: dict[str, int], finished: bool, now: datetime) -> None:
        if self.state == GrantState.DONE:
            return
        self.cursor = cursor
        self.granted += granted
        merged = dict(self.skipped)
        for word, count in skipped.items():
            merged[word] = merged.get(word, 0) + count
        self.skipped = merged
        if finished:
            self.state = GrantState.DONE
        self.updated_at = now
        self.record(GrantProgressed(self.id, self.template_id, granted, sum(skipped.values()), finished, now))

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())


# ---- segments: a grant's audience "SEGMENT:<segment id>[:M]" (M: marketing, consent only) ----
SEGMENT_AUDIENCE = "SEGMENT"


def segment_audience(segment_id: str, marketing: bool) -> str:
    return f"{SEGMENT_AUDIENCE}:{segment_id}" + (":M" if marketing else "")


def audience_kind(audience: str) -> str:
    return audience.split(":", 1)[0]


def audience_segment(audience: str) -> str:
    """The segment id of a segment audience ("" for a list)."""
    parts = audience.split(":")
    return parts[1] if parts[0] == SEGMENT_AUDIENCE and len(parts) > 1 else ""


def audience_marketing(audience: str) -> bool:
    return audience.endswith(":M")
