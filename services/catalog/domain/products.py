"""Products (SPU) and their SKUs: statuses and how a re-upsert merges SKUs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

DRAFT = "DRAFT"
ON_SHELF = "ON_SHELF"
OFF_SHELF = "OFF_SHELF"
STATUSES = (DRAFT, ON_SHELF, OFF_SHELF)
# DRAFT → ON_SHELF ⇄ OFF_SHELF; None is a product not created yet. Staying put is allowed.
_STATUS_NEXT = {None: {DRAFT, ON_SHELF}, DRAFT: {DRAFT, ON_SHELF}, ON_SHELF: {ON_SHELF, OFF_SHELF},
                OFF_SHELF: {OFF_SHELF, ON_SHELF}}

# Member tiers that can have their own price, lowest first.
TIERS = ("REGULAR", "SILVER", "GOLD", "BLACK_GOLD")


def can_change_status(current: str | None, target: str) -> bool:
    return target in _STATUS_NEXT.get(current, set())


@dataclass(frozen=True)
class LimitedTimePrice:
    """A price that applies only from `starts_ms` (inclusive) to `ends_ms` (exclusive)."""
    price: int
    starts_ms: int
    ends_ms: int


@dataclass(frozen=True)
class SkuSpec:
    """A SKU as the merchant describes it in an upsert."""
    code: str
    attributes: dict[str, str] = field(default_factory=dict)
    list_price: int = 0
    currency: str = "CNY"
    initial_stock: int = 0
    tier_prices: tuple[tuple[str, int], ...] = ()
    limited_time_price: LimitedTimePrice | None = None
    weight_g: int = 0  # shipping weight of one unit, for freight by weight


@dataclass(frozen=True)
class Sku:
    sku_id: str
    code: str
    attributes: dict[str, str]
    list_price: int
    currency: str
    tier_prices: tuple[tuple[str, int], ...] = ()  # (tier, price), in TIERS order
    limited_time_price: LimitedTimePrice | None = None
    weight_g: int = 0  # shipping weight of one unit in grams; 0 when not given


@dataclass(frozen=True)
class SkuMerge:
    skus: list[Sku]
    # SKUs that did not exist before, with the stock they start with.
    created: list[tuple[Sku, int]]


def merge_skus(existing: list[Sku], specs: list[SkuSpec], new_sku_id: Callable[[], str]) -> SkuMerge:
    """Apply an upsert's SKUs to a product's SKUs, matched by code.

    A known code keeps its id and takes the new attributes, prices and weight; a new code gets a
    new id and its initial stock. SKUs missing from the upsert stay: orders and
    reservations refer to them.
    """
    by_code = {s.code: s for s in existing}
    merged: list[Sku] = []
    created: list[tuple[Sku, int]] = []
    seen = set()
    for spec in specs:
        old = by_code.get(spec.code)
        sku = Sku(old.sku_id if old else new_sku_id(), spec.code, dict(spec.attributes), spec.list_price,
                  spec.currency, spec.tier_prices, spec.limited_time_price, spec.weight_g)
        merged.append(sku)
        seen.add(spec.code)
        if old is None:
            created.append((sku, spec.initial_stock))
    merged.extend(s for s in existing if s.code not in seen)
    return SkuMerge(merged, created)


def min_price(skus: list[Sku]) -> int:
    return min((s.list_price for s in skus), default=0)


def visible_to(status: str, *, is_staff: bool) -> bool:
    """Shoppers see products on shelf only; staff see every status."""
    return is_staff or status == ON_SHELF
