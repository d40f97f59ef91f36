"""The rules of a member's recommendations: what a paid order adds to the kept data, how
each source ranks its products, and how the sources are mixed into one list.

Sources, in the order they are mixed: products often bought together with something the
member bought recently (BOUGHT_WITH), products featured by personas they follow
(FOLLOWED_PERSONA), products in the categories and then with the tags the member buys
(CATEGORY_AFFINITY, TAG_AFFINITY), and the merchant's best sellers of the last
POPULAR_DAYS days (POPULAR) as the fallback and the filler. A product appears once, under
the first source that names it; bought-with and affinity never suggest a product the
member bought in the last RECENT_DAYS days. With personalisation off, popular only."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable

BOUGHT_WITH = "BOUGHT_WITH"
CATEGORY_AFFINITY = "CATEGORY_AFFINITY"
TAG_AFFINITY = "TAG_AFFINITY"
FOLLOWED_PERSONA = "FOLLOWED_PERSONA"
POPULAR = "POPULAR"

PAGE_DEFAULT = 20
PAGE_MAX = 50
# Best sellers are counted over this many days (one bucket per day).
POPULAR_DAYS = 30
# A product the member bought within this many days is not suggested by bought-with or
# affinity (they have it); followed personas' picks and best sellers may still show it.
RECENT_DAYS = 90
# Of the member's purchases, the most recent this many anchor bought-with and affinity.
ANCHORS_MAX = 20
# An order's distinct products counted as pairs (an order has at most 50 lines).
PAIR_PRODUCTS_MAX = 50
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Pick:
    product_id: str
    reason: str
    related_product_id: str = ""
    persona_id: str = ""
    # TAG_AFFINITY: the shared tag the member buys most.
    tag: str = ""


@dataclass(frozen=True)
class Featured:
    """A followed persona's featured products, in the persona's order."""
    persona_id: str
    name: str
    product_ids: tuple[str, ...]


@dataclass(frozen=True)
class Shape:
    """What affinity needs of a product: its category and tags."""
    product_id: str
    category_id: str
    tags: tuple[str, ...]


# ---- what a paid order adds ------------------------------------------------------------

def units_by_product(lines: Iterable[tuple[str, int]]) -> dict[str, int]:
    """The order's units per product; ValueError for a line without a product or with a
    quantity below 1 (an event that can never be counted)."""
    units: dict[str, int] = {}
    for product_id, quantity in lines:
        if not product_id or quantity < 1:
            raise ValueError(f"an order line needs a product and a positive quantity, not {product_id!r} x {quantity}")
        units[product_id] = units.get(product_id, 0) + int(quantity)
    return units


def pairs(product_ids: Iterable[str]) -> dict[str, list[str]]:
    """For each distinct product of an order, the other products bought with it (each pair
    counted once per order, whatever the quantities)."""
    distinct = sorted(set(product_ids))[:PAIR_PRODUCTS_MAX]
    return {p: [q for q in distinct if q != p] for p in distinct if len(distinct) > 1}


def day_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def window(now_ms: int, days: int = POPULAR_DAYS) -> list[str]:
    """The UTC days of the popularity window, today first."""
    today = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc).date()
    return [(today - timedelta(days=n)).isoformat() for n in range(days)]


# ---- ranking each source -----------------------------------------------------------------

def recent(bought: dict[str, int], now_ms: int) -> set[str]:
    """Products the member bought within RECENT_DAYS (bought: product → last paid ms)."""
    since = now_ms - RECENT_DAYS * DAY_MS
    return {p for p, ms in bought.items() if ms >= since}


def anchors(bought: dict[str, int], now_ms: int) -> list[str]:
    """The member's recent purchases, most recent first, at most ANCHORS_MAX."""
    since = now_ms - RECENT_DAYS * DAY_MS
    ordered = sorted((p for p, ms in bought.items() if ms >= since), key=lambda p: (-bought[p], p))
    return ordered[:ANCHORS_MAX]


def bought_with(anchor_ids: list[str], co: dict[str, dict[str, int]]) -> list[Pick]:
    """Products bought together with the anchors, by how often (summed over the anchors);
    each names the anchor it was bought with most often (the more recent anchor on a tie)."""
    score: Counter[str] = Counter()
    best: dict[str, tuple[int, int]] = {}  # candidate → (count, -anchor rank)
    related: dict[str, str] = {}
    for rank, anchor in enumerate(anchor_ids):
        for other, count in (co.get(anchor) or {}).items():
            if count <= 0 or other == anchor:
                continue
            score[other] += count
            key = (count, -rank)
            if other not in best or key > best[other]:
                best[other], related[other] = key, anchor
    ordered = sorted(score, key=lambda p: (-score[p], p))
    return [Pick(p, BOUGHT_WITH, related_product_id=related[p]) for p in ordered]


def followed(featured: list[Featured]) -> list[Pick]:
    """Followed personas' featured products: the most recently followed persona first, one
    product of each persona in turn, so one persona's long list does not push out the rest."""
    picks: list[Pick] = []
    longest = max((len(f.product_ids) for f in featured), default=0)
    for i in range(longest):
        for f in featured:
            if i < len(f.product_ids):
                picks.append(Pick(f.product_ids[i], FOLLOWED_PERSONA, persona_id=f.persona_id))
    return picks


def affinity(history: list[Shape], candidates: list[Shape]) -> list[Pick]:
    """Candidates in the categories the member bought from (the category bought from most
    first), then those sharing a tag with what they bought (most shared weight first);
    candidates otherwise keep their order (best sellers first)."""
    categories = Counter(s.category_id for s in history if s.category_id)
    tags = Counter(t for s in history for t in set(s.tags))
    by_category: list[tuple[int, int, Shape]] = []
    by_tag: list[tuple[int, int, Shape]] = []
    seen: set[str] = set()
    for i, c in enumerate(candidates):
        if c.product_id in seen:
            continue
        seen.add(c.product_id)
        if c.category_id and categories[c.category_id]:
            by_category.append((-categories[c.category_id], i, c))
            continue
        shared = [t for t in set(c.tags) if tags[t]]
        if shared:
            by_tag.append((-sum(tags[t] for t in shared), i, c, min(shared, key=lambda t: (-tags[t], t))))
    return ([Pick(c.product_id, CATEGORY_AFFINITY) for *_, c in sorted(by_category, key=lambda r: r[:2])]
            + [Pick(c.product_id, TAG_AFFINITY, tag=tag) for _, _, c, tag in sorted(by_tag, key=lambda r: r[:2])])


def top_category(history: list[Shape]) -> str:
    counts = Counter(s.category_id for s in history if s.category_id)
    return min(counts, key=lambda c: (-counts[c], c)) if counts else ""


def top_tag(history: list[Shape]) -> str:
    counts = Counter(t for s in history for t in set(s.tags))
    return min(counts, key=lambda t: (-counts[t], t)) if counts else ""


def popular(units: dict[str, int]) -> list[Pick]:
    """Best sellers: most units first, then by id so the order is stable."""
    ordered = sorted((p for p, n in units.items() if n > 0), key=lambda p: (-units[p], p))
    return [Pick(p, POPULAR) for p in ordered]


def add_units(days: Iterable[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for day in days:
        total.update({p: int(n) for p, n in day.items()})
    return dict(total)


# ---- mixing ----------------------------------------------------------------------------

def mix(*, bought_with: list[Pick], followed: list[Pick], affinity: list[Pick], popular: list[Pick],
        recent: set[str], limit: int) -> list[Pick]:
    """The sources in their order, each product once, recent purchases left out of
    bought-with and affinity; at most `limit`."""
    out: list[Pick] = []
    taken: set[str] = set()
    for source, skip in ((bought_with, recent), (followed, set()), (affinity, recent), (popular, set())):
        for pick in source:
            if len(out) >= limit:
                return out
            if pick.product_id in taken or pick.product_id in skip:
                continue
            taken.add(pick.product_id)
            out.append(pick)
    return out


def popular_only(popular_picks: list[Pick], limit: int) -> list[Pick]:
    """With personalisation off: best sellers, nothing of the member's own."""
    return mix(bought_with=[], followed=[], affinity=[], popular=popular_picks, recent=set(), limit=limit)


def reason_text(pick: Pick, titles: dict[str, str], persona_names: dict[str, str]) -> str:
    """The reason as a person reads it."""
    if pick.reason == BOUGHT_WITH:
        return f"和 {titles.get(pick.related_product_id) or '你买过的商品'} 一起买"
    if pick.reason == FOLLOWED_PERSONA:
        return f"来自 {persona_names.get(pick.persona_id) or '你关注的人'}"
    if pick.reason == CATEGORY_AFFINITY:
        return "你常买的品类"
    if pick.reason == TAG_AFFINITY:
        return f"你喜欢的「{pick.tag}」" if pick.tag else "你喜欢的风格"
    return "热销"
