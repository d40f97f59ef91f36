"""In-memory stand-ins for the content service's ports (services.content.application.ports)."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from siyu_kit.errors import Unavailable
from siyu_kit.ids import new_id

from tests.fakes.callers import caller  # noqa: F401 - the tests of this service import it from here
from tests.fakes.store import VersionedStore

from services.content.domain.contents import Content
from services.content.domain.errors import CodeTaken
from services.content.domain.cohorts import FirstPurchase, PaidOrder
from services.content.domain.funnels import Counters, Funnel, OrderCounted
from services.content.domain.personas import Persona




class _ByCode(VersionedStore):
    """Aggregates with a merchant-unique code. `codes_taken_by_others` makes that many adds
    lose to a writer that created the same code first."""

    def __init__(self):
        super().__init__()
        self.codes_taken_by_others = 0

    def _find(self, merchant_id: str, **match):
        for item in self.items.values():
            if item.merchant_id == merchant_id and all(getattr(item.fields, k) == v for k, v in match.items()):
                return copy.deepcopy(item)
        return None

    async def by_code(self, merchant_id: str, code: str):
        return self._find(merchant_id, code=code)

    async def get(self, merchant_id: str, item_id: str):
        item = self.items.get(item_id)
        return copy.deepcopy(item) if item is not None and item.merchant_id == merchant_id else None

    async def add(self, item) -> None:
        if self.codes_taken_by_others:
            # Another writer created the same code just before: it is there now.
            self.codes_taken_by_others -= 1
            other = copy.deepcopy(item)
            other.id = new_id(item.id.split("_")[0])
            self.items[other.id] = other
            raise CodeTaken(item.fields.code)
        if self._find(item.merchant_id, code=item.fields.code) is not None:
            raise CodeTaken(item.fields.code)
        self.items[item.id] = copy.deepcopy(item)

    async def save(self, item) -> None:
        self._compare_and_set(item)


class FakePersonas(_ByCode):
    items: dict[str, Persona]

    async def page(self, merchant_id: str, after_id: str, limit: int, guide_id: str = "") -> list[Persona]:
        rows = sorted((p for p in self.items.values() if p.merchant_id == merchant_id
                       and (not guide_id or guide_id in p.guide_ids)
                       and (not after_id or p.id < after_id)), key=lambda p: p.id, reverse=True)
        return copy.deepcopy(rows[:limit])


class FakeContents(_ByCode):
    items: dict[str, Content]

    async def page(self, merchant_id: str, persona_id: str, status: str, after_id: str,
                   limit: int, persona_ids: list[str] | None = None) -> list[Content]:
        rows = sorted((c for c in self.items.values() if c.merchant_id == merchant_id
                       and (not persona_id or c.fields.persona_id == persona_id)
                       and (persona_id or persona_ids is None or c.fields.persona_id in persona_ids)
                       and (not status or c.status == status) and (not after_id or c.id < after_id)),
                      key=lambda c: c.id, reverse=True)
        return copy.deepcopy(rows[:limit])


@dataclass
class Bucket:
    counters: Counters = field(default_factory=Counters)
    currency: str = ""
    seen: set[str] = field(default_factory=set)


class FakeFunnels:
    """Daily buckets keyed (merchant, dimension, ref id, day); each remembers the causes
    it counted. `saved` keeps every count handed to `save`, counted or not."""

    def __init__(self):
        self.buckets: dict[tuple[str, str, str, str], Bucket] = {}
        self.saved: list[OrderCounted] = []

    async def save(self, funnel: Funnel) -> int:
        counted = 0
        for event in funnel.pull_events():
            self.saved.append(event)
            bucket = self.buckets.setdefault((funnel.merchant_id, funnel.dimension, funnel.ref_id, event.day),
                                             Bucket())
            if event.event_id in bucket.seen:
                continue
            bucket.seen.add(event.event_id)
            bucket.counters = bucket.counters + event.change
            bucket.currency = event.currency
            counted += 1
        return counted

    async def load(self, merchant_id: str, dimension: str, ref_id: str) -> Funnel:
        total, currency = Counters(), ""
        for (mch, dim, ref, _), bucket in sorted(self.buckets.items()):
            if (mch, dim, ref) == (merchant_id, dimension, ref_id):
                total = total + bucket.counters
                currency = currency or bucket.currency
        return Funnel.of(merchant_id, dimension, ref_id, total, currency)

    async def days(self, merchant_id: str, dimension: str, ref_id: str, from_day: str,
                   to_day: str) -> tuple[dict[str, Counters], str]:
        found = {day: b for (mch, dim, ref, day), b in self.buckets.items()
                 if (mch, dim, ref) == (merchant_id, dimension, ref_id) and from_day <= day <= to_day}
        return {day: b.counters for day, b in found.items()}, next((b.currency for b in found.values()), "")

    async def any_counted(self, merchant_id: str, dimension: str, ref_id: str) -> bool:
        return any(key[:3] == (merchant_id, dimension, ref_id) for key in self.buckets)

    async def forget_member(self, merchant_id: str, member_id: str) -> int:
        removed = 0
        for key, bucket in self.buckets.items():
            if key[0] == merchant_id:
                named = {c for c in bucket.seen if c == f"v:{member_id}" or c.startswith(f"c:{member_id}-")}
                bucket.seen -= named
                removed += len(named)
        return removed


class FakePurchases:
    """Order facts and first purchases keyed by (merchant, order) and (merchant, member)."""

    def __init__(self):
        self.facts: dict[tuple[str, str], dict] = {}
        self.first: dict[tuple[str, str], tuple[int, FirstPurchase]] = {}

    async def paid(self, merchant_id: str, order_id: str, paid_ms: int, paid: int, first: FirstPurchase) -> None:
        fact = self.facts.setdefault((merchant_id, order_id), {"refunds": {}})
        fact.update(member_id=first.member_id, paid_ms=paid_ms, month=first.month, paid=paid)
        known = self.first.get((merchant_id, first.member_id))
        if known is None or known[0] > paid_ms:
            self.first[(merchant_id, first.member_id)] = (paid_ms, first)

    async def refunded(self, merchant_id: str, member_id: str, order_id: str, refund_id: str, amount: int) -> bool:
        fact = self.facts.setdefault((merchant_id, order_id), {"refunds": {}, "member_id": member_id})
        if refund_id in fact["refunds"]:
            return False
        fact["refunds"][refund_id] = amount
        return True

    async def forget_member(self, merchant_id: str, member_id: str) -> int:
        self.first.pop((merchant_id, member_id), None)
        gone = [k for k, f in self.facts.items() if k[0] == merchant_id and f.get("member_id") == member_id]
        for key in gone:
            del self.facts[key]
        return len(gone)

    async def firsts(self, merchant_id: str, from_month: str, to_month: str) -> list[FirstPurchase]:
        return [f for (mch, _), (_, f) in self.first.items() if mch == merchant_id and from_month <= f.month <= to_month]

    async def orders(self, merchant_id: str, since_ms: int) -> list[PaidOrder]:
        return [PaidOrder(member_id=f["member_id"], order_id=order_id, month=f["month"], paid=f["paid"],
                          refunded=sum(f["refunds"].values()))
                for (mch, order_id), f in self.facts.items()
                if mch == merchant_id and "paid_ms" in f and f["paid_ms"] >= since_ms]


class FakeProducts:
    """The catalog as content sees it: the product ids that exist."""

    def __init__(self, *product_ids: str, down: bool = False):
        self.known = set(product_ids)
        self.down = down
        self.asked: list[list[str]] = []

    async def missing_products(self, product_ids: list[str]) -> list[str]:
        self.asked.append(list(product_ids))
        if self.down:
            raise Unavailable("the linked products could not be checked; try again", reason="CATALOG_UNAVAILABLE")
        return [p for p in product_ids if p not in self.known]
