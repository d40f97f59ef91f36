"""What the bargain use cases need from outside: their stores, the help counters and the
member service's invitee binding."""
from __future__ import annotations

from datetime import datetime
from typing import Protocol

from services.order.domain.bargains import Bargain, BargainActivity


class BargainActivities(Protocol):
    async def get(self, merchant_id: str, activity_id: str) -> BargainActivity | None: ...

    async def by_key(self, merchant_id: str, idempotency_key: str) -> BargainActivity | None: ...

    async def add(self, activity: BargainActivity, idempotency_key: str) -> bool:
        """False when the key holds one already."""
        ...

    async def save(self, activity: BargainActivity) -> None:
        """StaleVersion when it changed since it was read."""
        ...

    async def page(self, merchant_id: str, before_id: str, limit: int, open_at: datetime | None = None,
                   ) -> list[BargainActivity]:
        """Newest first; with `open_at`, only ACTIVE ones whose window holds it."""
        ...


class Bargains(Protocol):
    async def get(self, merchant_id: str, bargain_id: str) -> Bargain | None: ...

    async def open_of(self, merchant_id: str, activity_id: str, member_id: str) -> Bargain | None:
        """The member's ACTIVE or SUCCEEDED bargain of the activity."""
        ...

    async def add(self, bargain: Bargain) -> bool:
        """False when the member has an open bargain of the activity (a unique key decides)."""
        ...

    async def save(self, bargain: Bargain) -> None:
        """One conditional update on the version read; StaleVersion when another writer won."""
        ...

    async def of_member(self, merchant_id: str, member_id: str, before_id: str, limit: int) -> list[Bargain]: ...

    async def due(self, now: datetime, limit: int) -> list[Bargain]:
        """ACTIVE or SUCCEEDED bargains of any merchant whose time is up."""
        ...


class HelpCounters(Protocol):
    async def take(self, merchant_id: str, key: str, limit: int) -> bool:
        """One conditional $inc of the counter `key` while it is below `limit`; False: reached."""
        ...

    async def give_back(self, merchant_id: str, key: str) -> None: ...


class Invitees(Protocol):
    async def bind(self, inviter_id: str, invitee_id: str, cause: str) -> bool:
        """Binds a new member as the inviter's invitee (the member service decides who is new);
        False when it refused. Raises when it cannot be asked."""
        ...
