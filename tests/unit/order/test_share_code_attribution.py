"""An order carrying a share code: in its window it keeps the code and takes the persona,
content and live session the code carries where the order named none; past its window, or
never issued by the merchant, the code is dropped and the order is placed all the same."""
from __future__ import annotations

from siyu_kit.ids import new_id


async def test_a_code_in_its_window_fills_what_the_order_left_empty(world):
    persona, content, live = new_id("per"), new_id("cnt"), new_id("liv")
    world.attributions.shares["ABCDEFGH23"] = {"persona_id": persona, "content_id": content, "live_session_id": live}
    order = await world.place((world.sku(), 1), attribution={"share_code": "ABCDEFGH23"})
    assert order.attribution == {"channel": "H5", "share_code": "ABCDEFGH23", "persona_id": persona,
                                 "content_id": content, "live_session_id": live}


async def test_what_the_order_names_itself_wins_over_the_code(world):
    mine, theirs = new_id("per"), new_id("per")
    world.attributions.known.add(mine)
    world.attributions.shares["ABCDEFGH23"] = {"persona_id": theirs, "content_id": ""}
    order = await world.place((world.sku(), 1), attribution={"share_code": "ABCDEFGH23", "persona_id": mine})
    assert order.attribution == {"channel": "H5", "share_code": "ABCDEFGH23", "persona_id": mine}


async def test_a_code_out_of_its_window_or_unknown_is_dropped(world):
    order = await world.place((world.sku(), 1), attribution={"channel": "H5", "share_code": "ZZZZZZZZZZ"})
    assert order.attribution == {"channel": "H5"}
    assert world.attributions.checked == [("", "")]
