"""The live price as a unit-price source: an order (or a quote) attributed to a live
session whose prices apply now gets the session's live price, shown as LIVE_PRICE with the
session's id; it competes with the tier price (the lower wins, never both); an order not
attributed to the session, or attributed once its prices no longer apply, pays the usual
price. Whether the prices apply (LIVE, or ended within the grace) is the content service's
answer: tests/unit/content/test_live_sessions.py."""
from __future__ import annotations

import pytest

from siyu_kit.errors import InvalidArgument, NotFound
from siyu_kit.ids import new_id

from services.order.application.ports import MemberPricing


def _steps(order_or_quote_line) -> list[tuple[str, int, str]]:
    return [(s.step, s.amount, s.detail) for s in order_or_quote_line.steps]


async def test_an_order_attributed_to_a_live_session_pays_its_live_price(world):
    tea, other = world.sku(1000), world.sku(2000)
    live = new_id("liv")
    world.attributions.live[live] = {tea: 700}
    order = await world.place((tea, 2), (other, 1), attribution={"live_session_id": live})
    by_sku = {l.sku_id: l for l in order.lines}
    assert (by_sku[tea].line_amount, by_sku[tea].steps[0].step, by_sku[tea].steps[0].detail) == (
        1400, "LIVE_PRICE", live)
    assert by_sku[other].line_amount == 2000 and by_sku[other].steps == ()  # not in the line-up
    assert order.attribution["live_session_id"] == live


async def test_an_order_not_attributed_or_past_the_grace_pays_the_usual_price(world):
    tea = world.sku(1000)
    live, ended = new_id("liv"), new_id("liv")
    world.attributions.live[live] = {tea: 700}
    world.attributions.known.add(ended)  # exists, but its prices no longer apply
    plain = await world.place((tea, 1))
    late = await world.place((tea, 1), attribution={"live_session_id": ended})
    assert plain.lines[0].line_amount == late.lines[0].line_amount == 1000
    assert plain.lines[0].steps == late.lines[0].steps == ()


async def test_the_lower_of_live_and_tier_price_applies_never_both(world):
    tea, cup = world.sku(1000), world.sku(1000)
    live = new_id("liv")
    world.attributions.live[live] = {tea: 850, cup: 950}
    world.members.tiers[world.member_id] = MemberPricing("GOLD", 9000)  # 900 a unit
    order = await world.place((tea, 1), (cup, 1), attribution={"live_session_id": live})
    by_sku = {l.sku_id: l for l in order.lines}
    assert _steps(by_sku[tea]) == [("LIVE_PRICE", 150, live)]
    assert _steps(by_sku[cup]) == [("TIER_DISCOUNT", 100, "GOLD")]


async def test_a_share_code_carrying_the_session_brings_its_live_price(world):
    tea = world.sku(1000)
    live = new_id("liv")
    world.attributions.live[live] = {tea: 600}
    world.attributions.shares["LIVECODE23"] = {"live_session_id": live}
    order = await world.place((tea, 1), attribution={"share_code": "LIVECODE23"})
    assert _steps(order.lines[0]) == [("LIVE_PRICE", 400, live)]
    assert order.attribution["live_session_id"] == live


async def test_the_quote_shows_what_the_order_charges(world):
    tea = world.sku(1000)
    live = new_id("liv")
    world.attributions.live[live] = {tea: 700}
    world.checkout.attributions = world.attributions
    with world.as_member():
        quoted = await world.checkout.quote([(tea, 3)], attribution={"live_session_id": live})
        plain = await world.checkout.quote([(tea, 3)])
    order = await world.place((tea, 3), attribution={"live_session_id": live})
    assert quoted.quote.payable == order.payable == 2100 and plain.quote.payable == 3000
    assert _steps(quoted.quote.lines[0]) == _steps(order.lines[0]) == [("LIVE_PRICE", 900, live)]


async def test_a_session_of_another_merchant_is_not_found_and_nothing_is_reserved(world):
    tea = world.sku(1000)
    with pytest.raises(NotFound) as missing:
        await world.place((tea, 1), attribution={"live_session_id": new_id("liv")})
    assert [v.field for v in missing.value.violations] == ["attribution.live_session_id"]
    assert world.catalog.reserved == {}
    world.checkout.attributions = world.attributions
    with world.as_member(), pytest.raises(InvalidArgument) as bad:
        await world.checkout.quote([(tea, 1)], attribution={"live_session_id": "liv_nope"})
    assert [v.field for v in bad.value.violations] == ["attribution.live_session_id"]
