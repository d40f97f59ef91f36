"""The member's cart over the order service's real gRPC port, with the real catalog and
embedded MongoDB: one cart per member per merchant across channels, no lost concurrent
change, version checks, limits, current catalog facts, and removal after an order."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from siyu.order.v1 import order_pb2 as OS, order_pb2_grpc

from siyu_kit.ids import new_id
from tests.integration.test_order_api import make_skus, member, place, reason, staff
from tests.support import database_fixture, field_violations, new_merchant_id, rpc_error, stub_fixture

order = stub_fixture("order", order_pb2_grpc.OrderServiceStub)
catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
db = database_fixture("order")


def add(order, md, sku_id: str, quantity: int = 1) -> OS.Cart:
    return order.AddCartItem(OS.AddCartItemRequest(sku_id=sku_id, quantity=quantity), metadata=md).cart


def get(order, md) -> OS.Cart:
    return order.GetCart(OS.GetCartRequest(), metadata=md).cart


def lines(cart: OS.Cart) -> dict[str, int]:
    return {i.sku_id: i.quantity for i in cart.items}


def test_one_cart_per_member_shared_across_channels_with_current_catalog_facts(order, catalog):
    mid = new_merchant_id()
    a, b = make_skus(catalog, mid, (1999, 10), (500, 3))
    member_id = new_id("mem")
    live, mini = member(mid, member_id, "LIVE"), member(mid, member_id, "MINI_PROGRAM")
    assert get(order, live) == OS.Cart()

    first = add(order, live, a, 2)
    assert first.version == 1 and lines(first) == {a: 2}
    cart = add(order, mini, b)
    cart = add(order, mini, a, 3)
    assert cart.version == 3 and lines(cart) == {a: 5, b: 1}
    seen = get(order, live)
    assert seen == cart
    # Newest line first, selected when added, with the catalog's current facts.
    assert [i.sku_id for i in seen.items] == [b, a]
    item_a = seen.items[1]
    assert item_a.selected and item_a.purchasable and item_a.title == "测试商品 Test"
    assert (item_a.unit_price.amount, item_a.unit_price.currency, item_a.available) == (1999, "CNY", 10)
    assert item_a.product_id.startswith("prd_") and item_a.added_at.seconds > 0 and seen.updated_at.seconds > 0


def test_twenty_concurrent_adds_from_two_channels_lose_nothing(order, catalog, db):
    mid = new_merchant_id()
    skus = make_skus(catalog, mid, *[(100 + i, 5) for i in range(20)])
    member_id = new_id("mem")
    channels = ("LIVE", "MINI_PROGRAM")

    def add_one(i: int) -> OS.Cart:
        return add(order, member(mid, member_id, channels[i % 2]), skus[i], 1 + i % 3)

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(add_one, range(20)))
    cart = get(order, member(mid, member_id))
    assert lines(cart) == {s: 1 + i % 3 for i, s in enumerate(skus)}
    assert cart.version == 20 and sorted(r.version for r in results) == list(range(1, 21))
    assert db.carts.count_documents({"merchant_id": mid, "member_id": member_id}) == 1


def test_update_and_remove_check_the_version_when_asked(order, catalog):
    mid = new_merchant_id()
    a, b, c = make_skus(catalog, mid, (100, 5), (200, 5), (300, 5))
    md = member(mid)
    add(order, md, a)
    add(order, md, b)
    read = add(order, md, c)
    assert read.version == 3

    updated = order.UpdateCartItem(OS.UpdateCartItemRequest(sku_id=a, quantity=4, selected=False,
                                                            expected_version=3), metadata=md).cart
    assert updated.version == 4 and lines(updated)[a] == 4
    assert [i.selected for i in updated.items if i.sku_id == a] == [False]
    # A second device still holds version 3: refused, nothing changes.
    for rpc, request in ((order.UpdateCartItem, OS.UpdateCartItemRequest(sku_id=b, quantity=9, expected_version=3)),
                         (order.RemoveCartItems, OS.RemoveCartItemsRequest(sku_ids=[b], expected_version=3))):
        error = rpc_error(rpc, request, metadata=md)
        assert error.code() == grpc.StatusCode.ABORTED and reason(error) == "VERSION_CONFLICT"
    assert get(order, md) == updated
    # Without a version the change applies to whatever is current.
    updated = order.UpdateCartItem(OS.UpdateCartItemRequest(sku_id=b, quantity=9, selected=True), metadata=md).cart
    assert updated.version == 5 and lines(updated)[b] == 9
    removed = order.RemoveCartItems(OS.RemoveCartItemsRequest(sku_ids=[b, c], expected_version=5), metadata=md).cart
    assert removed.version == 6 and lines(removed) == {a: 4}
    # Removing what is gone already is a no-op.
    again = order.RemoveCartItems(OS.RemoveCartItemsRequest(sku_ids=[b]), metadata=md).cart
    assert again == removed


def test_limits_and_what_the_catalog_no_longer_sells(order, catalog):
    mid = new_merchant_id()
    (a,) = make_skus(catalog, mid, (100, 5))
    (draft,) = make_skus(catalog, mid, (100, 5), status=catalog_pb2.PRODUCT_STATUS_DRAFT)
    md = member(mid)
    add(order, md, a, 999)
    error = rpc_error(add, order, md, a, 1)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "CART_QUANTITY_LIMIT"
    error = rpc_error(add, order, md, draft)
    assert error.code() == grpc.StatusCode.NOT_FOUND and set(field_violations(error)) == {"sku_id"}
    error = rpc_error(order.UpdateCartItem, OS.UpdateCartItemRequest(sku_id=draft, quantity=1), metadata=md)
    assert error.code() == grpc.StatusCode.NOT_FOUND and reason(error) == "NOT_IN_CART"
    (item,) = get(order, md).items
    assert (item.sku_id, item.quantity, item.purchasable) == (a, 999, True)

    # A SKU taken off the shelf after it was added stays in the cart, not purchasable.
    product = item.product_id
    catalog.SetProductStatus(catalog_pb2.SetProductStatusRequest(
        product_id=product, status=catalog_pb2.PRODUCT_STATUS_OFF_SHELF), metadata=staff(mid))
    (item,) = get(order, md).items
    assert item.sku_id == a and not item.purchasable


def test_a_full_cart_takes_no_new_line(order, catalog, db):
    mid = new_merchant_id()
    skus = make_skus(catalog, mid, *[(100, 5)] * 100) + make_skus(catalog, mid, (100, 5))
    member_id = new_id("mem")
    md = member(mid, member_id)
    # Fill the cart directly; adding 100 lines one by one only repeats what is tested above.
    db.carts.insert_one({"_id": new_id("crt"), "merchant_id": mid, "member_id": member_id, "version": 1,
                         "updated_ms": 1, "items": [{"sku_id": s, "quantity": 1, "selected": 1, "added_ms": 1}
                                                    for s in skus[:100]]})
    error = rpc_error(add, order, md, skus[100])
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "CART_FULL"
    assert len(add(order, md, skus[0]).items) == 100


def test_bad_cart_input_is_rejected_and_changes_nothing(order, catalog):
    mid = new_merchant_id()
    (a,) = make_skus(catalog, mid, (100, 5))
    md = member(mid)
    before = add(order, md, a)
    calls = [
        (order.AddCartItem, OS.AddCartItemRequest(sku_id="prd_1", quantity=0), {"sku_id", "quantity"}),
        (order.AddCartItem, OS.AddCartItemRequest(sku_id=a, quantity=1000), {"quantity"}),
        (order.UpdateCartItem, OS.UpdateCartItemRequest(sku_id="", quantity=0, expected_version=-1),
         {"sku_id", "quantity", "expected_version"}),
        (order.RemoveCartItems, OS.RemoveCartItemsRequest(), {"sku_ids"}),
        (order.RemoveCartItems, OS.RemoveCartItemsRequest(sku_ids=[a, "x"], expected_version=-2),
         {"sku_ids[1]", "expected_version"}),
        (order.RemoveCartItems, OS.RemoveCartItemsRequest(sku_ids=[a] * 101), {"sku_ids"}),
    ]
    for rpc, request, expected in calls:
        error = rpc_error(rpc, request, metadata=md)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert set(field_violations(error)) == expected
    assert get(order, md) == before


def test_other_merchants_and_members_never_reach_the_cart(order, catalog):
    mid, other = new_merchant_id(), new_merchant_id()
    (a,) = make_skus(catalog, mid, (100, 5))
    (b,) = make_skus(catalog, other, (100, 5))
    member_id = new_id("mem")
    md = member(mid, member_id)
    mine = add(order, md, a)
    # Another merchant's SKU does not exist here.
    error = rpc_error(add, order, md, b)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    # The same member id under another merchant, and another member: their own empty carts.
    same_id_elsewhere = member(other, member_id)
    for stranger in (same_id_elsewhere, member(mid)):
        assert get(order, stranger) == OS.Cart()
        error = rpc_error(order.UpdateCartItem, OS.UpdateCartItemRequest(sku_id=a, quantity=2), metadata=stranger)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert order.RemoveCartItems(OS.RemoveCartItemsRequest(sku_ids=[a]), metadata=stranger).cart == OS.Cart()
    # Merchant A's SKU does not exist for merchant B either.
    assert rpc_error(add, order, same_id_elsewhere, a).code() == grpc.StatusCode.NOT_FOUND
    assert get(order, same_id_elsewhere) == OS.Cart()
    assert get(order, md) == mine
    for md_without_member in (staff(mid), ()):
        error = rpc_error(order.GetCart, OS.GetCartRequest(), metadata=md_without_member)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_place_order_takes_the_ordered_skus_out_of_the_cart(order, catalog):
    mid = new_merchant_id()
    a, b = make_skus(catalog, mid, (100, 5), (200, 5))
    md = member(mid)
    add(order, md, a, 2)
    add(order, md, b)
    kept = place(order, md, "k-keep", (a, 1))
    assert lines(get(order, md)) == {a: 2, b: 1} and kept.order_id
    place(order, md, "k-remove", (a, 1), remove_from_cart=True)
    assert lines(get(order, md)) == {b: 1}
