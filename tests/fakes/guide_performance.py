"""In-memory stand-ins for the guide performance ports
(services.content.application.guide_performance_ports), over FakeFunnels' buckets."""
from __future__ import annotations

from services.content.domain.funnels import Counters
from services.content.domain.guide_performance import OrderCredit
from tests.fakes.content import FakeFunnels


class FakeOrderCredits:
    """First writer wins, as the unique `_id` of the MongoDB store; `adds` counts the tries."""

    def __init__(self):
        self.credits: dict[tuple[str, str], OrderCredit] = {}
        self.adds = 0

    async def get(self, merchant_id: str, order_id: str) -> OrderCredit | None:
        return self.credits.get((merchant_id, order_id))

    async def add(self, merchant_id: str, credit: OrderCredit) -> OrderCredit:
        self.adds += 1
        return self.credits.setdefault((merchant_id, credit.order_id), credit)


class FakeFunnelTotals:
    def __init__(self, funnels: FakeFunnels):
        self.funnels = funnels

    async def totals_page(self, merchant_id: str, dimension: str, from_day: str, to_day: str, after_ref: str,
                          limit: int, ref_prefix: str = "") -> tuple[list[tuple[str, Counters]], str]:
        totals: dict[str, Counters] = {}
        currency = ""
        for (mch, dim, ref, day), bucket in sorted(self.funnels.buckets.items()):
            if (mch, dim) != (merchant_id, dimension) or not from_day <= day <= to_day:
                continue
            if ref <= after_ref or not ref.startswith(ref_prefix):
                continue
            totals[ref] = totals.get(ref, Counters()) + bucket.counters
            currency = currency or bucket.currency
        return sorted(totals.items())[:limit], currency
