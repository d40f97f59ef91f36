"""What guide performance needs from storage beyond the funnels' own repository. The
MongoDB implementation is services/content/adapters/guide_performance_store.py; the
in-memory one tests/fakes/guide_performance.py."""
from __future__ import annotations

from typing import Awaitable, Callable, Protocol

from services.content.domain.engagement import ShareCode
from services.content.domain.funnels import Counters
from services.content.domain.guide_performance import OrderCredit


class OrderCredits(Protocol):
    async def get(self, merchant_id: str, order_id: str) -> OrderCredit | None: ...

    async def add(self, merchant_id: str, credit: OrderCredit) -> OrderCredit:
        """Stores the order's credit unless one is stored already; the one stored (the
        first writer's) either way."""


class FunnelTotals(Protocol):
    async def totals_page(self, merchant_id: str, dimension: str, from_day: str, to_day: str, after_ref: str,
                          limit: int, ref_prefix: str = "") -> tuple[list[tuple[str, Counters]], str]:
        """The funnels of one dimension with anything counted in [from_day, to_day]: the
        first `limit` by key above `after_ref` (keys starting with `ref_prefix` only, when
        given), each with its total over the range, and the currency ("" when none)."""


class ShareCodeLookup(Protocol):
    async def get(self, merchant_id: str, code: str) -> ShareCode | None: ...


# The persona running one of a merchant's live sessions ("" when it has no such session).
SessionPersona = Callable[[str, str], Awaitable[str]]
