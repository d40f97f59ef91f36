"""Catalog request validation: every violation is reported, with its field."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, strategies as st

from siyu_kit.errors import InvalidArgument
from siyu_kit.ids import new_id

from services.catalog.application import validation as v


def fields(call):
    with pytest.raises(InvalidArgument) as info:
        call()
    return {x.field for x in info.value.violations}


def test_valid_upsert_defaults_status_and_currency():
    ok = v.upsert(v.UpsertProduct(code="P-1", title=" 连衣裙 ", skus=[v.SkuInput("S_1", list_price=0)]))
    assert ok.status == "DRAFT" and ok.title == "连衣裙" and ok.skus[0].currency == "CNY"


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
    assert v.list_query("", "", "", 0, "") == (20, "")
    pid = new_id("prd")
    assert v.list_query("", "", "", 5, v.encode_cursor(pid)) == (5, pid)
    assert fields(lambda: v.list_query("", "", "", 101, "")) == {"page_size"}
    assert fields(lambda: v.list_query("", "", "", -1, "%%%")) == {"page_size", "page_token"}
    assert fields(lambda: v.list_query("", "", "", 1, v.encode_cursor("sku_x"))) == {"page_token"}


def test_reserve_validation():
    sku = new_id("sku")
    when = datetime.now(timezone.utc)
    assert v.reserve(v.ReserveStock("rsv_1", "ord_1", [(sku, 1)], when)).lines == [(sku, 1)]
    assert fields(lambda: v.reserve(v.ReserveStock("a.b", "", [(sku, 0), (sku, 1), ("x", 1)], None))) == {
        "reservation_id", "order_id", "expires_at", "lines[0].quantity", "lines[1].sku_id", "lines[2].sku_id"}
    assert fields(lambda: v.reserve(v.ReserveStock("r", "o", [], when))) == {"lines"}
