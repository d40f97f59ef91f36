"""Stored value over HTTP: recharge packages, the member's balance, and paying with it."""
from __future__ import annotations

import uuid

from tests.support.shop import Shop, ok


def key() -> str:
    return uuid.uuid4().hex


def new_package(shop: Shop, price: int = 10000, bonus: int = 2000) -> str:
    done = ok(shop.as_staff("POST", "/v1/staff/recharge-packages", json={
        "name": f"充{price // 100}送{bonus // 100}", "price": str(price), "bonus": str(bonus),
        "idempotency_key": key()}))
    return done["package"]["package_id"]


def balance(shop: Shop, token: str) -> dict[str, int]:
    """The member's balance with every amount as an int (0 when the JSON leaves it out)."""
    found = ok(shop.call("GET", "/v1/me/balance", token=token)).get("balance", {})
    return {k: int(found.get(k, 0)) for k in ("principal", "bonus", "available", "held")}


def place_recharge(shop: Shop, token: str, package_id: str) -> dict:
    return ok(shop.call("POST", "/v1/me/recharge-orders", token=token,
                        json={"package_id": package_id, "idempotency_key": key()}))["order"]


def pay(shop: Shop, token: str, order_id: str, use_balance: bool) -> dict:
    return ok(shop.call("POST", f"/v1/orders/{order_id}:pay", token=token,
                        json={"idempotency_key": key(), "use_balance": use_balance}))["payment"]


def complete(shop: Shop, token: str, payment_id: str) -> dict:
    return ok(shop.call("POST", f"/v1/sandbox/payments/{payment_id}:complete", token=token, json={}))


def place(shop: Shop, token: str, sku_id: str, quantity: int = 1) -> dict:
    return ok(shop.call("POST", "/v1/orders", token=token, json={
        "lines": [{"sku_id": sku_id, "quantity": quantity}], "idempotency_key": key()}))["order"]


def order(shop: Shop, token: str, order_id: str) -> dict:
    return ok(shop.call("GET", f"/v1/orders/{order_id}", token=token))["order"]


def amount(money: dict | None) -> int:
    return int((money or {}).get("amount", 0))
