"""The member price a listing shows is the unit price checkout charges: the catalog's
rule against the order service's price sources, for every combination."""
from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, strategies as st

from services.catalog.domain.member_price import MemberPrice, member_price
from services.catalog.domain.products import LimitedTimePrice
from services.order.domain.price_sources import best_offer, limited_time_offer, tier_offer

NOW_MS = 1_770_000_000_000
TIERS = ("", "REGULAR", "SILVER", "GOLD")


def checkout(list_price, tier, tier_prices, discount_bp, limited):
    now = datetime.fromtimestamp(NOW_MS / 1000, timezone.utc)
    offers = [o for o in (
        tier_offer(list_price, tier, tier_prices, discount_bp),
        limited_time_offer(limited.price, datetime.fromtimestamp(limited.starts_ms / 1000, timezone.utc),
                           datetime.fromtimestamp(limited.ends_ms / 1000, timezone.utc), now) if limited else None)
        if o is not None]
    best = best_offer(list_price, offers)
    return None if best is None else (best.unit_price, best.step)


prices = st.integers(min_value=0, max_value=20_000)
windows = st.one_of(st.none(), st.builds(
    lambda price, start, length: LimitedTimePrice(price, NOW_MS + start * 1000, NOW_MS + (start + length) * 1000),
    prices, st.integers(-3, 3), st.integers(1, 4)))


@given(list_price=prices, tier=st.sampled_from(TIERS),
       tier_prices=st.dictionaries(st.sampled_from(TIERS[1:]), prices, max_size=3),
       discount_bp=st.sampled_from([10_000, 9_800, 9_500, 9_000, 8_500]), limited=windows)
def test_the_listing_shows_what_checkout_charges(list_price, tier, tier_prices, discount_bp, limited):
    shown = member_price(list_price, tier, tier_prices, discount_bp, limited, NOW_MS)
    assert (None if shown is None else (shown.price, shown.kind)) == checkout(list_price, tier, tier_prices,
                                                                              discount_bp, limited)


def test_examples():
    limited = LimitedTimePrice(800, NOW_MS - 1, NOW_MS + 1)
    assert member_price(1000, "GOLD", {}, 9000, None, NOW_MS) == MemberPrice(900, "TIER_DISCOUNT", "GOLD")
    assert member_price(1000, "GOLD", {"GOLD": 850}, 9000, limited, NOW_MS) == MemberPrice(800, "LIMITED_TIME_PRICE")
    # Equal prices: the activity is shown.
    assert member_price(1000, "GOLD", {"GOLD": 800}, 9000, limited, NOW_MS).kind == "LIMITED_TIME_PRICE"
    # Outside its window the limited-time price does not count; no tier and no window: none.
    assert member_price(1000, "", {}, 10000, LimitedTimePrice(800, NOW_MS + 1, NOW_MS + 2), NOW_MS) is None
    assert member_price(1000, "REGULAR", {}, 10000, None, NOW_MS) is None
