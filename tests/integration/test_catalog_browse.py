"""Browsing the catalog over gRPC: keyword, category tree, tag, price range, in-stock only,
every sort, and keyset pages that stay correct while products are added and changed."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from siyu.catalog.v1 import catalog_pb2 as pb, catalog_pb2_grpc
from siyu.order.v1 import events_pb2 as order_events

from tests.support.catalog import _publish, internal, order_event, reserve, shopper, sku_input, staff
from tests.support import database_fixture, field_violations, new_merchant_id, rpc_error, stub_fixture, wait_until

stub = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
db = database_fixture("catalog")


def category(stub, m, name, parent=""):
    req = pb.CreateCategoryRequest(name=name, parent_id=parent)
    return stub.CreateCategory(req, metadata=staff(m)).category.category_id


def product(stub, m, code, title="Item", price=1000, stock=10, **kw):
    req = pb.UpsertProductRequest(code=code, title=title, status=pb.PRODUCT_STATUS_ON_SHELF,
                                  skus=[sku_input(f"{code}-S", price=price, stock=stock)], **kw)
    return stub.UpsertProduct(req, metadata=staff(m)).product


def listing(stub, m, **kw):
    return stub.ListProducts(pb.ListProductsRequest(**kw), metadata=shopper(m))


def codes(stub, m, **kw):
    return [p.code for p in listing(stub, m, **kw).products]


def all_pages(stub, m, between=lambda page: None, **kw):
    """Every page of a listing, calling `between` after each page; the codes in order."""
    seen, token = [], ""
    while True:
        page = listing(stub, m, page_token=token, **kw)
        seen += [p.code for p in page.products]
        token = page.next_page_token
        if not token:
            return seen
        between(len(seen))


def test_keyword_category_tree_tag_and_price_range(stub):
    m = new_merchant_id()
    clothes = category(stub, m, "服装")
    women = category(stub, m, "女装", clothes)
    dresses = category(stub, m, "连衣裙", women)
    baby = category(stub, m, "母婴")
    product(stub, m, "dress", "夏季碎花连衣裙", price=19900, category_id=dresses, tags=["summer"])
    product(stub, m, "skirt", "Floral Summer Skirt 半身裙", price=12900, category_id=women, tags=["summer", "new"])
    product(stub, m, "coat", "Wool Coat", price=59900, category_id=clothes)
    product(stub, m, "lotion", "婴儿润肤霜 Baby Lotion", price=8900, category_id=baby, tags=["new"])

    assert codes(stub, m, keyword="连衣裙") == ["dress"]
    assert codes(stub, m, keyword="summer") == ["skirt"]
    assert codes(stub, m, keyword="Lotion 婴儿") == ["lotion"]
    assert codes(stub, m, category_id=clothes) == ["coat", "skirt", "dress"]
    assert codes(stub, m, category_id=women) == ["skirt", "dress"]
    assert codes(stub, m, category_id=dresses) == ["dress"]
    assert codes(stub, m, tag="new") == ["lotion", "skirt"]
    assert codes(stub, m, tag="summer", category_id=dresses) == ["dress"]
    assert codes(stub, m, min_price=12900) == ["coat", "skirt", "dress"]
    assert codes(stub, m, max_price=12900) == ["lotion", "skirt"]
    assert codes(stub, m, min_price=10000, max_price=20000) == ["skirt", "dress"]
    assert codes(stub, m, min_price=0, max_price=0) == []
    got = stub.GetProduct(pb.GetProductRequest(product_id=listing(stub, m, keyword="连衣裙").products[0].product_id),
                          metadata=shopper(m)).product
    assert list(got.category_path) == [clothes, women, dresses] and got.category_id == dresses
    # Another merchant sees none of it, not even through this merchant's category.
    assert codes(stub, new_merchant_id(), category_id=clothes) == []
    err = rpc_error(listing, stub, m, category_id="women", min_price=5, max_price=4, page_size=101)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The declared bounds first; rules between fields once those hold.
    assert {"category_id", "page_size"} <= set(field_violations(err))
    err = rpc_error(listing, stub, m, min_price=5, max_price=4)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and set(field_violations(err)) == {"max_price"}


def test_in_stock_only_scans_past_many_sold_out_products(stub):
    m = new_merchant_id()
    product(stub, m, "old-in-stock", stock=3)
    for i in range(105):  # more than one scan batch of sold-out products
        product(stub, m, f"sold-out-{i:03d}", stock=0)
    emptied = product(stub, m, "emptied", stock=2)
    product(stub, m, "new-in-stock", stock=1)
    reserve(stub, m, [(emptied.skus[0].sku_id, 2)])

    assert all_pages(stub, m, in_stock_only=True, page_size=1) == ["new-in-stock", "old-in-stock"]
    assert codes(stub, m, in_stock_only=True, page_size=5) == ["new-in-stock", "old-in-stock"]
    assert len(all_pages(stub, m, page_size=100)) == 108


def _commit(stack, stub, m, sku_id, quantity):
    rid = reserve(stub, m, [(sku_id, quantity)]).reservation_id
    event = order_event("siyu.order.order.paid", m, rid, order_events.OrderPaid)
    asyncio.run(_publish(stack, "siyu.order.order.paid", event.data, event.event_id))


def test_every_sort(stack, stub):
    m = new_merchant_id()
    a = product(stub, m, "a", price=300)
    b = product(stub, m, "b", price=100)
    product(stub, m, "c", price=200)
    product(stub, m, "d", price=100)
    _commit(stack, stub, m, b.skus[0].sku_id, 3)
    _commit(stack, stub, m, a.skus[0].sku_id, 1)

    def sales():
        return {p.code: p.sales for p in listing(stub, m).products}

    wait_until(lambda: sales() == {"a": 1, "b": 3, "c": 0, "d": 0}, timeout=15, message="sales counted")
    assert codes(stub, m) == codes(stub, m, sort=pb.PRODUCT_SORT_NEWEST) == ["d", "c", "b", "a"]
    assert codes(stub, m, sort=pb.PRODUCT_SORT_PRICE_ASC) == ["b", "d", "c", "a"]
    assert codes(stub, m, sort=pb.PRODUCT_SORT_PRICE_DESC) == ["a", "c", "d", "b"]
    assert codes(stub, m, sort=pb.PRODUCT_SORT_SALES_DESC) == ["b", "a", "d", "c"]
    for sort in (pb.PRODUCT_SORT_PRICE_ASC, pb.PRODUCT_SORT_PRICE_DESC, pb.PRODUCT_SORT_SALES_DESC):
        assert all_pages(stub, m, sort=sort, page_size=1) == codes(stub, m, sort=sort)


@pytest.mark.parametrize("sort", [pb.PRODUCT_SORT_NEWEST, pb.PRODUCT_SORT_PRICE_ASC, pb.PRODUCT_SORT_PRICE_DESC])
def test_pages_stay_correct_while_products_are_added_and_changed(stub, sort):
    m = new_merchant_id()
    prices = [500, 100, 300, 100, 900, 700, 300, 200, 800, 600, 100, 400]
    for i, price in enumerate(prices):
        product(stub, m, f"p{i:02d}", title=f"Item {i}", price=price)
    changed_price = "p05"
    added = []

    def meanwhile(listed: int):
        n = len(added)
        # New products below, inside and above the range, and edits that keep the sort value.
        for price in (50, 450, 950):
            added.append(product(stub, m, f"new{n}-{price}", price=price).code)
            n += 1
        product(stub, m, f"p{listed % len(prices):02d}", title=f"Renamed {listed}", price=prices[listed % len(prices)])
        if listed >= 6:
            product(stub, m, changed_price, price=1)

    seen = all_pages(stub, m, between=meanwhile, sort=sort, page_size=4)
    # Only the product whose price changed may move (and so show up twice or not at all).
    steady = [code for code in seen if code != changed_price]
    assert len(steady) == len(set(steady)), "a product was listed twice"
    unchanged = {f"p{i:02d}" for i in range(len(prices))} - {changed_price}
    assert unchanged <= set(seen), f"skipped: {unchanged - set(seen)}"
    assert added and set(seen) <= unchanged | {changed_price} | set(added)


def test_a_page_token_is_only_good_for_its_own_filters_and_sort(stub):
    m = new_merchant_id()
    for i in range(3):
        product(stub, m, f"p{i}", price=100 * (i + 1), tags=["t"])
    token = listing(stub, m, page_size=1, tag="t", sort=pb.PRODUCT_SORT_PRICE_ASC, min_price=100).next_page_token
    assert token
    assert codes(stub, m, page_size=1, tag="t", sort=pb.PRODUCT_SORT_PRICE_ASC, min_price=100,
                 page_token=token) == ["p1"]
    for other in ({"tag": "u"}, {"sort": pb.PRODUCT_SORT_PRICE_DESC}, {"min_price": 0}, {"in_stock_only": True},
                  {"keyword": "item"}):
        kw = {"tag": "t", "sort": pb.PRODUCT_SORT_PRICE_ASC, "min_price": 100, **other}
        err = rpc_error(listing, stub, m, page_size=1, page_token=token, **kw)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in field_violations(err)


def test_member_and_limited_time_prices_are_returned_everywhere(stub):
    m = new_merchant_id()
    start = datetime.now(timezone.utc).replace(microsecond=0)
    window = pb.LimitedTimePrice(price={"amount": 7900}, starts_at=start, ends_at=start + timedelta(hours=1))
    sku = pb.SkuInput(code="S", list_price={"amount": 9900}, initial_stock=5, limited_time_price=window,
                      tier_prices=[pb.TierPrice(tier="GOLD", price={"amount": 8900}),
                                   pb.TierPrice(tier="SILVER", price={"amount": 9400})])
    plain = sku_input("P", price=5000)
    created = stub.UpsertProduct(pb.UpsertProductRequest(code="X", title="T", status=pb.PRODUCT_STATUS_ON_SHELF,
                                                         skus=[sku, plain]), metadata=staff(m)).product
    got = stub.GetProduct(pb.GetProductRequest(product_id=created.product_id), metadata=shopper(m)).product
    listed = listing(stub, m).products[0]
    details = stub.GetSkus(pb.GetSkusRequest(sku_ids=[s.sku_id for s in created.skus]), metadata=internal(m)).skus
    for skus in (created.skus, got.skus, listed.skus, [d.sku for d in details]):
        priced, bare = skus
        assert [(t.tier, t.price.amount, t.price.currency) for t in priced.tier_prices] == \
            [("SILVER", 9400, "CNY"), ("GOLD", 8900, "CNY")]
        assert priced.limited_time_price.price.amount == 7900
        assert priced.limited_time_price.starts_at.ToDatetime(timezone.utc) == start
        assert priced.limited_time_price.ends_at.ToDatetime(timezone.utc) == start + timedelta(hours=1)
        assert not bare.tier_prices and not bare.HasField("limited_time_price")
    bad = pb.SkuInput(code="S", list_price={"amount": 100}, tier_prices=[pb.TierPrice(tier="GOLD", price={"amount": 200})],
                      limited_time_price=pb.LimitedTimePrice(price={"amount": 50}, starts_at=start, ends_at=start))
    err = rpc_error(stub.UpsertProduct, pb.UpsertProductRequest(code="Y", title="T", skus=[bad]), metadata=staff(m))
    assert {"skus[0].tier_prices[0].price.amount", "skus[0].limited_time_price.ends_at"} <= set(field_violations(err))
    assert len(listing(stub, m).products) == 1
