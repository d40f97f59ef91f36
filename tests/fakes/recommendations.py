"""In-memory stand-ins for the recommendation ports
(services.content.application.recommendation_ports)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from siyu_kit.errors import Unavailable

from services.content.application.recommendation_ports import PaidOrderFact
from services.content.domain import recommendations as rules


class FakeRecommendationStore:
    """The kept data in dicts, each event applied once per event id (as the marks do).
    `failing` names the reads that raise UNAVAILABLE."""

    def __init__(self):
        self.counted: set[tuple[str, str]] = set()  # (merchant, event id)
        self.pairs: dict[tuple[str, str], dict[str, int]] = {}
        self.purchases: dict[tuple[str, str], dict[str, int]] = {}  # → product: last paid ms
        self.units: dict[tuple[str, str], dict[str, int]] = {}  # (merchant, day) → product: units
        self.switches: dict[tuple[str, str], tuple[bool, int]] = {}
        self.failing: set[str] = set()

    def _read(self, what: str) -> None:
        if what in self.failing:
            raise Unavailable(f"{what} is away", reason="STORAGE_UNAVAILABLE")

    async def record_paid(self, fact: PaidOrderFact) -> int:
        if (fact.merchant_id, fact.event_id) in self.counted:
            return 0
        self.counted.add((fact.merchant_id, fact.event_id))
        for product, others in rules.pairs(fact.units).items():
            row = self.pairs.setdefault((fact.merchant_id, product), {})
            for other in others:
                row[other] = row.get(other, 0) + 1
        if fact.member_id:
            self.purchases.setdefault((fact.merchant_id, fact.member_id), {}).update(
                {p: fact.paid_ms for p in fact.units})
        day = self.units.setdefault((fact.merchant_id, rules.day_of(fact.paid_ms)), {})
        for product, n in fact.units.items():
            day[product] = day.get(product, 0) + n
        return 1

    async def co_purchased(self, merchant_id: str, product_ids: list[str]) -> dict[str, dict[str, int]]:
        self._read("pairs")
        return {p: dict(self.pairs[(merchant_id, p)]) for p in product_ids if (merchant_id, p) in self.pairs}

    async def bought(self, merchant_id: str, member_id: str) -> dict[str, int]:
        self._read("purchases")
        return dict(self.purchases.get((merchant_id, member_id), {}))

    async def units_sold(self, merchant_id: str, days: list[str]) -> list[dict[str, int]]:
        self._read("units")
        return [dict(self.units[(merchant_id, d)]) for d in days if (merchant_id, d) in self.units]

    async def set_personalised(self, merchant_id: str, member_id: str, on: bool, version: int) -> bool:
        kept = self.switches.get((merchant_id, member_id))
        if kept is not None and kept[1] >= version:
            return False
        self.switches[(merchant_id, member_id)] = (on, version)
        return True

    async def personalised(self, merchant_id: str, member_id: str) -> bool:
        self._read("switch")
        return self.switches.get((merchant_id, member_id), (True, 0))[0]

    async def forget_member(self, merchant_id: str, member_id: str) -> None:
        self.purchases.pop((merchant_id, member_id), None)
        self.switches.pop((merchant_id, member_id), None)


@dataclass
class Card:
    """What the use cases read of a catalog product."""
    product_id: str
    title: str = ""
    category_id: str = ""
    tags: tuple[str, ...] = ()


@dataclass
class FakeCatalog:
    """Products by id; `hidden` ones are not shown; `down` makes every call UNAVAILABLE and
    `slow_s` makes every call take that long."""
    products: dict[str, Card] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)
    down: bool = False
    slow_s: float = 0.0
    calls: int = 0

    def add(self, product_id: str, title: str = "", category_id: str = "", tags: tuple[str, ...] = ()) -> Card:
        self.products[product_id] = Card(product_id, title or product_id, category_id, tags)
        return self.products[product_id]

    async def _call(self) -> None:
        self.calls += 1
        if self.slow_s:
            await asyncio.sleep(self.slow_s)
        if self.down:
            raise Unavailable("the catalog is away", reason="CATALOG_UNAVAILABLE")

    async def shown(self, product_ids: list[str]) -> list[Card]:
        await self._call()
        return [self.products[p] for p in product_ids if p in self.products and p not in self.hidden]

    async def listed(self, category_id: str = "", tag: str = "", limit: int = 20) -> list[Card]:
        await self._call()
        found = [c for c in self.products.values() if c.product_id not in self.hidden
                 and ((category_id and c.category_id == category_id) or (tag and tag in c.tags))]
        return found[:limit]
