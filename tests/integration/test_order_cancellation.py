"""Buyers who give up: a call cancelled by its deadline after units were taken leaves
nothing held (they are back within seconds, not at the reservation's expiry), a call that
arrives with almost no time left takes nothing, and an order whose payment window passed
while it was being placed is not written.

The catalog and the order service run here with delay points armed, so every reserve
takes a known time: the catalog holds a reserve for CATALOG_S before taking the units, and
the order service waits ORDER_S after the catalog answered, and WRITE_S once it has
committed to writing the order. A
buyer who gives up while the catalog holds the reserve is released by the catalog once its
work is done (the order service's release arrives before there is anything to release);
one who gives up later is released by the order service."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import grpc
import pytest
from siyu.catalog.v1 import catalog_pb2 as CS, catalog_pb2_grpc
from siyu.order.v1 import order_pb2 as OS, order_pb2_grpc

from siyu_kit import delays
from siyu_kit.ids import new_id
from siyu_kit.protos import timestamp
from tests.support import database_fixture, new_merchant_id, reason, stub_fixture, wait_until
from tests.support.flash_sale import (buy_request, buyer, create, flash_expiry, get_sale, internal, levels,
                                      reserve_request)
from tests.support.order import make_skus, member, staff

# Slow failure scenarios: `make chaos` runs them (see the Makefile).
pytestmark = pytest.mark.chaos

CATALOG_S = 1.5
ORDER_S = 1.5
WRITE_S = 1.5
ARMED = {delays.ENV: ",".join([f"catalog.reserve.before={CATALOG_S}", f"catalog.flash.before={CATALOG_S}",
                               f"order.place.after_reserve={ORDER_S}", f"order.flash.after_reserve={ORDER_S}",
                               f"order.place.writing={WRITE_S}"])}
# Given up while the catalog still holds the reserve, or after it answered and before the
# order is written. Either works as long as the order service spends less than 0.7 s
# before it reserves (pricing, lookups), with room for a loaded machine.
WHILE_RESERVING_S = 1.0
BEFORE_WRITING_S = CATALOG_S + 0.8
WHILE_WRITING_S = CATALOG_S + ORDER_S + 0.7
# Far less than the reservations' expiry (10 minutes for flash orders, 30 for others).
BACK_WITHIN_S = 8

catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
order = stub_fixture("order", order_pb2_grpc.OrderServiceStub)
catalog_db = database_fixture("catalog")
order_db = database_fixture("order")


@pytest.fixture(scope="module", autouse=True)
def slowed(stack):
    """The catalog and the order service with the delay points armed; as before afterwards."""
    def restart(extra_env: dict[str, str]) -> None:
        for name in ("catalog", "order"):
            stack.stop(name)
            stack.start_service(name, extra_env=extra_env)
        stack.wait_services_serving(["catalog", "order"], timeout=60)
        if "gateway" in stack.procs:
            stack.wait_ready(timeout=60)  # its channels to both are connected again

    restart(ARMED)
    try:
        yield
    finally:
        restart({})


def reservations(catalog_db, mid: str) -> list[dict]:
    return list(catalog_db.reservations.find({"merchant_id": mid}))


def states(catalog_db, mid: str) -> list[str]:
    return sorted(r["state"] for r in reservations(catalog_db, mid))


def place_request(sku: str, quantity: int = 1) -> OS.PlaceOrderRequest:
    return OS.PlaceOrderRequest(idempotency_key=new_id("k"), lines=[OS.OrderLineInput(sku_id=sku, quantity=quantity)])


def gives_up(call, request, md, timeout: float) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call(request, metadata=md, timeout=timeout)
    return info.value.code()


@pytest.mark.parametrize("timeout", [WHILE_RESERVING_S, BEFORE_WRITING_S], ids=["while-reserving", "before-writing"])
def test_a_flash_buyer_who_gives_up_leaves_the_unit_in_the_pool(catalog, order, catalog_db, order_db, timeout):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 10))
    sale = create(catalog, mid, sku, units=1, price=500)
    md = buyer(mid)
    assert gives_up(order.PlaceFlashSaleOrder, buy_request(sale.flash_sale_id), md, timeout) == \
        grpc.StatusCode.DEADLINE_EXCEEDED
    # The unit was taken (the reservation was written) and came back long before its expiry.
    wait_until(lambda: states(catalog_db, mid) == ["RELEASED"], timeout=BACK_WITHIN_S,
               message="the reservation of the buyer who gave up is released")
    wait_until(lambda: get_sale(catalog, mid, sale.flash_sale_id).available_units == 1, timeout=BACK_WITHIN_S,
               message="the unit is back in the pool")
    assert order_db.orders.count_documents({"merchant_id": mid}) == 0
    # Nor does it count against the member's limit (1): the same member buys it now.
    placed = order.PlaceFlashSaleOrder(buy_request(sale.flash_sale_id), metadata=md, timeout=10).order
    assert placed.state == OS.ORDER_STATE_PENDING_PAYMENT
    after = get_sale(catalog, mid, sale.flash_sale_id)
    assert (after.available_units, after.reserved_units, after.sold_units) == (0, 1, 0)


@pytest.mark.parametrize("timeout", [WHILE_RESERVING_S, BEFORE_WRITING_S], ids=["while-reserving", "before-writing"])
def test_a_buyer_who_gives_up_leaves_the_stock_available(catalog, order, catalog_db, order_db, timeout):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 3))
    md = member(mid)
    assert gives_up(order.PlaceOrder, place_request(sku, 2), md, timeout) == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: states(catalog_db, mid) == ["RELEASED"], timeout=BACK_WITHIN_S,
               message="the reservation of the buyer who gave up is released")
    wait_until(lambda: levels(catalog, mid, sku) == (3, 0, 3), timeout=BACK_WITHIN_S, message="the stock is back")
    assert order_db.orders.count_documents({"merchant_id": mid}) == 0
    placed = order.PlaceOrder(place_request(sku, 3), metadata=md, timeout=10).order
    assert placed.state == OS.ORDER_STATE_PENDING_PAYMENT
    assert levels(catalog, mid, sku) == (3, 3, 0)


def test_a_call_with_almost_no_time_left_takes_nothing(catalog, order, catalog_db, order_db):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 5))
    sale = create(catalog, mid, sku, units=2, price=500)
    md = buyer(mid)
    assert gives_up(order.PlaceFlashSaleOrder, buy_request(sale.flash_sale_id), md, 0.25) in (
        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
    assert gives_up(order.PlaceOrder, place_request(sku), md, 0.25) in (
        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
    # The catalog, too, refuses a reserve with too little time left to finish it.
    stock_request = CS.ReserveStockRequest(
        reservation_id=new_id("rsv"), order_id=new_id("ord"), lines=[CS.ReservationLine(sku_id=sku, quantity=1)],
        expires_at=timestamp(datetime.now(timezone.utc) + timedelta(minutes=10)))
    for call, request in ((catalog.ReserveStock, stock_request),
                          (catalog.ReserveFlashSale, reserve_request(sale.flash_sale_id))):
        assert gives_up(call, request, internal(mid), 0.08) in (
            grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
    # Calls with time to finish, made after those: once they are answered, anything the
    # refused calls had started would have been written long before.
    flash = order.PlaceFlashSaleOrder(buy_request(sale.flash_sale_id), metadata=buyer(mid), timeout=10).order
    placed = order.PlaceOrder(place_request(sku), metadata=md, timeout=10).order
    assert sorted(r["order_id"] for r in reservations(catalog_db, mid)) == sorted([flash.order_id, placed.order_id])
    assert order_db.orders.count_documents({"merchant_id": mid}) == 2
    after = get_sale(catalog, mid, sale.flash_sale_id)
    assert (after.available_units, after.reserved_units) == (1, 1)
    assert levels(catalog, mid, sku) == (5, 3, 2)


def test_an_order_whose_payment_window_passed_while_placing_is_not_written(catalog, order, catalog_db, order_db):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 4))
    # Placing takes CATALOG_S + ORDER_S here, longer than this payment window.
    md = staff(mid)
    current = order.GetOrderSettings(OS.GetOrderSettingsRequest(), metadata=md).settings
    current.unpaid_expiry_seconds = 1
    order.UpdateOrderSettings(OS.UpdateOrderSettingsRequest(settings=current), metadata=md)
    flash_expiry(order, mid, 1)
    sale = create(catalog, mid, sku, units=1, price=500)
    for call, request in ((order.PlaceOrder, place_request(sku, 2)),
                          (order.PlaceFlashSaleOrder, buy_request(sale.flash_sale_id))):
        with pytest.raises(grpc.RpcError) as info:
            call(request, metadata=buyer(mid), timeout=10)
        assert (info.value.code(), reason(info.value)) == (grpc.StatusCode.UNAVAILABLE,
                                                           "ORDER_EXPIRED_BEFORE_WRITTEN")
    assert order_db.orders.count_documents({"merchant_id": mid}) == 0
    # Released before answering, not when the reservations expire.
    assert states(catalog_db, mid) == ["RELEASED", "RELEASED"]
    assert levels(catalog, mid, sku) == (4, 1, 3)
    assert get_sale(catalog, mid, sale.flash_sale_id).available_units == 1


def test_a_buyer_who_gives_up_while_the_order_is_written_gets_it_on_replay(catalog, order, catalog_db, order_db):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 3))
    md = member(mid)
    request = place_request(sku, 2)
    assert gives_up(order.PlaceOrder, request, md, WHILE_WRITING_S) == grpc.StatusCode.DEADLINE_EXCEEDED
    # The write was under way when the caller gave up: it finishes, and the order keeps its stock.
    written = wait_until(lambda: order_db.orders.find_one({"merchant_id": mid}), timeout=BACK_WITHIN_S,
                         message="the order is written after its caller gave up")
    replay = order.PlaceOrder(request, metadata=md, timeout=10).order
    assert (replay.order_id, replay.state) == (written["_id"], OS.ORDER_STATE_PENDING_PAYMENT)
    assert order_db.orders.count_documents({"merchant_id": mid}) == 1
    assert states(catalog_db, mid) == ["RESERVED"]
    assert levels(catalog, mid, sku) == (3, 2, 1)
