"""Member-centre calls over HTTP that several end-to-end modules make: an address to add
to the book, a check-in."""
from __future__ import annotations

import uuid

from tests.support.shop import Shop

PHONE = "13812348000"


def new_address(**changes) -> dict:
    return {"idempotency_key": uuid.uuid4().hex, "recipient": "张三", "phone": PHONE, "province_code": "330000",
            "city_code": "330100", "district_code": "330106", "detail": "文三路 90 号", **changes}


def check_in(shop: Shop, token: str):
    return shop.call("POST", "/v1/me/check-ins", token=token, json={})
