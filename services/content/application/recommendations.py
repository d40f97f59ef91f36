"""A member's recommendations and the content that features a product.

Recommendations read only what the order, follow and profile events keep (purchases,
co-purchase pairs, units sold by day, the personalisation switch) plus the catalog for the
products as this member sees them. No part may block the answer: each read has a deadline
(READ_TIMEOUT_S) and a part that fails or is late is left out, down to the best sellers of
the local store with bare product ids when the catalog cannot be asked at all."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, TypeVar

from siyu_kit import context, logging as slog, paging
from siyu_kit.errors import Violations
from siyu_kit.ids import is_id

from services.content.application.clock import Clock, now_ms
from services.content.application.feed_ports import FollowRepository
from services.content.application.ports import PersonaRepository
from services.content.application.recommendation_ports import (PaidOrderFact, ProductContentsStore, ProductReader,
                                                               RecommendationStore)
from services.content.domain import feed as feed_rules
from services.content.domain import recommendations as rules
from services.content.domain.contents import Content
from services.content.domain.personas import Persona

log = slog.get("siyu.content.recommendations")

T = TypeVar("T")

# How long one part of a recommendation read may take before it is left out.
READ_TIMEOUT_S = 1.5
# Followed personas whose featured products are read (most recently followed first).
FOLLOWS_READ = 20
# Products each affinity look-up in the catalog returns.
AFFINITY_CANDIDATES = 20


async def _soft(what: str, call: Awaitable[T], default: T, timeout_s: float = READ_TIMEOUT_S) -> T:
    """The part's answer, or `default` when it fails or is late (logged, never raised)."""
    try:
        return await asyncio.wait_for(call, timeout_s)
    except asyncio.CancelledError:
        raise
    except Exception as error:  # noqa: BLE001 - any failing part is left out, never the whole answer
        log.warning("recommendations.part_unavailable", part=what, error=type(error).__name__)
        return default


class Recommendations:
    def __init__(self, store: RecommendationStore, follows: FollowRepository, personas: PersonaRepository,
                 products: ProductReader, clock: Clock = now_ms, timeout_s: float = READ_TIMEOUT_S):
        self.store = store
        self.follows = follows
        self.personas = personas
        self.products = products
        self.clock = clock
        self.timeout_s = timeout_s

    def _soft(self, what: str, call: Awaitable[T], default: T) -> Awaitable[T]:
        return _soft(what, call, default, self.timeout_s)

    # ---- kept from events ----------------------------------------------------------------
    async def record_paid(self, fact: PaidOrderFact) -> int:
        return await self.store.record_paid(fact)

    async def record_switch(self, merchant_id: str, member_id: str, on: bool, version: int) -> bool:
        return await self.store.set_personalised(merchant_id, member_id, on, version)

    async def forget_member(self, merchant_id: str, member_id: str) -> None:
        await self.store.forget_member(merchant_id, member_id)

    # ---- the read --------------------------------------------------------------------------
    async def mine(self, page_size: int) -> tuple[list[tuple[Any, rules.Pick, str]], bool]:
        """(product, pick, reason text) for the calling member, and whether personalised;
        the product is None when the catalog could not be asked (best sellers by id only)."""
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(0 <= page_size <= rules.PAGE_MAX, "page_size", f"1 to {rules.PAGE_MAX}, or 0 for {rules.PAGE_DEFAULT}")
        v.raise_if_any()
        size = page_size or rules.PAGE_DEFAULT
        merchant_id, now = ctx.merchant_id, self.clock()
        # Unknown (the store is away) counts as off: history is used only when allowed.
        personal, days = await asyncio.gather(
            self._soft("switch", self.store.personalised(merchant_id, member_id), False),
            self._soft("popular", self.store.units_sold(merchant_id, rules.window(now)), []))
        popular = rules.popular(rules.add_units(days))
        # Read more than the page: the catalog may not show some of them.
        want = size * 2 + 10
        if not personal:
            picks = rules.popular_only(popular, want)
            return await self._shown(picks, size, {}, {}, popular=popular), False
        bought, featured = await asyncio.gather(
            self._soft("purchases", self.store.bought(merchant_id, member_id), {}),
            self._soft("follows", self._featured(merchant_id, member_id), []))
        anchors = rules.anchors(bought, now)
        co, history = await asyncio.gather(
            self._soft("co-purchase", self.store.co_purchased(merchant_id, anchors), {}),
            self._soft("catalog", self.products.shown(anchors), []) if anchors else _nothing())
        shapes = [_shape(p) for p in history]
        candidates = await self._affinity_candidates(shapes)
        picks = rules.mix(bought_with=rules.bought_with(anchors, co), followed=rules.followed(featured),
                          affinity=rules.affinity(shapes, [_shape(p) for p in candidates]), popular=popular,
                          recent=rules.recent(bought, now), limit=want)
        titles = {p.product_id: p.title for p in history}
        names = {f.persona_id: f.name for f in featured}
        # Products already read with this member's prices need no second look-up.
        known = {p.product_id: p for p in [*history, *candidates]}
        return await self._shown(picks, size, titles, names, known, popular), True

    async def _featured(self, merchant_id: str, member_id: str) -> list[rules.Featured]:
        persona_ids = await self.follows.followed_ids(merchant_id, member_id, FOLLOWS_READ)
        personas = await asyncio.gather(*(self.personas.get(merchant_id, p) for p in persona_ids))
        return [rules.Featured(p.id, p.fields.name, tuple(p.fields.featured_product_ids))
                for p in personas if p is not None and p.fields.featured_product_ids]

    async def _affinity_candidates(self, history: list[rules.Shape]) -> list[Any]:
        """Products of the member's top category and top tag as the catalog lists them."""
        category, tag = rules.top_category(history), rules.top_tag(history)
        by_category = self.products.listed(category_id=category, limit=AFFINITY_CANDIDATES) if category else None
        by_tag = self.products.listed(tag=tag, limit=AFFINITY_CANDIDATES) if tag else None
        lists = await asyncio.gather(*(self._soft("catalog", call, []) for call in (by_category, by_tag) if call))
        return [p for found in lists for p in found]

    async def _shown(self, picks: list[rules.Pick], size: int, titles: dict[str, str], names: dict[str, str],
                     known: dict[str, Any] | None = None,
                     popular: list[rules.Pick] | None = None) -> list[tuple[Any, rules.Pick, str]]:
        """The picks the catalog shows, with this member's prices, at most `size`. Without
        the catalog: the best sellers alone, as bare product ids, rather than nothing."""
        known = dict(known or {})
        missing = [p.product_id for p in picks if p.product_id not in known]
        found = await self._soft("catalog", self.products.shown(missing), None) if missing else []
        if found is None:
            # None: the product is known by its id only (the servicer sends just the id).
            return [(None, p, rules.reason_text(p, titles, names)) for p in rules.popular_only(popular or [], size)]
        known.update({p.product_id: p for p in found})
        out = []
        for pick in picks:
            product = known.get(pick.product_id)
            if product is not None:
                out.append((product, pick, rules.reason_text(pick, titles, names)))
            if len(out) == size:
                break
        return out


async def _nothing() -> list:
    return []


def _shape(product: Any) -> rules.Shape:
    return rules.Shape(product.product_id, product.category_id, tuple(product.tags))


class ProductContents:
    """Published content visible on the caller's channel that links a product."""

    def __init__(self, store: ProductContentsStore, personas: PersonaRepository):
        self.store = store
        self.personas = personas

    async def page(self, product_id: str, page_size: int,
                   page_token: str) -> tuple[list[Content], list[Persona], str]:
        ctx = context.current()
        merchant_id = ctx.require_merchant()
        v = Violations()
        v.check(is_id(product_id, "prd"), "product_id", "a prd_ id")
        v.check(0 <= page_size <= 20, "page_size", "1 to 20, or 0 for 10")
        fp = paging.fingerprint(kind="product-contents", product_id=product_id, channel=ctx.channel)
        below = paging.decode_cursor(v, page_token, fp, feed_rules.KEY)
        v.raise_if_any()
        size = page_size or 10
        rows = await self.store.linking(merchant_id, ctx.channel, product_id, below, size + 1)
        rows, token = paging.next_page(rows, size, fp, position=lambda c: c.feed_key)
        persona_ids = sorted({c.fields.persona_id for c in rows})
        personas = await asyncio.gather(*(self.personas.get(merchant_id, p) for p in persona_ids))
        return rows, [p for p in personas if p is not None], token
