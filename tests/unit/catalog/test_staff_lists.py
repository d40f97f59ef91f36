"""The staff console's catalog lists on fakes: SKUs with stock, categories and flash sales,
with their filters, sorts, cursors bound to the filters, roles and merchant scope."""
from __future__ import annotations

from datetime import timedelta

import pytest

from siyu_kit.errors import InvalidArgument, PermissionDenied, Unauthenticated

from services.catalog.application import flash_sales, staff_lists, validation
from services.catalog.application.staff_lists import ListCategories, ListSales, ListSkus
from tests.fakes.catalog import T0, shopper, staff

OTHER = "mch_01JTESTOTHERMERCHANT000000"


def product(code: str, status: str = "ON_SHELF", **skus: tuple[int, int]) -> validation.UpsertProduct:
    """skus: code → (initial stock, weight in grams)."""
    return validation.UpsertProduct(code=code, title=f"Title {code}", status=status, skus=[
        validation.SkuInput(c, list_price=1000, initial_stock=n, weight_g=w) for c, (n, w) in skus.items()])


async def seed(shop) -> dict[str, str]:
    """SKU code → id, created in this order: TEE-S, TEE-M, MUG-1 (draft), BAG-1 (off shelf)."""
    with staff():
        tee, _ = await shop.product_cases.upsert_product(product("TEE", **{"TEE-S": (5, 200), "TEE-M": (0, 220)}))
        mug, _ = await shop.product_cases.upsert_product(product("MUG", status="DRAFT", **{"MUG-1": (2, 400)}))
        bag, _ = await shop.product_cases.upsert_product(product("BAG", **{"BAG-1": (50, 900)}))
        await shop.product_cases.set_product_status(bag.doc["_id"], "OFF_SHELF", 0)
    return {s["code"]: s["sku_id"] for p in (tee, mug, bag) for s in p.doc["skus"]}


def codes(rows) -> list[str]:
    return [r.sku.code for r in rows]


# ---- SKUs

async def test_skus_come_with_product_stock_and_weight_newest_first_or_by_id(shop):
    ids = await seed(shop)
    with staff():
        newest, token = await shop.staff_lists.list_skus(ListSkus())
        by_id, _ = await shop.staff_lists.list_skus(ListSkus(sort="SKU_ID"))
    assert token == ""
    assert codes(newest) == sorted(codes(newest), key=lambda c: ids[c], reverse=True) and len(newest) == 4
    assert codes(by_id) == codes(newest)[::-1]
    tee_s = next(r for r in newest if r.sku.code == "TEE-S")
    assert (tee_s.product_title, tee_s.product_status, tee_s.sku.weight_g, tee_s.sku.list_price) == \
        ("Title TEE", "ON_SHELF", 200, 1000)
    assert (tee_s.stock.on_hand, tee_s.stock.reserved, tee_s.stock.available) == (5, 0, 5)


async def test_skus_filtered_by_product_code_prefix_low_stock_and_product_status(shop):
    ids = await seed(shop)
    tee = shop.stock.records[ids["TEE-S"]].product_id

    async def listed(**filters) -> set[str]:
        with staff():
            rows, _ = await shop.staff_lists.list_skus(ListSkus(**filters))
        return set(codes(rows))

    assert await listed(product_id=tee) == {"TEE-S", "TEE-M"}
    assert await listed(code_prefix="TEE-") == {"TEE-S", "TEE-M"}
    assert await listed(code_prefix="tee") == set()
    assert await listed(max_available=2) == {"TEE-M", "MUG-1"}
    assert await listed(max_available=0) == {"TEE-M"}
    assert await listed(product_status="DRAFT") == {"MUG-1"}
    assert await listed(product_status="OFF_SHELF", max_available=100) == {"BAG-1"}
    assert await listed(product_status="ON_SHELF", code_prefix="TEE-S") == {"TEE-S"}


async def test_sku_pages_continue_only_with_the_filters_that_issued_them(shop):
    await seed(shop)
    with staff():
        first, token = await shop.staff_lists.list_skus(ListSkus(page_size=3))
        rest, end = await shop.staff_lists.list_skus(ListSkus(page_size=3, page_token=token))
        prefixed, more = await shop.staff_lists.list_skus(ListSkus(page_size=1, code_prefix="TEE"))
        last, done = await shop.staff_lists.list_skus(ListSkus(page_size=1, code_prefix="TEE", page_token=more))
        with pytest.raises(InvalidArgument) as other_filters:
            await shop.staff_lists.list_skus(ListSkus(page_size=3, page_token=token, sort="SKU_ID"))
    assert len(first) == 3 and len(rest) == 1 and end == ""
    assert set(codes(first + rest)) == {"TEE-S", "TEE-M", "MUG-1", "BAG-1"}
    assert codes(prefixed) == ["TEE-M"] and codes(last) == ["TEE-S"] and done == ""
    assert [v.field for v in other_filters.value.violations] == ["page_token"]


async def test_a_filter_on_the_product_looks_at_a_bounded_number_of_skus_per_call(shop, monkeypatch):
    monkeypatch.setattr(staff_lists, "SCAN_BATCH", 2)
    monkeypatch.setattr(staff_lists, "SCAN_LIMIT", 4)
    with staff():
        await shop.product_cases.upsert_product(product("RARE", **{"RARE-1": (1, 0)}))
        await shop.product_cases.upsert_product(product("MANY", **{f"M-{i}": (1, 0) for i in range(6)}))
        shop.stock.pages = 0
        first, token = await shop.staff_lists.list_skus(ListSkus(code_prefix="RARE"))
        assert first == [] and token and shop.stock.pages == 2
        found, end = await shop.staff_lists.list_skus(ListSkus(code_prefix="RARE", page_token=token))
    assert codes(found) == ["RARE-1"] and end == ""


async def test_skus_are_the_merchants_own_and_for_operators_and_finance(shop):
    ids = await seed(shop)
    with staff(OTHER):
        assert (await shop.staff_lists.list_skus(ListSkus())) == ([], "")
        theirs, _ = await shop.staff_lists.list_skus(ListSkus(product_id=shop.stock.records[ids["TEE-S"]].product_id))
    assert theirs == []
    with staff("mch_01JTESTMERCHANT00000000000", "FINANCE"):
        assert len((await shop.staff_lists.list_skus(ListSkus()))[0]) == 4
    with staff("mch_01JTESTMERCHANT00000000000", "GUIDE"), pytest.raises(PermissionDenied):
        await shop.staff_lists.list_skus(ListSkus())
    with shopper(), pytest.raises(Unauthenticated):
        await shop.staff_lists.list_skus(ListSkus())


async def test_bad_sku_list_input_is_every_field_violation(shop):
    with staff(), pytest.raises(InvalidArgument) as bad:
        await shop.staff_lists.list_skus(ListSkus(product_id="prd_x", code_prefix="a b", max_available=-1,
                                                  product_status="SOLD", sort="PRICE", page_size=101,
                                                  page_token="garbage"))
    assert {v.field for v in bad.value.violations} == {"product_id", "code_prefix", "max_available",
                                                       "product_status", "sort", "page_size", "page_token"}


# ---- categories

async def test_categories_every_one_one_parents_children_or_the_roots_with_a_cursor(shop):
    with staff():
        women = await shop.category_cases.create_category("女装", "", 2)
        dresses = await shop.category_cases.create_category("连衣裙", women["_id"], 0)
        men = await shop.category_cases.create_category("男装", "", 1)
        first, token = await shop.staff_lists.list_categories(ListCategories(page_size=2))
        rest, end = await shop.staff_lists.list_categories(ListCategories(page_size=2, page_token=token))
        children, _ = await shop.staff_lists.list_categories(ListCategories(parent_id=women["_id"]))
        roots, _ = await shop.staff_lists.list_categories(ListCategories(roots_only=True))
        with pytest.raises(InvalidArgument) as moved:
            await shop.staff_lists.list_categories(ListCategories(page_size=2, page_token=token, roots_only=True))
    assert [c["_id"] for c in first + rest] == [women["_id"], dresses["_id"], men["_id"]] and end == ""
    assert [c["_id"] for c in children] == [dresses["_id"]]
    assert [c["_id"] for c in roots] == [women["_id"], men["_id"]]
    assert [v.field for v in moved.value.violations] == ["page_token"]
    with staff(OTHER):
        assert await shop.staff_lists.list_categories(ListCategories()) == ([], "")
        assert await shop.staff_lists.list_categories(ListCategories(parent_id=women["_id"])) == ([], "")
    with staff("mch_01JTESTMERCHANT00000000000", "GUIDE"):
        assert len((await shop.staff_lists.list_categories(ListCategories()))[0]) == 3
    with staff("mch_01JTESTMERCHANT00000000000", "FINANCE"), pytest.raises(PermissionDenied):
        await shop.staff_lists.list_categories(ListCategories())


async def test_bad_category_list_input_is_every_field_violation(shop):
    with staff(), pytest.raises(InvalidArgument) as bad:
        await shop.staff_lists.list_categories(ListCategories(parent_id="cat_1", page_size=-1, page_token="x"))
    assert {v.field for v in bad.value.violations} == {"parent_id", "page_size", "page_token"}
    with staff(), pytest.raises(InvalidArgument) as both:
        await shop.staff_lists.list_categories(ListCategories(parent_id="cat_01JAAAAAAAAAAAAAAAAAAAAAAA",
                                                              roots_only=True))
    assert [v.field for v in both.value.violations] == ["roots_only"]


# ---- flash sales

async def sales(shop) -> tuple[dict[str, str], str]:
    """Sales named by state at T0: ENDED (−3h..−2h), RUNNING (−1h..+1h), SCHEDULED (+2h..+3h)
    on TEE-S, and LATER (+5h..+6h) on BAG-1. Returns names → ids and TEE's product id."""
    ids = await seed(shop)
    shop.clock.now = T0 - timedelta(hours=4)
    made = {}
    windows = {"ENDED": ("TEE-S", -3, -2), "RUNNING": ("TEE-S", -1, 1), "SCHEDULED": ("TEE-S", 2, 3),
               "LATER": ("BAG-1", 5, 6)}
    with staff():
        for name, (code, start, end) in windows.items():
            sale = await shop.flash_cases.create(flash_sales.CreateFlashSale(
                idempotency_key=name, sku_id=ids[code], price=500, units=1,
                starts_at=T0 + timedelta(hours=start), ends_at=T0 + timedelta(hours=end)))
            made[name] = sale.id
    shop.clock.now = T0
    return made, shop.stock.records[ids["TEE-S"]].product_id


async def test_flash_sales_in_every_state_latest_start_first_or_earliest(shop):
    made, _ = await sales(shop)
    with staff():
        latest, token = await shop.staff_lists.list_flash_sales(ListSales())
        earliest, _ = await shop.staff_lists.list_flash_sales(ListSales(sort="EARLIEST_START"))
    assert [s.id for s in latest] == [made[n] for n in ("LATER", "SCHEDULED", "RUNNING", "ENDED")] and token == ""
    assert [s.id for s in earliest] == [s.id for s in latest][::-1]


async def test_flash_sales_by_state_product_and_start_window(shop):
    made, tee = await sales(shop)
    names = {v: k for k, v in made.items()}

    async def listed(**filters) -> list[str]:
        with staff():
            found, _ = await shop.staff_lists.list_flash_sales(ListSales(sort="EARLIEST_START", **filters))
        return [names[s.id] for s in found]

    assert await listed(state="SCHEDULED") == ["SCHEDULED", "LATER"]
    assert await listed(state="RUNNING") == ["RUNNING"]
    assert await listed(state="ENDED") == ["ENDED"]
    assert await listed(product_id=tee) == ["ENDED", "RUNNING", "SCHEDULED"]
    assert await listed(state="SCHEDULED", product_id=tee) == ["SCHEDULED"]
    assert await listed(starts_from=T0 - timedelta(hours=1), starts_before=T0 + timedelta(hours=5)) == \
        ["RUNNING", "SCHEDULED"]
    assert await listed(starts_from=T0 + timedelta(hours=5)) == ["LATER"]
    # The state is that of the moment asked.
    shop.clock.now = T0 + timedelta(hours=2, minutes=30)
    assert await listed(state="RUNNING") == ["SCHEDULED"]
    assert await listed(state="ENDED") == ["ENDED", "RUNNING"]


async def test_flash_sale_pages_scope_and_roles(shop):
    made, _ = await sales(shop)
    with staff():
        first, token = await shop.staff_lists.list_flash_sales(ListSales(page_size=3))
        rest, end = await shop.staff_lists.list_flash_sales(ListSales(page_size=3, page_token=token))
        with pytest.raises(InvalidArgument) as other_sort:
            await shop.staff_lists.list_flash_sales(ListSales(page_size=3, page_token=token, sort="EARLIEST_START"))
    assert [s.id for s in first + rest] == [made[n] for n in ("LATER", "SCHEDULED", "RUNNING", "ENDED")]
    assert end == "" and [v.field for v in other_sort.value.violations] == ["page_token"]
    with staff(OTHER):
        assert await shop.staff_lists.list_flash_sales(ListSales()) == ([], "")
    with staff("mch_01JTESTMERCHANT00000000000", "GUIDE"):
        assert len((await shop.staff_lists.list_flash_sales(ListSales()))[0]) == 4
    with staff("mch_01JTESTMERCHANT00000000000", "FINANCE"), pytest.raises(PermissionDenied):
        await shop.staff_lists.list_flash_sales(ListSales())
    with shopper(), pytest.raises(Unauthenticated):
        await shop.staff_lists.list_flash_sales(ListSales())


async def test_bad_flash_sale_list_input_is_every_field_violation(shop):
    with staff(), pytest.raises(InvalidArgument) as bad:
        await shop.staff_lists.list_flash_sales(ListSales(
            state="PAUSED", product_id="x", starts_from=T0, starts_before=T0 - timedelta(seconds=1),
            sort="CHEAPEST", page_size=1000, page_token="bm9wZQ"))
    assert {v.field for v in bad.value.violations} == {"state", "product_id", "starts_before", "sort", "page_size",
                                                       "page_token"}
    with staff(), pytest.raises(InvalidArgument) as ancient:
        await shop.staff_lists.list_flash_sales(ListSales(starts_from=T0.replace(year=1960)))
    assert [v.field for v in ancient.value.violations] == ["starts_from"]
