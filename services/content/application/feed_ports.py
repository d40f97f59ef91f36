"""What the persona, follow, content-page and feed use cases need from outside
(implemented in services/content/adapters/feed_store.py and adapters/catalog.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from services.content.domain.contents import Content


@dataclass(frozen=True)
class Follow:
    persona_id: str
    followed_ms: int


class FollowRepository(Protocol):
    async def follow(self, merchant_id: str, member_id: str, persona_id: str, now_ms: int) -> bool:
        """Marks the member as following (one document per member and persona, unique),
        with PersonaFollowed in the same write; False when they followed it already."""

    async def unfollow(self, merchant_id: str, member_id: str, persona_id: str, now_ms: int) -> bool:
        """One conditional update from following to not, with PersonaUnfollowed; False
        when they did not follow it."""

    async def is_following(self, merchant_id: str, member_id: str, persona_id: str) -> bool: ...

    async def followed_ids(self, merchant_id: str, member_id: str, limit: int) -> list[str]:
        """The personas the member follows, most recently followed first."""

    async def page(self, merchant_id: str, member_id: str, below: str, limit: int) -> list[tuple[str, Follow]]:
        """(position, follow), most recently followed first, below the position when given."""

    async def remove_member(self, merchant_id: str, member_id: str) -> list[str]:
        """Deletes every follow of the member; the personas they were following (each
        returned once per follow that was active, by a conditional delete)."""


class FollowerCounts(Protocol):
    async def add(self, merchant_id: str, persona_id: str, delta: int) -> int:
        """One conditional increment (+1 or -1, never below 0); the count after it."""


class PublishedContents(Protocol):
    async def published(self, merchant_id: str, channel: str, persona_ids: list[str] | None, below: str,
                        limit: int) -> list[Content]:
        """PUBLISHED content visible on `channel` ("" any), of these personas (None: any),
        newest first by feed key, below `below` when given."""

    async def due(self, now_ms: int, limit: int) -> list[Content]:
        """SCHEDULED content of every merchant whose publish_at has come, earliest first."""


class ProductCards(Protocol):
    async def shown(self, product_ids: list[str]) -> list[Any]:
        """The catalog's product messages for these ids, in order, as the caller (a member:
        with their price) may see them; ids the catalog does not show are left out."""


class MemberDataPart(Protocol):
    """One kind of data the content service keeps about a member: its section of the
    member's data export, and its erasure."""
    name: str

    async def export(self, merchant_id: str, member_id: str) -> Any:
        """Plain JSON values."""

    async def erase(self, merchant_id: str, member_id: str) -> None:
        """Removes what it keeps; repeats change nothing."""
