"""The content service through the gateway: personas, guides, content."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from tests.support.shop import Shop, ok


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def new_persona(shop: Shop, name: str = "林老师", **fields) -> dict:
    return ok(shop.as_staff("POST", "/v1/staff/personas", json={
        "code": "per-" + uuid.uuid4().hex[:10], "name": name, **fields}))["persona"]


def new_content(shop: Shop, persona_id: str, status: str = "PUBLISHED", token: str | None = None,
                **fields) -> dict:
    body = {"code": "cnt-" + uuid.uuid4().hex[:10], "persona_id": persona_id, "type": "CONTENT_TYPE_ARTICLE",
            "title": fields.pop("title", "春季护肤"), "status": f"CONTENT_STATUS_{status}", **fields}
    if token is None:
        return ok(shop.as_staff("POST", "/v1/staff/contents", json=body))["content"]
    return ok(shop.call("POST", "/v1/staff/contents", channel=None, token=token, json=body))["content"]


def new_guide(shop: Shop) -> tuple[str, str]:
    """A fresh GUIDE staff user: (access token, staff id)."""
    username = f"guide-{uuid.uuid4().hex[:8]}"
    user = ok(shop.as_staff("POST", "/v1/staff/users", json={"username": username, "password": "role-password-1",
                                                             "roles": ["STAFF_ROLE_GUIDE"]}))["user"]
    token = ok(shop.call("POST", "/v1/staff/login", channel=None, json={
        "merchant_code": shop.data["merchant_code"], "username": username, "password": "role-password-1"}))[
        "access_token"]
    return token, user["staff_id"]


def assign(shop: Shop, persona_id: str, *guide_ids: str) -> dict:
    return ok(shop.as_staff("POST", f"/v1/staff/personas/{persona_id}:assign-guides",
                            json={"guide_ids": list(guide_ids)}))["persona"]


def limited_time_product(shop, list_fen: int, price_fen: int) -> dict:
    """A product on the shelf whose one SKU has a limited-time price running now (an hour
    either side): what a member pays beats the list price."""
    now = datetime.now(timezone.utc)
    resp = shop.as_staff("POST", "/v1/staff/products", json={
        "code": "lt-" + uuid.uuid4().hex[:8], "title": "限时", "status": "PRODUCT_STATUS_ON_SHELF",
        "skus": [{"code": "lt-" + uuid.uuid4().hex[:8], "list_price": {"amount": str(list_fen), "currency": "CNY"},
                  "initial_stock": "5", "limited_time_price": {
                      "price": {"amount": str(price_fen), "currency": "CNY"},
                      "starts_at": rfc3339(now - timedelta(hours=1)), "ends_at": rfc3339(now + timedelta(hours=1))}}]})
    assert resp.status_code == 200, resp.text
    return resp.json()["product"]
