"""Bargains (砍价): an activity sells one SKU from a start price down to a floor price; a
member starts a bargain and shares it, and each friend who helps cuts the price once, until
the needed number of helpers has brought it exactly to the floor. The starter then buys at
the price reached.

The cuts of a bargain are drawn once, when it starts, from a generator seeded per bargain
(`cuts`); the seed is stored, so a dispute replays the same sequence. A help takes the next
cut of the sequence, so concurrent helpers can only decide who gets which position, never
how far the price goes: the sum of the cuts is start − floor, whoever helps.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

from siyu_kit.aggregate import Aggregate, StateMachine
from siyu_kit.errors import FailedPrecondition, Violations

# Reason words (declared in protos/siyu/order/v1/errors.proto).
ALREADY_HELPED = "ALREADY_HELPED"
HELP_LIMIT_REACHED = "HELP_LIMIT_REACHED"
BARGAIN_FINISHED = "BARGAIN_FINISHED"
BARGAIN_EXPIRED = "BARGAIN_EXPIRED"
OWN_BARGAIN = "OWN_BARGAIN"
BARGAIN_NOT_REACHED = "BARGAIN_NOT_REACHED"
ACTIVITY_NOT_OPEN = "ACTIVITY_NOT_OPEN"
BARGAIN_STATE = "BARGAIN_STATE"

MAX_HELPERS = 100
DEFAULT_TIME_LIMIT = timedelta(hours=24)
MAX_TIME_LIMIT = timedelta(days=7)
DEFAULT_HELPS_PER_ACTIVITY = 1
DEFAULT_HELPS_PER_DAY = 3
# The calendar day a per-day help limit counts in.
BUSINESS_ZONE = ZoneInfo("Asia/Shanghai")


def cuts(start: int, floor: int, helpers: int, seed: int) -> tuple[int, ...]:
    """The cuts of a bargain, in the order its helpers take them: `helpers` cuts of at least
    one fen each, summing to start − floor, the last one landing exactly on the floor.

    Each cut but the last is uniform in [1, min(most, 2 × fair)], where `fair` is what is left
    shared equally among the helpers still to come and `most` leaves one fen for each of
    them; the last cut is whatever is left. On average every helper cuts a fair share, early
    helpers sometimes more, and nobody can finish the bargain before the last one.
    ValueError when start − floor cannot give every helper one fen."""
    total = start - floor
    if helpers < 1 or floor < 0 or total < helpers:
        raise ValueError(f"{helpers} helpers cannot cut {total} fen at one fen or more each")
    rng = random.Random(seed)
    left, drawn = total, []
    for position in range(helpers - 1):
        to_come = helpers - position  # this helper and the ones after
        most = left - (to_come - 1)  # one fen reserved for each later helper
        fair = left // to_come
        cut = rng.randint(1, max(1, min(most, 2 * fair)))
        drawn.append(cut)
        left -= cut
    drawn.append(left)
    return tuple(drawn)


def business_day(at: datetime) -> str:
    """The calendar day (YYYYMMDD, Asia/Shanghai) a help at `at` counts in."""
    return at.astimezone(BUSINESS_ZONE).strftime("%Y%m%d")


# ---- the activity -------------------------------------------------------------------

class ActivityState(str, Enum):
    ACTIVE = "ACTIVE"
    ENDED = "ENDED"


@dataclass(frozen=True)
class ActivityTerms:
    """What an operator sets on a bargain activity (the pool is made from it once)."""
    product_id: str
    sku_id: str
    title: str
    start_price: int
    floor_price: int
    helpers_needed: int
    time_limit_s: int
    starts_at: datetime
    ends_at: datetime
    units: int
    per_member_limit: int
    helps_per_member: int = DEFAULT_HELPS_PER_ACTIVITY
    helps_per_day: int = DEFAULT_HELPS_PER_DAY
    buy_before_floor: bool = False
    bind_new_helpers: bool = False


def check_terms(v: Violations, t: ActivityTerms, list_price: int | None, prefix: str = "") -> None:
    """Field violations of an activity's terms (`list_price` None: not known yet); `prefix`
    is where the terms sit in the request ("activity.")."""
    p = prefix
    v.check(t.start_price >= 1, f"{p}start_price", "at least 1 fen")
    v.check(0 < t.floor_price < t.start_price, f"{p}floor_price", "above 0 and below the start price")
    v.check(1 <= t.helpers_needed <= MAX_HELPERS, f"{p}helpers_needed", f"1..{MAX_HELPERS}")
    if 1 <= t.helpers_needed <= MAX_HELPERS and t.floor_price < t.start_price:
        v.check(t.start_price - t.floor_price >= t.helpers_needed, f"{p}helpers_needed",
                "start price − floor price must give every helper at least 1 fen")
    v.check(60 <= t.time_limit_s <= MAX_TIME_LIMIT.total_seconds(), f"{p}time_limit_s", "60 s .. 7 days")
    v.check(t.ends_at > t.starts_at, f"{p}ends_at", "after starts_at")
    v.check(t.units >= 1, f"{p}units", "at least 1")
    v.check(1 <= t.helps_per_member <= 100, f"{p}helps_per_member", "1..100")
    v.check(1 <= t.helps_per_day <= 100, f"{p}helps_per_day", "1..100")
    if list_price is not None:
        v.check(t.start_price <= list_price, f"{p}start_price", "at most the SKU's list price")
        v.check(t.floor_price < list_price, f"{p}floor_price", "below the SKU's list price")


@dataclass
class BargainActivity(Aggregate):
    id: str  # bga_…
    merchant_id: str
    version: int
    terms: ActivityTerms
    pool_id: str
    list_price: int
    state: ActivityState
    created_at: datetime

    def open_at(self, now: datetime) -> bool:
        return self.state == ActivityState.ACTIVE and self.terms.starts_at <= now < self.terms.ends_at

    def require_open(self, now: datetime) -> None:
        if not self.open_at(now):
            raise FailedPrecondition("the bargain activity is not open", reason=ACTIVITY_NOT_OPEN)

    def update(self, *, title: str, ends_at: datetime, helps_per_member: int, helps_per_day: int,
               buy_before_floor: bool, bind_new_helpers: bool) -> None:
        """What may change once the pool exists: never the prices, helpers or units."""
        if self.state != ActivityState.ACTIVE:
            raise FailedPrecondition("an ended bargain activity cannot change", reason=ACTIVITY_NOT_OPEN)
        self.terms = replace(self.terms, title=title or self.terms.title, ends_at=ends_at,
                             helps_per_member=helps_per_member, helps_per_day=helps_per_day,
                             buy_before_floor=buy_before_floor, bind_new_helpers=bind_new_helpers)

    def end(self, now: datetime) -> None:
        """Ends it now: no new bargains; open ones keep their own deadlines."""
        if self.state == ActivityState.ENDED:
            return
        self.state = ActivityState.ENDED
        if now < self.terms.ends_at:
            self.terms = replace(self.terms, ends_at=max(now, self.terms.starts_at))


# ---- the bargain --------------------------------------------------------------------

class BargainState(str, Enum):
    ACTIVE = "ACTIVE"  # helpers may cut
    SUCCEEDED = "SUCCEEDED"  # the floor is reached; the starter may order
    ORDERED = "ORDERED"  # an order was placed at the reached price (final)
    FAILED = "FAILED"  # the time limit passed without an order (final)


MACHINE = StateMachine("bargain", {
    BargainState.ACTIVE: {BargainState.SUCCEEDED, BargainState.ORDERED, BargainState.FAILED},
    BargainState.SUCCEEDED: {BargainState.ORDERED, BargainState.FAILED},
    BargainState.ORDERED: set(),
    BargainState.FAILED: set(),
}, refused_reason=BARGAIN_STATE)

OPEN_STATES = (BargainState.ACTIVE, BargainState.SUCCEEDED)


@dataclass(frozen=True)
class Help:
    member_id: str
    nickname: str  # masked
    cut: int
    at: datetime


@dataclass(frozen=True)
class Attribution:
    """The start's attribution, carried by every event of the bargain."""
    channel: str = ""
    persona_id: str = ""
    share_code: str = ""


# Events
@dataclass(frozen=True)
class BargainStarted:
    bargain_id: str


@dataclass(frozen=True)
class BargainHelped:
    bargain_id: str
    helper_id: str
    cut: int
    price: int


@dataclass(frozen=True)
class BargainSucceeded:
    bargain_id: str


@dataclass(frozen=True)
class BargainOrdered:
    bargain_id: str
    order_id: str


@dataclass(frozen=True)
class BargainFailed:
    bargain_id: str


@dataclass
class Bargain(Aggregate):
    id: str  # bgn_…
    merchant_id: str
    version: int
    activity_id: str
    member_id: str  # the starter
    sku_id: str
    start_price: int
    floor_price: int
    seed: int
    cuts: tuple[int, ...]
    state: BargainState
    started_at: datetime
    expires_at: datetime
    attribution: Attribution = Attribution()
    helps: tuple[Help, ...] = ()
    buy_before_floor: bool = False
    order_id: str = ""
    finished_at: datetime | None = None

    @classmethod
    def start(cls, *, bargain_id: str, activity: BargainActivity, member_id: str, seed: int, now: datetime,
              attribution: Attribution) -> "Bargain":
        t = activity.terms
        b = cls(id=bargain_id, merchant_id=activity.merchant_id, version=1, activity_id=activity.id,
                member_id=member_id, sku_id=t.sku_id, start_price=t.start_price, floor_price=t.floor_price,
                seed=seed, cuts=cuts(t.start_price, t.floor_price, t.helpers_needed, seed),
                state=BargainState.ACTIVE, started_at=now,
                expires_at=min(now + timedelta(seconds=t.time_limit_s), t.ends_at),
                attribution=attribution, buy_before_floor=t.buy_before_floor)
        b.record(BargainStarted(b.id))
        return b

    @property
    def helpers_needed(self) -> int:
        return len(self.cuts)

    @property
    def helped(self) -> int:
        return len(self.helps)

    @property
    def price(self) -> int:
        """The price reached: the start less the cuts taken so far."""
        return self.start_price - sum(self.cuts[:self.helped])

    def helped_by(self, member_id: str) -> bool:
        return any(h.member_id == member_id for h in self.helps)

    def seconds_left(self, now: datetime) -> int:
        if self.state not in OPEN_STATES:
            return 0
        return max(0, int((self.expires_at - now).total_seconds()))

    def refusal_to_help(self, member_id: str, now: datetime) -> FailedPrecondition | None:
        """Why `member_id` cannot help now, or None."""
        if member_id == self.member_id:
            return FailedPrecondition("you cannot help your own bargain", reason=OWN_BARGAIN)
        if self.helped_by(member_id):
            return FailedPrecondition("you have already helped this bargain", reason=ALREADY_HELPED)
        if self.state == BargainState.FAILED or (self.state == BargainState.ACTIVE and now >= self.expires_at):
            return FailedPrecondition("the bargain has expired", reason=BARGAIN_EXPIRED)
        if self.state != BargainState.ACTIVE or self.helped >= self.helpers_needed:
            return FailedPrecondition("the bargain needs no more help", reason=BARGAIN_FINISHED)
        return None

    def help(self, member_id: str, nickname: str, now: datetime) -> Help:
        """Takes the next cut of the sequence for `member_id`; the last needed help reaches
        the floor and the bargain SUCCEEDS in the same change."""
        refusal = self.refusal_to_help(member_id, now)
        if refusal is not None:
            raise refusal
        h = Help(member_id=member_id, nickname=nickname, cut=self.cuts[self.helped], at=now)
        self.helps = self.helps + (h,)
        self.record(BargainHelped(self.id, member_id, h.cut, self.price))
        if self.helped == self.helpers_needed:
            MACHINE.require(self.state, BargainState.SUCCEEDED)
            self.state = BargainState.SUCCEEDED
            self.record(BargainSucceeded(self.id))
        return h

    def require_orderable(self, now: datetime) -> None:
        """The starter may order: SUCCEEDED, or ACTIVE when the activity allows buying
        before the floor, and within the time limit."""
        if self.state == BargainState.ORDERED:
            raise FailedPrecondition("this bargain has been ordered", reason=BARGAIN_FINISHED)
        if self.state == BargainState.FAILED or now >= self.expires_at:
            raise FailedPrecondition("the bargain has expired", reason=BARGAIN_EXPIRED)
        if self.state == BargainState.ACTIVE and not self.buy_before_floor:
            raise FailedPrecondition("the bargain has not reached its floor price yet", reason=BARGAIN_NOT_REACHED)

    def ordered(self, order_id: str, now: datetime) -> None:
        self.require_orderable(now)
        MACHINE.require(self.state, BargainState.ORDERED)
        self.state, self.order_id, self.finished_at = BargainState.ORDERED, order_id, now
        self.record(BargainOrdered(self.id, order_id))

    def unclaim(self, order_id: str, state: BargainState) -> None:
        """Back to `state` when the order claimed for it was never written."""
        if self.state == BargainState.ORDERED and self.order_id == order_id and state in OPEN_STATES:
            self.state, self.order_id, self.finished_at = state, "", None

    def fail(self, now: datetime) -> bool:
        """FAILED once its time is up without an order; False when it is not due."""
        if self.state not in OPEN_STATES or now < self.expires_at:
            return False
        MACHINE.require(self.state, BargainState.FAILED)
        self.state, self.finished_at = BargainState.FAILED, now
        self.record(BargainFailed(self.id))
        return True


def mask_nickname(nickname: str) -> str:
    """A helper as others see them: the first character, then asterisks (张** / a***)."""
    name = (nickname or "").strip()
    if not name:
        return "***"
    return name[0] + "*" * min(max(len(name) - 1, 2), 4)
