"""The demo seed is a set of upserts: running it again changes nothing."""
from __future__ import annotations

import uuid

from scripts.seed import Clients, seed_merchant
from tests.support.shop import Shop


def test_seeding_twice_duplicates_nothing(stack):
    tag = uuid.uuid4().hex[:10]
    keys = {ch: f"seed-{ch.lower()}-{tag}" for ch in ("MINI_PROGRAM", "H5", "LIVE")}
    args = (Clients.from_env(stack.env()), f"seed-{tag}", "Seed twice", keys, ("owner", f"pass-{tag}"))
    first = seed_merchant(*args)
    shop = Shop(stack.gateway_url, first)
    stock = {sku: shop.stock(sku) for p in first["products"].values() for sku in p["skus"]}

    second = seed_merchant(*args)

    assert second == first
    listed = shop.call("GET", "/v1/products", params={"page_size": 100}).json()["products"]
    assert sorted(p["product_id"] for p in listed) == sorted(p["product_id"] for p in first["products"].values())
    assert {sku: shop.stock(sku) for sku in stock} == stock
