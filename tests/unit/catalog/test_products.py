"""Products and categories: upsert, shelving, browsing, SKU lookups and the tree, on fakes."""
from __future__ import annotations

import pytest

from siyu_kit.errors import AlreadyExists, Conflict, FailedPrecondition, NotFound

from services.catalog.application import validation
from services.catalog.domain import categories as category_rules
from tests.fakes.catalog import service, shopper, staff


def upsert_cmd(code: str = "TEE", title: str = "有机棉T恤", status: str = "", version: int = 0, category_id: str = "",
               skus=(("TEE-M", 1000, 5),)) -> validation.UpsertProduct:
    return validation.UpsertProduct(code=code, title=title, status=status, expected_version=version,
                                    category_id=category_id,
                                    skus=[validation.SkuInput(c, list_price=p, initial_stock=s) for c, p, s in skus])


async def test_upsert_creates_a_draft_with_its_stock_and_then_updates_it(shop):
    with staff():
        view, created = await shop.product_cases.upsert_product(upsert_cmd())
        sku_id = view.doc["skus"][0]["sku_id"]
        again, created_again = await shop.product_cases.upsert_product(
            upsert_cmd(title="T恤", skus=(("TEE-M", 900, 99), ("TEE-L", 1000, 3))))
    assert created and not created_again and view.doc["status"] == "DRAFT" and view.available == {sku_id: 5}
    assert again.doc["_id"] == view.doc["_id"] and again.doc["version"] == 2 and again.doc["min_price"] == 900
    # Existing stock is never touched by an upsert; a new SKU gets its initial stock.
    assert {s["code"]: again.available[s["sku_id"]] for s in again.doc["skus"]} == {"TEE-M": 5, "TEE-L": 3}
    assert shop.movements.kinds(sku_id) == ["INITIAL"]


async def test_upsert_refuses_a_stale_version_and_a_status_it_cannot_reach(shop):
    with staff():
        await shop.product_cases.upsert_product(upsert_cmd(status="ON_SHELF"))
        with pytest.raises(Conflict) as stale:
            await shop.product_cases.upsert_product(upsert_cmd(version=7))
        with pytest.raises(FailedPrecondition) as status:
            await shop.product_cases.upsert_product(upsert_cmd(status="DRAFT"))
        with pytest.raises(NotFound):
            await shop.product_cases.upsert_product(upsert_cmd(code="X", category_id="cat_01JAAAAAAAAAAAAAAAAAAAAAAA"))
    assert stale.value.reason == "VERSION_CONFLICT" and status.value.reason == "STATUS_TRANSITION"


async def test_shelving_shows_a_product_to_shoppers(shop):
    with staff():
        view, _ = await shop.product_cases.upsert_product(upsert_cmd())
    product_id = view.doc["_id"]
    with shopper(), pytest.raises(NotFound):
        await shop.product_cases.get_product(product_id)
    with staff():
        shelved = await shop.product_cases.set_product_status(product_id, "ON_SHELF", 1)
        assert (await shop.product_cases.set_product_status(product_id, "ON_SHELF", 0)).doc["version"] == 2
        with pytest.raises(Conflict):
            await shop.product_cases.set_product_status(product_id, "OFF_SHELF", 1)
    assert shelved.doc["status"] == "ON_SHELF"
    with shopper():
        assert (await shop.product_cases.get_product(product_id)).in_stock()
        views, token = await shop.product_cases.list_products(validation.ListProducts(keyword="T恤"))
    assert [v.doc["_id"] for v in views] == [product_id] and token == ""


async def test_listing_pages_and_keeps_to_in_stock_products(shop):
    with staff():
        for i in range(3):
            await shop.product_cases.upsert_product(upsert_cmd(code=f"P{i}", status="ON_SHELF",
                                                               skus=((f"S{i}", 100 + i, i),)))
    with shopper():
        first, token = await shop.product_cases.list_products(validation.ListProducts(page_size=2))
        rest, end = await shop.product_cases.list_products(validation.ListProducts(page_size=2, page_token=token))
        in_stock, _ = await shop.product_cases.list_products(validation.ListProducts(in_stock_only=True))
    assert len(first) == 2 and len(rest) == 1 and end == ""
    assert sorted(v.doc["code"] for v in in_stock) == ["P1", "P2"]


async def test_get_skus_gives_the_order_service_prices_status_and_availability(shop):
    with staff():
        view, _ = await shop.product_cases.upsert_product(upsert_cmd(skus=(("TEE-M", 1000, 5), ("TEE-L", 1200, 0))))
    ids = [s["sku_id"] for s in view.doc["skus"]]
    with service():
        details = await shop.product_cases.get_skus([ids[1], ids[0], ids[1]])
    assert [(d.sku.code, d.available, d.product_status) for d in details] == [("TEE-L", 0, "DRAFT"),
                                                                             ("TEE-M", 5, "DRAFT")]


async def test_categories_nest_keep_sibling_names_unique_and_rename_by_version(shop):
    with staff():
        parent = await shop.category_cases.create_category(" 女装 ", "", 1)
        child = await shop.category_cases.create_category("连衣裙", parent["_id"], 0)
        with pytest.raises(AlreadyExists):
            await shop.category_cases.create_category("连衣裙", parent["_id"], 0)
        with pytest.raises(NotFound):
            await shop.category_cases.create_category("x", "cat_01JAAAAAAAAAAAAAAAAAAAAAAA", 0)
        deepest = child
        for depth in range(category_rules.MAX_DEPTH - 2):
            deepest = await shop.category_cases.create_category(f"d{depth}", deepest["_id"], 0)
        with pytest.raises(FailedPrecondition) as deep:
            await shop.category_cases.create_category("too deep", deepest["_id"], 0)
        renamed = await shop.category_cases.update_category(child["_id"], "裙", 2, 1)
        with pytest.raises(Conflict):
            await shop.category_cases.update_category(child["_id"], "裙子", 2, 1)
        tree = await shop.category_cases.list_categories()
    assert parent["name"] == "女装" and child["ancestor_ids"] == [parent["_id"]]
    assert deep.value.reason == "CATEGORY_TOO_DEEP"
    assert renamed["name"] == "裙" and renamed["version"] == 2
    assert tree[0]["_id"] == parent["_id"] and len(tree) == category_rules.MAX_DEPTH


# ---- my price ----------------------------------------------------------------------


async def test_a_member_sees_their_price_next_to_the_list_price_with_one_tier_call_per_page(shop):
    from datetime import datetime, timedelta, timezone

    from siyu_kit.errors import Unavailable
    from tests.fakes.catalog import FakeMemberPricing

    now = datetime.now(timezone.utc)
    window = validation.LimitedTimeInput(validation.PriceInput(700), now - timedelta(hours=1), now + timedelta(hours=1))
    skus = [validation.SkuInput("A", list_price=1000, initial_stock=5),
            validation.SkuInput("B", list_price=1000, initial_stock=5,
                                tier_prices=[("GOLD", validation.PriceInput(850))]),
            validation.SkuInput("C", list_price=1000, initial_stock=5, limited_time_price=window)]
    pricing = FakeMemberPricing("GOLD", 9000)
    shop.product_cases.pricing = pricing
    with staff():
        for code in ("P1", "P2"):
            await shop.product_cases.upsert_product(validation.UpsertProduct(
                code=code, title=code, status="ON_SHELF", skus=skus))
    with shopper():
        listed, _ = await shop.product_cases.list_products(validation.ListProducts())
    assert len(listed) == 2 and pricing.calls == ["mem_1"]
    codes = {s["sku_id"]: s["code"] for s in listed[0].doc["skus"]}
    assert {codes[k]: (v.price, v.kind) for k, v in listed[0].member_prices.items()} == {
        "A": (900, "TIER_DISCOUNT"), "B": (850, "TIER_DISCOUNT"), "C": (700, "LIMITED_TIME_PRICE")}
    with shopper():
        one = await shop.product_cases.get_product(listed[0].doc["_id"])
    assert one.member_prices == listed[0].member_prices
    # Without a member, or when the member service does not answer: list prices only.
    with staff():
        assert (await shop.product_cases.get_product(listed[0].doc["_id"])).member_prices == {}
    pricing.fail = Unavailable("away")
    with shopper():
        assert (await shop.product_cases.get_product(listed[0].doc["_id"])).member_prices == {}
