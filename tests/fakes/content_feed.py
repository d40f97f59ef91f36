"""In-memory stand-ins for the follow, follower-count and published-content ports
(services.content.application.feed_ports), over the content fakes."""
from __future__ import annotations

import copy

from services.content.application.feed_ports import Follow
from services.content.domain.contents import Content
from tests.fakes.content import FakeContents, FakePersonas


class FakeContentsWithEvents(FakeContents):
    """FakeContents that keeps the events each save and add stored, as the outbox does."""

    def __init__(self):
        super().__init__()
        self.events: list = []

    async def add(self, item) -> None:
        await super().add(item)
        self.events += item.pull_events()

    async def save(self, item) -> None:
        self._compare_and_set(item)  # raises before anything is stored when it lost
        self.events += item.pull_events()
        self.items[item.id].pull_events()


class FakeFollows:
    """(merchant, member, persona) → [active, followed_ms]; `events` as the outbox gets them."""

    def __init__(self):
        self.rows: dict[tuple[str, str, str], list] = {}
        self.events: list[tuple[str, str, str]] = []

    async def follow(self, merchant_id: str, member_id: str, persona_id: str, now_ms: int) -> bool:
        row = self.rows.get((merchant_id, member_id, persona_id))
        if row is not None and row[0]:
            return False
        self.rows[(merchant_id, member_id, persona_id)] = [True, now_ms]
        self.events.append(("followed", member_id, persona_id))
        return True

    async def unfollow(self, merchant_id: str, member_id: str, persona_id: str, now_ms: int) -> bool:
        row = self.rows.get((merchant_id, member_id, persona_id))
        if row is None or not row[0]:
            return False
        row[0] = False
        self.events.append(("unfollowed", member_id, persona_id))
        return True

    async def is_following(self, merchant_id: str, member_id: str, persona_id: str) -> bool:
        row = self.rows.get((merchant_id, member_id, persona_id))
        return bool(row and row[0])

    async def page(self, merchant_id: str, member_id: str, below: str, limit: int) -> list[tuple[str, Follow]]:
        rows = sorted(((f"{ms:015d}:{p}", Follow(p, ms)) for (mch, mem, p), (active, ms) in self.rows.items()
                       if (mch, mem) == (merchant_id, member_id) and active), reverse=True, key=lambda r: r[0])
        return [r for r in rows if not below or r[0] < below][:limit]

    async def followed_ids(self, merchant_id: str, member_id: str, limit: int) -> list[str]:
        return [f.persona_id for _, f in await self.page(merchant_id, member_id, "", limit)]

    async def remove_member(self, merchant_id: str, member_id: str) -> list[str]:
        removed = []
        for key in [k for k in self.rows if k[:2] == (merchant_id, member_id)]:
            if self.rows.pop(key)[0]:
                removed.append(key[2])
        return removed


class FakeFollowerCounts:
    """The persona's follower_count in FakePersonas, moved by a guarded increment."""

    def __init__(self, personas: FakePersonas):
        self.personas = personas

    async def add(self, merchant_id: str, persona_id: str, delta: int) -> int:
        persona = self.personas.items.get(persona_id)
        if persona is None or persona.merchant_id != merchant_id:
            return 0
        if persona.follower_count + delta >= 0:
            persona.follower_count += delta
        return persona.follower_count


class FakePublished:
    def __init__(self, contents: FakeContents):
        self.contents = contents

    async def published(self, merchant_id: str, channel: str, persona_ids: list[str] | None, below: str,
                        limit: int) -> list[Content]:
        rows = sorted((c for c in self.contents.items.values() if c.merchant_id == merchant_id and c.is_public
                       and (not channel or channel in c.fields.visible_on)
                       and (persona_ids is None or c.fields.persona_id in persona_ids)
                       and (not below or c.feed_key < below)), key=lambda c: c.feed_key, reverse=True)
        return copy.deepcopy(rows[:limit])

    async def due(self, now_ms: int, limit: int) -> list[Content]:
        rows = sorted((c for c in self.contents.items.values() if c.status == "SCHEDULED"
                       and c.fields.publish_at_ms <= now_ms), key=lambda c: c.fields.publish_at_ms)
        return copy.deepcopy(rows[:limit])


class FakeCards:
    """The catalog's product cards: the ids it shows, as dicts."""

    def __init__(self, *shown: str):
        self.shown_ids = set(shown)

    async def shown(self, product_ids: list[str]) -> list[dict]:
        return [{"product_id": p} for p in product_ids if p in self.shown_ids]
