"""What the recommendation and product-content use cases need from outside (implemented in
services/content/adapters/recommendation_store.py and adapters/catalog.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from services.content.domain.contents import Content


@dataclass(frozen=True)
class PaidOrderFact:
    """What a paid order adds to the recommendation data."""
    event_id: str
    merchant_id: str
    member_id: str
    paid_ms: int
    units: dict[str, int]  # product → units


class RecommendationStore(Protocol):
    async def record_paid(self, fact: PaidOrderFact) -> int:
        """Adds the order's co-purchase pairs, the member's purchases and the day's units
        sold, each once per event id (a replay adds nothing); how many documents counted it
        now."""

    async def co_purchased(self, merchant_id: str, product_ids: list[str]) -> dict[str, dict[str, int]]:
        """product → {other product → orders that had both}."""

    async def bought(self, merchant_id: str, member_id: str) -> dict[str, int]:
        """The member's purchased products → when last paid (epoch ms)."""

    async def units_sold(self, merchant_id: str, days: list[str]) -> list[dict[str, int]]:
        """Per day of `days` kept: product → units paid that day."""

    async def set_personalised(self, merchant_id: str, member_id: str, on: bool, version: int) -> bool:
        """Keeps the member's switch when `version` is newer than the one kept; False: an
        older or repeated event, nothing changed."""

    async def personalised(self, merchant_id: str, member_id: str) -> bool:
        """The member's switch (on unless an event said off)."""

    async def forget_member(self, merchant_id: str, member_id: str) -> None:
        """Removes the member's purchases and switch; repeats change nothing."""


class ProductReader(Protocol):
    async def shown(self, product_ids: list[str]) -> list[Any]:
        """The catalog's products as the caller may see them (a member: with their price),
        in order; those not shown are left out."""

    async def listed(self, category_id: str = "", tag: str = "", limit: int = 20) -> list[Any]:
        """Products on shelf in the category (and its sub-categories) or with the tag, best
        sellers first, as the caller sees them."""


class ProductContentsStore(Protocol):
    async def linking(self, merchant_id: str, channel: str, product_id: str, below: str,
                      limit: int) -> list[Content]:
        """PUBLISHED content visible on `channel` that links the product, newest first by
        feed key, below `below` when given."""
