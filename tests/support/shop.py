"""A seeded merchant and an HTTP client that calls the gateway for it, as a front-end
team would."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx

from scripts.seed import Clients, seed_merchant


@dataclass
class Shop:
    """One seeded merchant and how to call the gateway for it."""
    url: str
    data: dict
    staff: str = ""  # the owner's access token, once logged in

    def key(self, channel: str = "H5") -> str:
        return self.data["api_keys"][channel]

    def sku(self, product_code: str, index: int = 0) -> str:
        return self.data["products"][product_code]["skus"][index]

    def product(self, product_code: str) -> str:
        return self.data["products"][product_code]["product_id"]

    def call(self, method: str, path: str, *, channel: str | None = "H5", token: str | None = None,
             json: dict | None = None, headers: dict | None = None, **kwargs) -> httpx.Response:
        all_headers = dict(headers or {})
        if channel:
            all_headers["X-Api-Key"] = self.key(channel)
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        return httpx.request(method, self.url + path, json=json, headers=all_headers, timeout=30, **kwargs)

    def login(self, unionid: str, channel: str = "H5") -> dict:
        resp = self.call("POST", "/v1/auth/login", channel=channel, json={"code": f"sandbox:{unionid}"})
        assert resp.status_code == 200, resp.text
        return resp.json()

    def staff_token(self) -> str:
        resp = self.call("POST", "/v1/staff/login", channel=None, json={
            "merchant_code": self.data["merchant_code"], "username": self.data["staff_username"],
            "password": self.data["staff_password"]})
        assert resp.status_code == 200, resp.text
        return resp.json()["access_token"]

    def stock(self, sku_id: str) -> dict:
        resp = self.call("GET", f"/v1/staff/skus/{sku_id}/stock", channel=None, token=self.staff_token())
        assert resp.status_code == 200, resp.text
        return {k: int(v) for k, v in resp.json()["stock"].items() if k != "sku_id"}

    def as_staff(self, method: str, path: str, **kwargs) -> httpx.Response:
        """A call with the owner's token (every staff role), logged in once per shop."""
        if not self.staff:
            self.staff = self.staff_token()
        return self.call(method, path, channel=None, token=self.staff, **kwargs)

    def new_product(self, stock: int, price: int = 10000, title: str = "", **fields) -> dict:
        """A fresh on-shelf product with one SKU, made by the staff over HTTP."""
        code = "p-" + uuid.uuid4().hex[:12]
        resp = self.as_staff("POST", "/v1/staff/products", json={
            "code": code, "title": title or f"Item {code}", "status": "PRODUCT_STATUS_ON_SHELF",
            "skus": [{"code": code + "-1", "list_price": {"amount": str(price), "currency": "CNY"},
                      "initial_stock": str(stock)}], **fields})
        assert resp.status_code == 200, resp.text
        return resp.json()["product"]

    def new_sku(self, stock: int, price: int = 10000, title: str = "") -> str:
        return self.new_product(stock, price, title)["skus"][0]["sku_id"]

    def audit(self, sku_id: str) -> dict:
        resp = self.as_staff("GET", f"/v1/staff/skus/{sku_id}/stock:audit")
        assert resp.status_code == 200, resp.text
        return resp.json()

    def update_order_settings(self, **changes) -> dict:
        """Reads the merchant's order settings and writes them back with `changes`."""
        current = self.as_staff("GET", "/v1/staff/order-settings")
        assert current.status_code == 200, current.text
        settings = current.json()["settings"]
        resp = self.as_staff("PUT", "/v1/staff/order-settings", json={
            "settings": {**settings, **changes}, "expected_version": settings["version"]})
        assert resp.status_code == 200, resp.text
        return resp.json()["settings"]

    def pay(self, token: str, order_id: str, channel: str = "H5") -> dict:
        """PayOrder, then the sandbox provider's signed callback (as the member's app sees it)."""
        resp = self.call("POST", f"/v1/orders/{order_id}:pay", channel=channel, token=token,
                         json={"idempotency_key": uuid.uuid4().hex})
        assert resp.status_code == 200, resp.text
        payment = resp.json()["payment"]
        done = self.call("POST", f"/v1/sandbox/payments/{payment['payment_id']}:complete", channel=channel,
                         token=token, json={})
        assert done.status_code == 200, done.text
        return done.json()


def make_shop(stack) -> Shop:
    tag = uuid.uuid4().hex[:10]
    keys = {ch: f"key-{ch.lower()}-{tag}" for ch in ("MINI_PROGRAM", "H5", "LIVE")}
    data = seed_merchant(Clients.from_env(stack.env()), f"shop-{tag}", f"Shop {tag}", keys,
                         ("owner", f"pass-{tag}"))
    return Shop(stack.gateway_url, data)


def ok(resp: httpx.Response) -> dict:
    """The JSON body of an answer that must have succeeded."""
    assert resp.status_code == 200, resp.text
    return resp.json()


def refused(resp: httpx.Response, status: int, reason: str = "", fields: set[str] | None = None) -> dict:
    """The error of an answer that must have been refused with `status` (and `reason`, and
    at least these field violations, when given)."""
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    if reason:
        assert error["reason"] == reason, error
    if fields is not None:
        assert {v["field"] for v in error.get("field_violations", [])} >= fields, error
    return error


def staff_with(shop: Shop, role: str) -> str:
    """A fresh staff user of the shop with one role (OPERATOR, GUIDE, FINANCE …), logged in."""
    username = f"{role.lower()}-{uuid.uuid4().hex[:8]}"
    ok(shop.as_staff("POST", "/v1/staff/users", json={"username": username, "password": "role-password-1",
                                                      "roles": [f"STAFF_ROLE_{role}"]}))
    return ok(shop.call("POST", "/v1/staff/login", channel=None, json={
        "merchant_code": shop.data["merchant_code"], "username": username, "password": "role-password-1"}))[
        "access_token"]


def paid_order(shop: Shop, token: str, sku: str) -> dict:
    """A one-unit order of `sku`, placed and paid through the sandbox."""
    order = ok(shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": "1"}]}))["order"]
    shop.pay(token, order["order_id"])
    return order
