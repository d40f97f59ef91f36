"""Sales funnels per persona, content item and live session.

Counters live in daily buckets: one per (merchant, dimension, id, business day in the
merchant's time zone). A day's bucket also remembers the events it has counted, which
keeps that memory bounded and gives per-day numbers for reports.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable
from zoneinfo import ZoneInfo

from siyu_kit.aggregate import Aggregate
from siyu_kit.money import BASIS_POINTS

DEFAULT_TIME_ZONE = "Asia/Shanghai"
PERSONA, CONTENT, LIVE_SESSION = "persona", "content", "live_session"
DIMENSIONS = (PERSONA, CONTENT, LIVE_SESSION)
# Attribution ids become part of a bucket key; anything else is not one of our ids.
_REF = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Counters:
    # Viewers and clicks come from engagement events (a later issue); until those are
    # consumed they are real fields that stay 0.
    unique_viewers: int = 0
    product_clicks: int = 0
    orders: int = 0
    paid_orders: int = 0
    gmv: int = 0  # minor units

    def __add__(self, other: "Counters") -> "Counters":
        return Counters(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple())))

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.unique_viewers, self.product_clicks, self.orders, self.paid_orders, self.gmv)

    def as_increments(self) -> dict[str, int]:
        """Only the counters this change moves, for one atomic increment."""
        names = ("unique_viewers", "product_clicks", "orders", "paid_orders", "gmv")
        return {n: v for n, v in zip(names, self.as_tuple()) if v}

    @property
    def conversion_rate_bp(self) -> int:
        if self.unique_viewers <= 0:
            return 0
        return self.paid_orders * BASIS_POINTS // self.unique_viewers


def order_placed() -> Counters:
    return Counters(orders=1)


def order_paid(payable_amount: int) -> Counters:
    if payable_amount < 0:
        raise ValueError("a paid order's payable amount cannot be negative")
    return Counters(paid_orders=1, gmv=payable_amount)


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


def attributed(persona_id: str, content_id: str, live_session_id: str) -> list[tuple[str, str]]:
    """The (dimension, id) pairs an order's attribution feeds; empty or malformed ids
    feed nothing."""
    pairs = ((PERSONA, persona_id), (CONTENT, content_id), (LIVE_SESSION, live_session_id))
    return [(dim, ref) for dim, ref in pairs if ref and _REF.match(ref)]


@dataclass(frozen=True)
class OrderCounted:
    """An order event counted into one day of a funnel, at most once per event id."""
    event_id: str
    day: str
    change: Counters
    currency: str


@dataclass
class Funnel(Aggregate):
    """One funnel of a merchant (a persona's, a content item's, a live session's): its
    lifetime counters are the sum of its daily buckets.

    Counting needs no read: `count` records the event, and the repository adds it to the
    day's bucket in one conditional update guarded by the event id, so a replay or a
    concurrent delivery adds nothing. `version` is unused (0): counts are increments,
    never compare-and-set."""
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
        """Count an order event into `day` (the repository skips an event already counted)."""
        self.record(OrderCounted(event_id=event_id, day=day, change=change, currency=currency))


def funnels_of(merchant_id: str, persona_id: str, content_id: str, live_session_id: str) -> list[Funnel]:
    """The funnels an order's attribution feeds."""
    return [Funnel.of(merchant_id, dimension, ref_id)
            for dimension, ref_id in attributed(persona_id, content_id, live_session_id)]
