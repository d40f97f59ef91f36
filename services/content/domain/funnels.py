"""Sales funnels per persona, content item, live session, channel and share code.

Counters live in daily buckets: one per (merchant, dimension, id, business day in the
merchant's time zone). A bucket holds counters; what makes each count apply once (the
cause it came from) is kept beside it by the repository, so a busy day's bucket stays
small however many events it counts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Iterable
from zoneinfo import ZoneInfo

from siyu_kit.aggregate import Aggregate
from siyu_kit.money import BASIS_POINTS

DEFAULT_TIME_ZONE = "Asia/Shanghai"
PERSONA, CONTENT, LIVE_SESSION, CHANNEL, SHARE_CODE = "persona", "content", "live_session", "channel", "share_code"
# Guide performance (domain/guide_performance.py): a guide's (stf_ id), a store's, and a
# guide's within a store ("<store>_<stf_ id>").
GUIDE, STORE, GUIDE_STORE = "guide", "store", "guide_store"
DIMENSIONS = (PERSONA, CONTENT, LIVE_SESSION, CHANNEL, SHARE_CODE, GUIDE, STORE, GUIDE_STORE)
# Attribution ids become part of a bucket key; anything else is not one of our ids.
_REF = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# A cause (event id, refund id, viewer, click id) names one count; it becomes a map key
# and part of a document id, so it never holds "." or "$".
_CAUSE = re.compile(r"^[A-Za-z0-9_:-]{1,96}$")
# The longest date range one funnel report covers.
MAX_REPORT_DAYS = 366
_COUNTER_NAMES = ("unique_viewers", "product_clicks", "orders", "paid_orders", "gmv", "refunds", "refunded",
                  "group_joins", "bargain_starts", "bargain_helps")


@dataclass(frozen=True)
class Counters:
    unique_viewers: int = 0
    product_clicks: int = 0
    orders: int = 0
    paid_orders: int = 0
    gmv: int = 0  # minor units, net of refunds
    refunds: int = 0  # refunds counted
    refunded: int = 0  # minor units the refunds sent back
    group_joins: int = 0  # paid orders that opened or joined a group
    bargain_starts: int = 0
    bargain_helps: int = 0

    def __add__(self, other: "Counters") -> "Counters":
        return Counters(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple())))

    def as_tuple(self) -> tuple[int, ...]:
        return (self.unique_viewers, self.product_clicks, self.orders, self.paid_orders, self.gmv, self.refunds,
                self.refunded, self.group_joins, self.bargain_starts, self.bargain_helps)

    def as_increments(self) -> dict[str, int]:
        """Only the counters this change moves, for one atomic increment."""
        return {n: v for n, v in zip(_COUNTER_NAMES, self.as_tuple()) if v}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return _COUNTER_NAMES

    @property
    def conversion_rate_bp(self) -> int:
        if self.unique_viewers <= 0 or self.paid_orders <= 0:
            return 0
        return self.paid_orders * BASIS_POINTS // self.unique_viewers


def order_placed() -> Counters:
    return Counters(orders=1)


def order_paid(payable_amount: int) -> Counters:
    if payable_amount < 0:
        raise ValueError("a paid order's payable amount cannot be negative")
    return Counters(paid_orders=1, gmv=payable_amount)


def order_refunded(amount: int, order_fully_refunded: bool) -> Counters:
    """A refund takes its amount off GMV; the refund that leaves nothing of the order's
    payment also takes the order off the paid orders."""
    if amount < 0:
        raise ValueError("a refund's amount cannot be negative")
    return Counters(paid_orders=-1 if order_fully_refunded else 0, gmv=-amount, refunds=1, refunded=amount)


def group_joined() -> Counters:
    """A member's paid order took a slot in a group (the leader's opened it)."""
    return Counters(group_joins=1)


def bargain_started() -> Counters:
    return Counters(bargain_starts=1)


def bargain_helped() -> Counters:
    return Counters(bargain_helps=1)


def viewed() -> Counters:
    return Counters(unique_viewers=1)


def clicked() -> Counters:
    return Counters(product_clicks=1)


def total(buckets: Iterable[Counters]) -> Counters:
    result = Counters()
    for bucket in buckets:
        result = result + bucket
    return result


def business_day(at: datetime, time_zone: str = DEFAULT_TIME_ZONE) -> str:
    """The merchant's calendar day (yyyy-mm-dd) of an instant."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(ZoneInfo(time_zone or DEFAULT_TIME_ZONE)).date().isoformat()


def bucket_key(merchant_id: str, dimension: str, ref_id: str, day: str) -> str:
    return f"{merchant_id}:{dimension}:{ref_id}:{day}"


def valid_cause(cause: str) -> bool:
    return bool(_CAUSE.match(cause or ""))


def attributed(persona_id: str, content_id: str, live_session_id: str, channel: str = "",
               share_code: str = "") -> list[tuple[str, str]]:
    """The (dimension, id) pairs an attribution feeds; empty or malformed ids feed nothing."""
    pairs = ((PERSONA, persona_id), (CONTENT, content_id), (LIVE_SESSION, live_session_id), (CHANNEL, channel),
             (SHARE_CODE, share_code))
    return [(dim, ref) for dim, ref in pairs if ref and _REF.match(ref)]


@dataclass(frozen=True)
class OrderCounted:
    """A change counted into one day of a funnel, at most once per cause (`event_id`: the
    order event, the refund, the viewer of the day, the click)."""
    event_id: str
    day: str
    change: Counters
    currency: str


Counted = OrderCounted


@dataclass
class Funnel(Aggregate):
    """One funnel of a merchant (a persona's, a content item's, a live session's, a
    channel's, a share code's): its counters are the sum of its daily buckets.

    Counting needs no read: `count` records the change, and the repository adds it to the
    day's bucket once per cause, so a replay or a concurrent delivery adds nothing.
    `version` is unused (0): counts are increments, never compare-and-set."""
    id: str  # dimension:ref_id
    merchant_id: str
    version: int
    dimension: str
    ref_id: str
    counters: Counters = field(default_factory=Counters)
    currency: str = ""

    @classmethod
    def of(cls, merchant_id: str, dimension: str, ref_id: str, counters: Counters | None = None,
           currency: str = "") -> "Funnel":
        if dimension not in DIMENSIONS:
            raise ValueError(f"no funnel dimension {dimension!r}")
        return cls(id=f"{dimension}:{ref_id}", merchant_id=merchant_id, version=0, dimension=dimension,
                   ref_id=ref_id, counters=counters or Counters(), currency=currency)

    def count(self, event_id: str, day: str, change: Counters, currency: str) -> None:
        """Count a change into `day` once per cause (the repository skips a cause already counted)."""
        if not valid_cause(event_id):
            raise ValueError(f"{event_id!r} cannot name a count")
        self.record(OrderCounted(event_id=event_id, day=day, change=change, currency=currency))


def funnels_of(merchant_id: str, persona_id: str, content_id: str, live_session_id: str, channel: str = "",
               share_code: str = "") -> list[Funnel]:
    """The funnels an attribution feeds."""
    return [Funnel.of(merchant_id, dimension, ref_id)
            for dimension, ref_id in attributed(persona_id, content_id, live_session_id, channel, share_code)]


# ---- reports ----------------------------------------------------------------------------

def parse_day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


def days(from_day: date, to_day: date) -> list[str]:
    """Every day from `from_day` through `to_day`, as yyyy-mm-dd."""
    return [(from_day + timedelta(days=i)).isoformat() for i in range((to_day - from_day).days + 1)]


@dataclass(frozen=True)
class DailyFunnel:
    rows: list[tuple[str, Counters]]  # one per day of the range, zeros where nothing was counted
    total: Counters


def daily(from_day: date, to_day: date, buckets: dict[str, Counters]) -> DailyFunnel:
    """The range's rows and their total. A viewer counts once per day, so the total's
    unique viewers are viewer-days."""
    rows = [(day, buckets.get(day, Counters())) for day in days(from_day, to_day)]
    return DailyFunnel(rows=rows, total=total(c for _, c in rows))
