"""Personas run by guides, members following them, the persona page, content detail with
the member's prices, the member's feed and the publishing of scheduled content."""
from __future__ import annotations

import asyncio
import re
from typing import Any

from siyu_kit import context, paging, retry
from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import FieldViolation, InvalidArgument, NotFound, Violations
from siyu_kit.ids import is_id

from services.content.application.clock import Clock, now_ms
from services.content.application.feed_ports import (Follow, FollowerCounts, FollowRepository, ProductCards,
                                                     PublishedContents)
from services.content.application.ports import ContentRepository, PersonaRepository
from services.content.domain import feed as feed_rules
from services.content.domain.contents import Content
from services.content.domain.personas import GUIDES_MAX, Persona, check_ids

# The feed reads at most this many of a member's follows (most recent first).
FOLLOWS_READ = 1000
# The recommended stream skips followed personas' content; it looks at this many items
# per page at most before it stops and goes on from there next page.
RECOMMENDED_SCAN = 500
_FOLLOW_POSITION = re.compile(r"^[0-9]{15}:per_[0-9A-HJKMNP-TV-Z]{26}$")


def _require_id(value: str, prefix: str, field: str) -> None:
    if not is_id(value, prefix):
        raise InvalidArgument("the request has invalid fields", reason="INVALID_FIELDS",
                              violations=[FieldViolation(field, f"a {prefix}_ id")])


def _persona_not_found(field: str = "persona_id") -> NotFound:
    return NotFound("no such persona", violations=[FieldViolation(field, "no such persona")])


class PersonaGuides:
    """OPERATOR assigns the GUIDE staff users who run a persona."""

    def __init__(self, personas: PersonaRepository, clock: Clock = now_ms):
        self.personas = personas
        self.clock = clock

    async def assign(self, persona_id: str, guide_ids: tuple[str, ...]) -> Persona:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(is_id(persona_id, "per"), "persona_id", "a per_ id")
        check_ids(guide_ids, "stf", "guide_ids", GUIDES_MAX, v)
        v.raise_if_any()

        async def attempt() -> Persona:
            persona = await self.personas.get(ctx.merchant_id, persona_id)
            if persona is None:
                raise _persona_not_found()
            if persona.assign_guides(tuple(guide_ids), self.clock()):
                await self.personas.save(persona)
            return persona

        return await retry.on_conflict(attempt, gave_up="the persona was changed concurrently; try again",
                                       reason="VERSION_CONFLICT")


class Follows:
    """Members follow and unfollow personas. The follow document is the truth; the
    persona's follower count moves by one conditional increment after each real change."""

    def __init__(self, personas: PersonaRepository, follows: FollowRepository, counts: FollowerCounts,
                 clock: Clock = now_ms):
        self.personas = personas
        self.follows = follows
        self.counts = counts
        self.clock = clock

    async def _persona(self, merchant_id: str, persona_id: str) -> Persona:
        _require_id(persona_id, "per", "persona_id")
        persona = await self.personas.get(merchant_id, persona_id)
        if persona is None:
            raise _persona_not_found()
        return persona

    async def follow(self, persona_id: str) -> tuple[bool, int]:
        ctx = context.current()
        member_id = ctx.require_member()
        persona = await self._persona(ctx.merchant_id, persona_id)
        if not await self.follows.follow(ctx.merchant_id, member_id, persona_id, self.clock()):
            return False, persona.follower_count
        return True, await self.counts.add(ctx.merchant_id, persona_id, +1)

    async def unfollow(self, persona_id: str) -> tuple[bool, int]:
        ctx = context.current()
        member_id = ctx.require_member()
        persona = await self._persona(ctx.merchant_id, persona_id)
        if not await self.follows.unfollow(ctx.merchant_id, member_id, persona_id, self.clock()):
            return False, persona.follower_count
        return True, await self.counts.add(ctx.merchant_id, persona_id, -1)

    async def mine(self, page_size: int, page_token: str) -> tuple[list[tuple[Persona, Follow]], str]:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="my-follows")
        below = paging.decode_cursor(v, page_token, fp, _FOLLOW_POSITION)
        v.raise_if_any()
        rows = await self.follows.page(ctx.merchant_id, member_id, below, size + 1)
        rows, token = paging.next_page(rows, size, fp, position=lambda row: row[0])
        personas = await asyncio.gather(*(self.personas.get(ctx.merchant_id, f.persona_id) for _, f in rows))
        return [(p, f) for p, (_, f) in zip(personas, rows) if p is not None], token


class ContentPages:
    """What members see of personas and content: only PUBLISHED content visible on the
    caller's channel."""

    def __init__(self, personas: PersonaRepository, contents: ContentRepository, published: PublishedContents,
                 follows: FollowRepository, products: ProductCards | None = None):
        self.personas = personas
        self.contents = contents
        self.published = published
        self.follows = follows
        self.products = products

    async def persona_page(self, persona_id: str, page_size: int,
                           page_token: str) -> tuple[Persona, bool, list[Content], str, list[Any]]:
        ctx = context.current()
        merchant_id = ctx.require_merchant()
        v = Violations()
        v.check(is_id(persona_id, "per"), "persona_id", "a per_ id")
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="persona-page", persona_id=persona_id, channel=ctx.channel)
        below = paging.decode_cursor(v, page_token, fp, feed_rules.KEY)
        v.raise_if_any()
        persona = await self.personas.get(merchant_id, persona_id)
        if persona is None:
            raise _persona_not_found()
        following = (ctx.caller_kind == "member"
                     and await self.follows.is_following(merchant_id, ctx.caller_id, persona_id))
        rows, featured = await asyncio.gather(
            self.published.published(merchant_id, ctx.channel, [persona_id], below, size + 1),
            self._products(persona.fields.featured_product_ids))
        rows, token = paging.next_page(rows, size, fp, position=lambda c: c.feed_key)
        return persona, following, rows, token, featured

    async def detail(self, content_id: str) -> tuple[Content, Persona | None, list[Any]]:
        ctx = context.current()
        ctx.require_member()
        _require_id(content_id, "cnt", "content_id")
        content = await self.contents.get(ctx.merchant_id, content_id)
        if content is None or not content.visible_to(ctx.channel):
            raise NotFound("no such content", violations=[FieldViolation("content_id", "no such content")])
        persona, products = await asyncio.gather(self.personas.get(ctx.merchant_id, content.fields.persona_id),
                                                 self._products(content.fields.product_ids))
        return content, persona, products

    async def _products(self, product_ids: tuple[str, ...]) -> list[Any]:
        if self.products is None or not product_ids:
            return []
        return await self.products.shown(list(product_ids))


class Feeds:
    """The member's feed (domain/feed.py has the mixing and the positions)."""

    def __init__(self, personas: PersonaRepository, follows: FollowRepository, published: PublishedContents,
                 clock: Clock = now_ms):
        self.personas = personas
        self.follows = follows
        self.published = published
        self.clock = clock

    async def page(self, page_size: int, page_token: str) -> tuple[list[tuple[Content, Persona | None, str]], str]:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="feed", channel=ctx.channel)
        raw = paging.decode_cursor(v, page_token, fp, feed_rules.POSITION)
        v.raise_if_any()
        at = feed_rules.Position.parse(raw) if raw else feed_rules.Position()
        top = feed_rules.ceiling(self.clock())
        followed = await self.follows.followed_ids(ctx.merchant_id, member_id, FOLLOWS_READ)
        followed_set = set(followed)
        followed_rows = (await self.published.published(ctx.merchant_id, ctx.channel, followed,
                                                        at.followed or top, size + 1)) if followed else []
        recommended, scanned_to = await self._recommended(ctx.merchant_id, ctx.channel, followed_set,
                                                          at.recommended or top, size + 1)
        page = feed_rules.mix([feed_rules.Candidate(c.feed_key, c) for c in followed_rows],
                              [feed_rules.Candidate(c.feed_key, c) for c in recommended], size, at, top, scanned_to)
        persona_ids = sorted({c.fields.persona_id for c, _ in page.items})
        personas = dict(zip(persona_ids, await asyncio.gather(
            *(self.personas.get(ctx.merchant_id, p) for p in persona_ids))))
        token = paging.encode_cursor(fp, page.next.as_text()) if page.next else ""
        return [(c, personas.get(c.fields.persona_id), reason) for c, reason in page.items], token

    async def _recommended(self, merchant_id: str, channel: str, followed: set[str], below: str,
                           want: int) -> tuple[list[Content], str]:
        """Recent content of personas the member does not follow; the last key looked at
        when the bounded scan stopped first ("" when it found enough or reached the end)."""
        found: list[Content] = []
        scanned, batch = 0, 100
        while scanned < RECOMMENDED_SCAN:
            rows = await self.published.published(merchant_id, channel, None, below, batch)
            scanned += len(rows)
            found += [c for c in rows if c.fields.persona_id not in followed]
            if len(found) >= want:
                return found[:want], ""
            if len(rows) < batch:
                return found, ""
            below = rows[-1].feed_key
        return found, below


class Publishing:
    """The publishing job: SCHEDULED content whose time has come becomes PUBLISHED, each
    item on the version it was read at, so with several replicas exactly one publishes it
    (and stores ContentPublished with it); the others lose the compare-and-set and skip."""

    def __init__(self, contents: ContentRepository, published: PublishedContents, clock: Clock = now_ms,
                 batch: int = 100):
        self.contents = contents
        self.published = published
        self.clock = clock
        self.batch = batch

    async def publish_due(self) -> int:
        now = self.clock()
        count = 0
        for content in await self.published.due(now, self.batch):
            if not content.publish_due(now):
                continue
            try:
                await self.contents.save(content)
            except StaleVersion:
                continue  # another replica (or a staff edit) changed it first
            count += 1
        return count
