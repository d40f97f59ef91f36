"""Member statistics, RFM scores and segment rules (标签 / 用户分层): pure rules.

Statistics come from order events and live in per-member daily buckets (UTC days): paid
orders and paid amount net of refunds per day. The 365-day figures are the sum of the
buckets inside the window, so a job drops what leaves the window by removing whole days,
and replays change nothing (each event is applied once per cause).

RFM: each dimension scores 1–5 against four ascending thresholds per merchant:
- R (recency): days since the last paid order; ≤ t1 → 5, ≤ t2 → 4, ≤ t3 → 3, ≤ t4 → 2, else 1.
- F (frequency): paid orders in 365 days; ≥ t4 → 5, ≥ t3 → 4, ≥ t2 → 3, ≥ t1 → 2, else 1.
- M (monetary): paid amount (fen, net of refunds) in 365 days, scored like F.
A dimension is "high" when its score is ≥ the merchant's midpoint (3 by default) — a fixed
midpoint rather than the average, so a member's group does not move when others buy. The
eight classic groups follow from (R, F, M) high/low. A member without a paid order has no
scores and no group.

Automatic tags: `lapsed` (bought before, but no paid order for N days) and `first-purchase`
(exactly one paid order ever).

Followed personas come from the content service's follow events. Per persona the statistics
keep one number, `follow_mark(at, following)` = the event time (epoch ms) × 2, plus 1 when
it is a follow: the larger mark is the newer event, so an event is applied only when its
mark is larger than the one stored — late, repeated or swapped deliveries end in the state
of the newest event (at the same millisecond a follow wins, whatever the order).

A segment rule is AND / OR of conditions over a member's facts. `matches` evaluates it in
Python; `to_query` translates it into one MongoDB filter over the facts document, on the
portable query subset (docs/storage.md): `$in` for arrays (never equality on an array),
integer epoch-millisecond ranges, `$and` / `$or` without datetime ranges in branches.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

WINDOW_DAYS = 365
DAY_MS = 86_400_000

LAPSED = "lapsed"
FIRST_PURCHASE = "first-purchase"
AUTO_TAGS = (LAPSED, FIRST_PURCHASE)

# (R high, F high, M high) → group
GROUPS = {
    (True, True, True): "重要价值客户",
    (True, False, True): "重要发展客户",
    (False, True, True): "重要保持客户",
    (False, False, True): "重要挽留客户",
    (True, True, False): "一般价值客户",
    (True, False, False): "一般发展客户",
    (False, True, False): "一般保持客户",
    (False, False, False): "一般挽留客户",
}


def day_key(at: datetime) -> str:
    """The UTC day of a time as YYYYMMDD (a bucket's key: no '.' nor '$')."""
    return at.astimezone(timezone.utc).strftime("%Y%m%d")


def window_start(now: datetime) -> str:
    """The first day inside the 365-day window ending today."""
    return day_key(now - timedelta(days=WINDOW_DAYS - 1))


@dataclass
class MemberStats:
    merchant_id: str
    member_id: str
    first_paid_ms: int = 0
    last_paid_ms: int = 0
    paid_orders: int = 0          # lifetime, for first-purchase
    refunds: int = 0
    refunded_amount: int = 0
    days: dict[str, dict[str, int]] = field(default_factory=dict)   # YYYYMMDD → {"o": orders, "a": fen}
    channels: dict[str, int] = field(default_factory=dict)          # channel → paid orders
    version: int = 0
    follows: dict[str, int] = field(default_factory=dict)           # persona → follow_mark of its newest event

    def followed_personas(self) -> list[str]:
        return sorted(p for p, mark in self.follows.items() if following(mark))

    def window(self, now: datetime) -> tuple[int, int]:
        """(paid orders, paid amount net of refunds) over the 365 days ending today."""
        start = window_start(now)
        orders = amount = 0
        for day, bucket in self.days.items():
            if day >= start:
                orders += int(bucket.get("o", 0))
                amount += int(bucket.get("a", 0))
        return orders, max(amount, 0)

    def expired_days(self, now: datetime) -> list[str]:
        start = window_start(now)
        return sorted(d for d in self.days if d < start)

    def preferred_channel(self) -> str:
        """The channel with most paid orders (ties: the name first in order)."""
        if not self.channels:
            return ""
        return sorted(self.channels.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


@dataclass(frozen=True)
class RfmSettings:
    recency_days: tuple[int, int, int, int] = (30, 90, 180, 365)
    frequency_counts: tuple[int, int, int, int] = (2, 3, 5, 10)
    monetary_amounts: tuple[int, int, int, int] = (10_000, 50_000, 100_000, 500_000)
    midpoint: int = 3
    lapsed_days: int = 180

    def violations(self) -> list[tuple[str, str]]:
        out = []
        for name, values in (("recency_days", self.recency_days), ("frequency_counts", self.frequency_counts),
                             ("monetary_amounts", self.monetary_amounts)):
            if len(values) != 4 or any(v < 0 for v in values) or list(values) != sorted(set(values)):
                out.append((name, "four strictly ascending values ≥ 0"))
        if not 1 <= self.midpoint <= 5:
            out.append(("midpoint", "between 1 and 5"))
        if self.lapsed_days < 1:
            out.append(("lapsed_days", "at least 1"))
        return out


def follow_mark(at_ms: int, follows: bool) -> int:
    """The order of a persona's follow events for one member (see the module's note)."""
    return at_ms * 2 + int(follows)


def following(mark: int) -> bool:
    return mark % 2 == 1


def score_recency(days_since: int, t: tuple[int, ...]) -> int:
    for score, limit in zip((5, 4, 3, 2), t):
        if days_since <= limit:
            return score
    return 1


def score_at_least(value: int, t: tuple[int, ...]) -> int:
    score = 1
    for s, limit in zip((2, 3, 4, 5), t):
        if value >= limit:
            score = s
    return score


@dataclass(frozen=True)
class Rfm:
    r: int = 0
    f: int = 0
    m: int = 0
    group: str = ""


def rfm_of(stats: MemberStats, settings: RfmSettings, now: datetime) -> Rfm:
    if not stats.last_paid_ms:
        return Rfm()
    days_since = max(0, (_ms(now) - stats.last_paid_ms) // DAY_MS)
    orders, amount = stats.window(now)
    r = score_recency(days_since, settings.recency_days)
    f = score_at_least(orders, settings.frequency_counts)
    m = score_at_least(amount, settings.monetary_amounts)
    mid = settings.midpoint
    return Rfm(r, f, m, GROUPS[(r >= mid, f >= mid, m >= mid)])


def auto_tags(stats: MemberStats, settings: RfmSettings, now: datetime) -> list[str]:
    tags = []
    if stats.last_paid_ms and _ms(now) - stats.last_paid_ms >= settings.lapsed_days * DAY_MS:
        tags.append(LAPSED)
    if stats.paid_orders == 1:
        tags.append(FIRST_PURCHASE)
    return tags


def derived_facts(stats: MemberStats, settings: RfmSettings, now: datetime) -> dict[str, Any]:
    """The statistics part of a member's facts document."""
    rfm = rfm_of(stats, settings, now)
    orders, amount = stats.window(now)
    return {"rfm_r": rfm.r, "rfm_f": rfm.f, "rfm_m": rfm.m, "rfm_group": rfm.group,
            "orders_365": orders, "spend_365": amount, "first_paid_ms": stats.first_paid_ms,
            "last_paid_ms": stats.last_paid_ms, "refunds": stats.refunds, "channel": stats.preferred_channel(),
            "auto_tags": auto_tags(stats, settings, now), "rfm_day": day_key(now),
            "followed_personas": stats.followed_personas()}


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


# ---- segment rules ---------------------------------------------------------------------------
# field → (kind, facts key). Kinds: "tags" (any of / all of / none of), "int" (eq/in/gte/lte),
# "str" (in), "list" (in: any of the values is in the list), "days_ago" (within/before N days of now, on an epoch-ms fact; 0 = never).
FIELDS: dict[str, tuple[str, str]] = {
    "tag": ("tags", "tags"),
    "rfm_r": ("int", "rfm_r"), "rfm_f": ("int", "rfm_f"), "rfm_m": ("int", "rfm_m"),
    "rfm_group": ("str", "rfm_group"),
    "tier": ("str", "tier"),
    "spend_365": ("int", "spend_365"),
    "orders_365": ("int", "orders_365"),
    "last_order": ("days_ago", "last_paid_ms"),
    "registered": ("days_ago", "registered_ms"),
    "channel": ("str", "channel"),
    "birthday_month": ("int", "birthday_month"),
    "marketing_consent": ("int", "consent"),
    "followed_persona": ("list", "followed_personas"),
}
OPS = {"tags": {"any", "all", "none"}, "int": {"in", "gte", "lte"}, "str": {"in"}, "list": {"in"},
       "days_ago": {"within", "before"}}
MAX_CONDITIONS = 50
MAX_DEPTH = 3


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    values: tuple = ()      # strings for tags/str, ints for int; one int (days) for days_ago


@dataclass(frozen=True)
class Rule:
    """AND (`all_of`) or OR (any) of conditions and nested rules."""
    any_of: bool = False
    conditions: tuple[Condition, ...] = ()
    rules: tuple["Rule", ...] = ()


def rule_violations(rule: Rule, path: str = "rule", depth: int = 1) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if depth > MAX_DEPTH:
        return [(path, f"nested at most {MAX_DEPTH} deep")]
    if len(rule.conditions) + len(rule.rules) > MAX_CONDITIONS:
        out.append((path, f"at most {MAX_CONDITIONS} conditions"))
    for i, c in enumerate(rule.conditions):
        where = f"{path}.conditions[{i}]"
        if c.field not in FIELDS:
            out.append((f"{where}.field", "unknown field"))
            continue
        kind = FIELDS[c.field][0]
        if c.op not in OPS[kind]:
            out.append((f"{where}.op", f"one of {sorted(OPS[kind])}"))
        if not c.values:
            out.append((f"{where}.values", "at least one value"))
        elif kind in ("int", "days_ago") and not all(isinstance(v, int) and v >= 0 for v in c.values):
            out.append((f"{where}.values", "whole numbers ≥ 0"))
        elif kind in ("int", "days_ago") and c.op != "in" and len(c.values) != 1:
            out.append((f"{where}.values", "exactly one value"))
        elif kind in ("tags", "str", "list") and not all(isinstance(v, str) and v for v in c.values):
            out.append((f"{where}.values", "non-empty strings"))
    for i, r in enumerate(rule.rules):
        out += rule_violations(r, f"{path}.rules[{i}]", depth + 1)
    return out


def matches(rule: Rule, facts: dict[str, Any], now: datetime) -> bool:
    results = [_condition_matches(c, facts, now) for c in rule.conditions]
    results += [matches(r, facts, now) for r in rule.rules]
    if not results:
        return True
    return any(results) if rule.any_of else all(results)


def _all_tags(facts: dict[str, Any]) -> set[str]:
    return set(facts.get("tags") or [])


def _condition_matches(c: Condition, facts: dict[str, Any], now: datetime) -> bool:
    kind, key = FIELDS[c.field]
    if kind == "tags":
        tags = _all_tags(facts)
        if c.op == "any":
            return bool(tags & set(c.values))
        if c.op == "all":
            return set(c.values) <= tags
        return not tags & set(c.values)
    value = facts.get(key)
    if kind == "list":
        return bool(set(value or []) & set(c.values))
    if kind == "str":
        return (value or "") in c.values
    if kind == "int":
        value = int(value or 0)
        if c.op == "in":
            return value in c.values
        return value >= c.values[0] if c.op == "gte" else value <= c.values[0]
    at = int(value or 0)
    bound = _ms(now) - c.values[0] * DAY_MS
    if c.op == "within":
        return at > 0 and at >= bound
    return 0 < at < bound


def to_query(rule: Rule, merchant_id: str, now: datetime) -> dict[str, Any]:
    """One MongoDB filter over the facts collection selecting the members the rule matches."""
    return {"$and": [{"merchant_id": merchant_id}, _rule_query(rule, now)]}


def _rule_query(rule: Rule, now: datetime) -> dict[str, Any]:
    parts = [_condition_query(c, now) for c in rule.conditions] + [_rule_query(r, now) for r in rule.rules]
    if not parts:
        return {"merchant_id": {"$exists": True}}
    if len(parts) == 1:
        return parts[0]
    return {"$or": parts} if rule.any_of else {"$and": parts}


def _condition_query(c: Condition, now: datetime) -> dict[str, Any]:
    kind, key = FIELDS[c.field]
    if kind == "tags":
        values = list(c.values)
        if c.op == "any":
            return {key: {"$in": values}}
        if c.op == "all":
            return {key: {"$all": values}}
        return {key: {"$nin": values}}
    if kind in ("str", "list"):
        return {key: {"$in": list(c.values)}}
    if kind == "int":
        if c.op == "in":
            return {key: {"$in": list(c.values)}}
        return {key: {"$gte" if c.op == "gte" else "$lte": c.values[0]}}
    bound = _ms(now) - c.values[0] * DAY_MS
    if c.op == "within":
        return {key: {"$gte": max(bound, 1)}}
    return {"$and": [{key: {"$gt": 0}}, {key: {"$lt": bound}}]}


def rule_doc(rule: Rule) -> dict[str, Any]:
    """A rule as stored (a plain document)."""
    return {"any": int(rule.any_of),
            "conditions": [{"field": c.field, "op": c.op, "values": list(c.values)} for c in rule.conditions],
            "rules": [rule_doc(r) for r in rule.rules]}


def rule_of(doc: dict[str, Any]) -> Rule:
    return Rule(any_of=bool(doc.get("any")),
                conditions=tuple(Condition(c["field"], c["op"], tuple(c.get("values") or ()))
                                 for c in doc.get("conditions") or ()),
                rules=tuple(rule_of(r) for r in doc.get("rules") or ()))


def string_valued(field_name: str) -> bool:
    """Whether a field's condition takes strings (else whole numbers)."""
    return FIELDS.get(field_name, ("tags", ""))[0] in ("tags", "str", "list")


# ---- manual tags and saved segments ---------------------------------------------------------
MAX_TAG_GROUPS = 100
MAX_TAGS = 1000
MAX_SEGMENTS = 500
MAX_BATCH = 1000


@dataclass(frozen=True)
class TagGroup:
    id: str
    merchant_id: str
    name: str


@dataclass(frozen=True)
class Tag:
    id: str
    merchant_id: str
    group_id: str
    name: str


@dataclass(frozen=True)
class Segment:
    id: str
    merchant_id: str
    name: str
    rule: Rule
    created_at: datetime


def tags_after(manual: list[str], add: list[str], remove: list[str]) -> list[str]:
    return sorted((set(manual) | set(add)) - set(remove))
