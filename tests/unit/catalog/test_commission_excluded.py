"""A product excluded from commission: stored by an upsert (false unless given), shown on the
product and each of its SKUs, and given to the order service with every SKU GetSkus answers,
from the product GetSkus reads anyway."""
from __future__ import annotations

from services.catalog.application import validation
from services.catalog.entrypoint.servicer import _product
from tests.fakes.catalog import service, staff


def upsert(excluded: bool | None = None, version: int = 0) -> validation.UpsertProduct:
    more = {} if excluded is None else {"commission_excluded": excluded}
    return validation.UpsertProduct(code="GIFT", title="礼品卡", status="ON_SHELF", expected_version=version,
                                    skus=[validation.SkuInput(c, list_price=1000, initial_stock=5) for c in "AB"],
                                    **more)


async def test_exclusion_is_stored_shown_and_given_with_each_sku(shop):
    with staff():
        view, _ = await shop.product_cases.upsert_product(upsert())
    assert view.doc["commission_excluded"] == 0 and not _product(view).commission_excluded
    with staff():
        view, _ = await shop.product_cases.upsert_product(upsert(True, version=1))
    shown = _product(view)
    assert shown.commission_excluded and all(s.commission_excluded for s in shown.skus)
    ids = [s["sku_id"] for s in view.doc["skus"]]
    with service():
        details = await shop.product_cases.get_skus(ids)
    assert [d.commission_excluded for d in details] == [True, True]
    with staff():
        view, _ = await shop.product_cases.upsert_product(upsert(False, version=2))
    with service():
        details = await shop.product_cases.get_skus(ids)
    assert [d.commission_excluded for d in details] == [False, False]


async def test_a_product_stored_before_the_setting_earns_commission(shop):
    with staff():
        view, _ = await shop.product_cases.upsert_product(upsert())
    del shop.products.docs[view.doc["_id"]]["commission_excluded"]
    with service():
        details = await shop.product_cases.get_skus([view.doc["skus"][0]["sku_id"]])
    assert not details[0].commission_excluded
