"""What the content use cases need from storage and from other services. Every method
is async; implementations live outside the application layer and are wired in at start-up."""
from __future__ import annotations

from typing import Protocol

from services.content.domain.contents import Content
from services.content.domain.funnels import Funnel
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


class Products(Protocol):
    async def missing_products(self, product_ids: list[str]) -> list[str]:
        """The ids that are not products of the caller's merchant."""
