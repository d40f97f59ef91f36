"""What the live-session use cases need from storage and from the catalog (implemented in
services/content/adapters/live_store.py and adapters/live_catalog.py). The viewer figures
come through application/live_viewer_ports.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from services.content.domain.live_sessions import LiveSession, SkuPrice


class LiveSessionRepository(Protocol):
    async def get(self, merchant_id: str, session_id: str) -> LiveSession | None: ...

    async def by_key(self, merchant_id: str, idempotency_key: str) -> LiveSession | None: ...

    async def add(self, session: LiveSession) -> bool:
        """Inserts the new session; False when the merchant has one with its idempotency key."""

    async def save(self, session: LiveSession) -> None:
        """Writes the change and its room events on the version it was read at and moves it
        to the next; raises StaleVersion when another writer came first."""

    async def page(self, merchant_id: str, persona_ids: list[str] | None, state: str, below: str,
                   limit: int) -> list[LiveSession]:
        """Newest scheduled first by schedule key (below `below` when given); of these
        personas (None: any) and in `state` ("" any)."""

    async def of_persona(self, merchant_id: str, persona_id: str, states: tuple[str, ...],
                         limit: int) -> list[LiveSession]:
        """The persona's sessions in these states, soonest scheduled first."""

    async def of_product(self, merchant_id: str, product_id: str, states: tuple[str, ...],
                         limit: int) -> list[LiveSession]:
        """Sessions whose line-up has the product, in these states, soonest scheduled first."""


@dataclass(frozen=True)
class LikesDue:
    """A session whose like total has not been announced in its room."""
    merchant_id: str
    session_id: str
    likes: int
    announced: int
    announced_ms: int
    version: int = 1  # the session's version, which the announcement carries


class LiveLikes(Protocol):
    async def like(self, merchant_id: str, session_id: str, member_id: str, idempotency_key: str, taps: int,
                   now_ms: int) -> int | None:
        """Counts the taps once per (member, key) by one atomic increment of a LIVE
        session's counter; the total after it (a repeat: the total now). None when the
        session is not LIVE (nothing counted)."""

    async def due(self, limit: int) -> list[LikesDue]:
        """Sessions of every merchant with likes not announced yet."""

    async def announce(self, due: LikesDue, now_ms: int) -> bool:
        """One conditional update: the announced total becomes `due.likes` (when it is still
        `due.announced`) with the likes_changed room event in the session's outbox; False
        when another replica announced first."""


class LineUpCatalog(Protocol):
    async def sku_prices(self, sku_ids: list[str]) -> Mapping[str, SkuPrice]:
        """The merchant's SKUs among these (others are absent), with product and list price;
        UNAVAILABLE when the catalog cannot be asked."""

    async def flash_sales(self, session_id: str) -> list[Any]:
        """The catalog's flash sales bound to the session that have not ended, as the caller
        sees them."""
