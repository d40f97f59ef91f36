"""Coupon templates over HTTP, for the end-to-end tests that need one."""
from __future__ import annotations

import uuid

from tests.support.shop import Shop, ok


def design(**changes) -> dict:
    return {"name": "满100减10", "rule": {"kind": "COUPON_KIND_AMOUNT_OFF", "threshold": "10000",
                                        "amount_off": "1000", "scope": "COUPON_SCOPE_ALL"},
            "validity": {"days": 7}, "total": "50", "per_member_limit": 1, **changes}


def creation(**changes) -> dict:
    """A design to create, with a key of its own."""
    return {"idempotency_key": uuid.uuid4().hex, **design(**changes)}


def claim(shop: Shop, token: str, template_id: str, key: str = ""):
    return shop.call("POST", "/v1/me/coupons", token=token,
                     json={"template_id": template_id, "idempotency_key": key or uuid.uuid4().hex})


def active_template(shop: Shop, **changes) -> dict:
    made = ok(shop.as_staff("POST", "/v1/staff/coupon-templates", json=creation(**changes)))["template"]
    return ok(shop.as_staff("POST", f"/v1/staff/coupon-templates/{made['template_id']}:setState",
                            json={"state": "COUPON_TEMPLATE_STATE_ACTIVE"}))["template"]
