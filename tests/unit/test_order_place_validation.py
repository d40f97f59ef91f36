"""PlaceOrder's input rules: every bad field is named."""
from __future__ import annotations

import pytest

from siyu_kit.errors import InvalidArgument
from siyu_kit.ids import new_id

from services.order.application.orders import PlaceOrderInput, validate_place


def fields_of(cmd: PlaceOrderInput, channel: str = "H5") -> set[str]:
    with pytest.raises(InvalidArgument) as info:
        validate_place(cmd, channel)
    return {v.field for v in info.value.violations}


def test_valid_input_passes():
    validate_place(PlaceOrderInput("k1", [(new_id("sku"), 1), (new_id("sku"), 999)],
                                   {"channel": "H5", "persona_id": new_id("per"), "content_id": new_id("cnt"),
                                    "live_session_id": new_id("liv"), "share_code": "abc"}), "H5")


def test_every_bad_field_is_reported():
    sku = new_id("sku")
    cmd = PlaceOrderInput("", [("prd_x", 1), (sku, 0), (sku, 1000)],
                          {"channel": "LIVE", "persona_id": new_id("cnt"), "content_id": "x",
                           "live_session_id": new_id("per")})
    assert fields_of(cmd) == {"idempotency_key", "lines[0].sku_id", "lines[1].quantity", "lines[2].sku_id",
                              "lines[2].quantity", "attribution.channel", "attribution.persona_id",
                              "attribution.content_id", "attribution.live_session_id"}


def test_line_count_and_key_length():
    assert fields_of(PlaceOrderInput("k" * 65, [])) == {"idempotency_key", "lines"}
    many = [(new_id("sku"), 1) for _ in range(51)]
    assert fields_of(PlaceOrderInput("k", many)) == {"lines"}
