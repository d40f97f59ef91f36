"""Catalog request validation: every violation is reported, with its field."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from siyu_kit.errors import InvalidArgument
from siyu_kit.ids import new_id

from services.catalog.application import validation as v
from services.catalog.domain import listing


def fields(call):
    with pytest.raises(InvalidArgument) as info:
        call()
    return {x.field for x in info.value.violations}


def test_valid_upsert_defaults_currency_and_leaves_an_unspecified_status_to_the_product():
    ok = v.upsert(v.UpsertProduct(code="P-1", title=" 连衣裙 ", skus=[v.SkuInput("S_1", list_price=0)]))
    # "" means DRAFT for a new product and "unchanged" for an existing one.
    assert ok.status == "" and ok.title == "连衣裙" and ok.skus[0].currency == "CNY"


def test_upsert_reports_every_violation():
    bad = v.UpsertProduct(code="a" * 65, title="x" * 121, status="UNKNOWN_9", media_urls=["ftp://x"],
                          skus=[v.SkuInput("A", list_price=-1, currency="USD", initial_stock=-1, attributes={"a.b": "x"}),
                                v.SkuInput("A", initial_stock=10_000_001)])
    assert fields(lambda: v.upsert(bad)) == {
        "code", "title", "status", "media_urls[0]", "skus[0].list_price.amount", "skus[0].list_price.currency",
        "skus[0].initial_stock", "skus[0].attributes", "skus[1].code", "skus[1].initial_stock"}
    assert fields(lambda: v.upsert(v.UpsertProduct(code="P", title="T"))) == {"skus"}


@given(st.integers(-10, 10_000_010))
def test_initial_stock_bounds(quantity):
    cmd = v.UpsertProduct(code="P", title="T", skus=[v.SkuInput("S", initial_stock=quantity)])
    if 0 <= quantity <= v.MAX_STOCK:
        assert v.upsert(cmd).skus[0].initial_stock == quantity
    else:
        assert fields(lambda: v.upsert(cmd)) == {"skus[0].initial_stock"}


def test_page_size_and_cursor():
    assert (q := v.list_query(v.ListProducts(), [])).size == 20 and q.after is None and q.sort == "NEWEST"
    pid = new_id("prd")
    first = v.list_query(v.ListProducts(page_size=5, sort="PRICE_ASC"), [])
    token = v.encode_cursor(first.fingerprint, listing.Key(990, pid))
    again = v.list_query(v.ListProducts(page_size=5, sort="PRICE_ASC", page_token=token), [])
    assert (again.size, again.after) == (5, listing.Key(990, pid))
    assert fields(lambda: v.list_query(v.ListProducts(page_size=101), [])) == {"page_size"}
    assert fields(lambda: v.list_query(v.ListProducts(page_size=-1, page_token="%%%"), [])) == {"page_size", "page_token"}
    assert fields(lambda: v.list_query(v.ListProducts(page_token=v.encode_cursor(first.fingerprint,
                                                                                 listing.Key(1, "sku_x"))), [])) \
        == {"page_token"}


def test_a_page_token_only_continues_the_listing_that_issued_it():
    base = v.ListProducts(category_id=new_id("cat"), tag="new", min_price=100, max_price=500, sort="SALES_DESC")
    issued = v.list_query(base, ["连衣", "衣裙"])
    token = v.encode_cursor(issued.fingerprint, listing.Key(3, new_id("prd")))
    assert v.list_query(replace(base, page_token=token), ["衣裙", "连衣"]).after is not None
    for other in (replace(base, tag="old"), replace(base, min_price=None), replace(base, max_price=499),
                  replace(base, in_stock_only=True), replace(base, sort="PRICE_DESC"),
                  replace(base, category_id=new_id("cat"))):
        assert fields(lambda: v.list_query(replace(other, page_token=token), ["连衣", "衣裙"])) == {"page_token"}
    assert fields(lambda: v.list_query(replace(base, page_token=token), ["大衣"])) == {"page_token"}


def test_list_filters_are_checked():
    bad = v.ListProducts(category_id="women", min_price=-1, max_price=-2, sort="UNKNOWN_9")
    assert fields(lambda: v.list_query(bad, [])) == {"category_id", "min_price", "max_price", "sort"}
    assert fields(lambda: v.list_query(v.ListProducts(min_price=300, max_price=200), [])) == {"max_price"}


def test_tier_and_limited_time_prices():
    start = datetime(2026, 6, 1, tzinfo=timezone.utc)
    ok = v.upsert(v.UpsertProduct(code="P", title="T", skus=[v.SkuInput(
        "S", list_price=1000, tier_prices=[("GOLD", v.PriceInput(900)), ("SILVER", v.PriceInput(950, "CNY"))],
        limited_time_price=v.LimitedTimeInput(v.PriceInput(800), start, start + timedelta(hours=2)))]))
    sku = ok.skus[0]
    assert sku.tier_prices == (("SILVER", 950), ("GOLD", 900))
    assert sku.limited_time_price.price == 800
    assert sku.limited_time_price.ends_ms - sku.limited_time_price.starts_ms == 7_200_000
    bad = v.UpsertProduct(code="P", title="T", skus=[v.SkuInput(
        "S", list_price=1000,
        tier_prices=[("GOLD", v.PriceInput(1001)), ("GOLD", v.PriceInput(900)), ("VIP", v.PriceInput(1, "USD"))],
        limited_time_price=v.LimitedTimeInput(v.PriceInput(1200), start, start))])
    assert fields(lambda: v.upsert(bad)) == {
        "skus[0].tier_prices[0].price.amount", "skus[0].tier_prices[1].tier", "skus[0].tier_prices[2].tier",
        "skus[0].tier_prices[2].price.currency", "skus[0].limited_time_price.price.amount",
        "skus[0].limited_time_price.ends_at"}
    missing = v.UpsertProduct(code="P", title="T", skus=[v.SkuInput(
        "S", list_price=1000, limited_time_price=v.LimitedTimeInput(v.PriceInput(10), None, None))])
    assert fields(lambda: v.upsert(missing)) == {"skus[0].limited_time_price.starts_at",
                                                 "skus[0].limited_time_price.ends_at"}


def test_upsert_category_and_expected_version():
    assert fields(lambda: v.upsert(v.UpsertProduct(code="P", title="T", category_id="women", expected_version=-1,
                                                   skus=[v.SkuInput("S")]))) == {"category_id", "expected_version"}


def test_staff_stock_and_category_requests():
    sku = new_id("sku")
    assert v.adjust(sku, -5, " 盘点 ", "adj-1") == "盘点"
    assert fields(lambda: v.adjust("x", 0, "", "a.b")) == {"sku_id", "delta", "reason", "idempotency_key"}
    assert fields(lambda: v.adjust(sku, 1_000_001, "r" * 201, "k")) == {"delta", "reason"}
    assert v.adjust(sku, -1_000_000, "r", "k") == "r"
    assert v.create_category(" 女装 ", "") == "女装"
    assert fields(lambda: v.create_category(" ", "women")) == {"name", "parent_id"}
    assert fields(lambda: v.update_category("", "x" * 41, -1)) == {"category_id", "name", "expected_version"}
    assert fields(lambda: v.set_status("p", "UNKNOWN_7", -1)) == {"product_id", "status", "expected_version"}
    ok = v.ReturnStock("ret-1", "ord_1", [(sku, 2)])
    assert v.return_stock(ok) == ok
    assert fields(lambda: v.return_stock(v.ReturnStock("a$b", "", [(sku, 0), (sku, 1), ("x", 1)]))) == {
        "return_id", "order_id", "lines[0].quantity", "lines[1].sku_id", "lines[2].sku_id"}


def test_reserve_validation():
    sku = new_id("sku")
    when = datetime.now(timezone.utc)
    assert v.reserve(v.ReserveStock("rsv_1", "ord_1", [(sku, 1)], when)).lines == [(sku, 1)]
    assert fields(lambda: v.reserve(v.ReserveStock("a.b", "", [(sku, 0), (sku, 1), ("x", 1)], None))) == {
        "reservation_id", "order_id", "expires_at", "lines[0].quantity", "lines[1].sku_id", "lines[2].sku_id"}
    assert fields(lambda: v.reserve(v.ReserveStock("r", "o", [], when))) == {"lines"}
