"""What the content use cases need from storage and from other services. Every method
is async; implementations live outside the application layer and are wired in at start-up."""
from __future__ import annotations

from typing import Protocol

from services.content.domain.contents import Content
from services.content.domain.cohorts import FirstPurchase, PaidOrder
from services.content.domain.funnels import Counters, Funnel
from services.content.domain.personas import Persona


class PersonaRepository(Protocol):
    async def by_code(self, merchant_id: str, code: str) -> Persona | None: ...

    async def get(self, merchant_id: str, persona_id: str) -> Persona | None: ...

    async def page(self, merchant_id: str, after_id: str, limit: int, guide_id: str = "") -> list[Persona]:
        """Newest first (ids below `after_id` when given); only those assigned to `guide_id`
        when given."""

    async def add(self, persona: Persona) -> None:
        """Raises CodeTaken when the merchant already has a persona with its code."""

    async def save(self, persona: Persona) -> None:
        """Writes the change on the version it was read at and moves it to the next;
        raises StaleVersion when another writer came first."""


class ContentRepository(Protocol):
    async def by_code(self, merchant_id: str, code: str) -> Content | None: ...

    async def get(self, merchant_id: str, content_id: str) -> Content | None: ...

    async def page(self, merchant_id: str, persona_id: str, status: str, after_id: str,
                   limit: int, persona_ids: list[str] | None = None) -> list[Content]:
        """Newest first (ids below `after_id` when given); empty filters match all;
        `persona_ids` (when not None) limits it to those personas' content."""

    async def add(self, content: Content) -> None:
        """Raises CodeTaken when the merchant already has content with its code."""

    async def save(self, content: Content) -> None:
        """As PersonaRepository.save."""


class FunnelRepository(Protocol):
    async def save(self, funnel: Funnel) -> int:
        """Adds each recorded count to its day's bucket unless that event was counted
        there already (one conditional update each); how many were added now."""

    async def load(self, merchant_id: str, dimension: str, ref_id: str) -> Funnel:
        """The funnel with its lifetime counters (a funnel nothing was counted in has zeros
        and no currency)."""

    async def days(self, merchant_id: str, dimension: str, ref_id: str, from_day: str,
                   to_day: str) -> tuple[dict[str, Counters], str]:
        """The counters of each day in [from_day, to_day] something was counted on, and
        their currency ("" when none)."""

    async def any_counted(self, merchant_id: str, dimension: str, ref_id: str) -> bool: ...

    async def forget_member(self, merchant_id: str, member_id: str) -> int:
        """Removes the member's viewer and click causes from every bucket and guard of the
        merchant (the counts stay); how many marks went."""


class PurchaseRepository(Protocol):
    async def paid(self, merchant_id: str, order_id: str, paid_ms: int, paid: int, first: FirstPurchase) -> None:
        """Stores the paid order (idempotent) and lowers the member's first purchase to it
        when it is earlier than the one stored."""

    async def refunded(self, merchant_id: str, member_id: str, order_id: str, refund_id: str, amount: int) -> bool:
        """Adds the refund to its order once per refund id; False: counted already."""

    async def forget_member(self, merchant_id: str, member_id: str) -> int:
        """Removes the member's first purchase and order facts; how many order facts went."""

    async def firsts(self, merchant_id: str, from_month: str, to_month: str) -> list[FirstPurchase]:
        """Members whose first purchase falls in the months [from_month, to_month]."""

    async def orders(self, merchant_id: str, since_ms: int) -> list[PaidOrder]:
        """Paid orders from `since_ms` on."""


class Products(Protocol):
    async def missing_products(self, product_ids: list[str]) -> list[str]:
        """The ids that are not products of the caller's merchant."""
