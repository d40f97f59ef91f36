"""A SKU's shipping weight: stored with the SKU, changed by an upsert on its version, given
back on every SKU the catalog answers (the order service's GetSkus included)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from siyu_kit.errors import Conflict, InvalidArgument

from services.catalog.application import flash_sales, validation
from tests.fakes.catalog import T0, service, staff


def weighed(code: str = "BAG", version: int = 0, **weights: int) -> validation.UpsertProduct:
    return validation.UpsertProduct(code=code, title="帆布包", status="ON_SHELF", expected_version=version,
                                    skus=[validation.SkuInput(c, list_price=1000, initial_stock=5, weight_g=w)
                                          for c, w in weights.items()])


async def test_weight_is_stored_edited_on_the_version_and_given_to_the_order_service(shop):
    with staff():
        view, _ = await shop.product_cases.upsert_product(weighed(S=350, L=0))
        ids = {s["code"]: s["sku_id"] for s in view.doc["skus"]}
        with pytest.raises(Conflict):
            await shop.product_cases.upsert_product(weighed(version=5, S=1))
        edited, _ = await shop.product_cases.upsert_product(weighed(version=1, S=400, L=1200))
    assert {s["code"]: s["weight_g"] for s in view.doc["skus"]} == {"S": 350, "L": 0}
    assert {s["code"]: s["weight_g"] for s in edited.doc["skus"]} == {"S": 400, "L": 1200}
    assert edited.doc["version"] == 2 and {s["code"]: s["sku_id"] for s in edited.doc["skus"]} == ids
    with service():
        details = await shop.product_cases.get_skus([ids["L"], ids["S"]])
    assert [(d.sku.code, d.sku.weight_g) for d in details] == [("L", 1200), ("S", 400)]


async def test_a_weight_out_of_range_is_a_field_violation_and_writes_nothing(shop):
    with staff():
        with pytest.raises(InvalidArgument) as heavy:
            await shop.product_cases.upsert_product(weighed(S=1_000_001, L=-1))
    assert {v.field for v in heavy.value.violations} == {"skus[0].weight_g", "skus[1].weight_g"}
    assert shop.products.docs == {} and shop.stock.records == {}
    with staff():
        view, _ = await shop.product_cases.upsert_product(weighed(S=1_000_000))
        with pytest.raises(InvalidArgument):
            await shop.product_cases.upsert_product(weighed(version=1, S=-5))
    assert shop.products.docs[view.doc["_id"]]["skus"][0]["weight_g"] == 1_000_000
    assert shop.products.docs[view.doc["_id"]]["version"] == 1


async def test_a_sku_stored_before_weights_reads_as_weightless(shop):
    with staff():
        view, _ = await shop.product_cases.upsert_product(weighed(S=350))
    stored = shop.products.docs[view.doc["_id"]]
    del stored["skus"][0]["weight_g"]
    with service():
        details = await shop.product_cases.get_skus([stored["skus"][0]["sku_id"]])
    assert details[0].sku.weight_g == 0


async def test_a_flash_sale_keeps_the_weight_its_sku_had(shop):
    with staff():
        view, _ = await shop.product_cases.upsert_product(weighed(S=350))
        sale = await shop.flash_cases.create(flash_sales.CreateFlashSale(
            idempotency_key="k1", sku_id=view.doc["skus"][0]["sku_id"], price=500, units=2,
            starts_at=T0 + timedelta(hours=1), ends_at=T0 + timedelta(hours=2)))
    assert sale.sku.weight_g == 350
