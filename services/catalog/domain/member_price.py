"""The price a member would pay for one unit of a SKU, shown next to the list price.

It is the unit-price rule checkout charges by (services/order/domain/price_sources.py):
the lowest of the member's tier price (the SKU's own price for the tier, else the list
price × the tier's discount, rounded down) and the limited-time price inside its window,
below the list price; on equal prices the activity is shown before the tier. None when
nothing beats the list price. tests/unit/catalog/test_member_price.py checks that both
give the same price and kind for every combination.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from services.catalog.domain.products import LimitedTimePrice

BASIS_POINTS = 10_000
# The kinds as checkout names its steps.
LIMITED_TIME_PRICE = "LIMITED_TIME_PRICE"
TIER_DISCOUNT = "TIER_DISCOUNT"
# Activities before the tier when prices are equal (checkout's ranks).
_RANK = {LIMITED_TIME_PRICE: 1, TIER_DISCOUNT: 5}


@dataclass(frozen=True)
class MemberPrice:
    price: int
    kind: str  # LIMITED_TIME_PRICE or TIER_DISCOUNT
    detail: str = ""  # the tier, for a tier price


def member_price(list_price: int, tier: str, tier_prices: Mapping[str, int], discount_bp: int,
                 limited: LimitedTimePrice | None, now_ms: int) -> MemberPrice | None:
    offers: list[MemberPrice] = []
    if tier:
        price = tier_prices.get(tier)
        if price is None:
            price = list_price * discount_bp // BASIS_POINTS
        offers.append(MemberPrice(price, TIER_DISCOUNT, tier))
    if limited is not None and limited.starts_ms <= now_ms < limited.ends_ms:
        offers.append(MemberPrice(limited.price, LIMITED_TIME_PRICE))
    better = [o for o in offers if 0 <= o.price < list_price]
    if not better:
        return None
    return min(better, key=lambda o: (o.price, _RANK[o.kind], o.kind, o.detail))
