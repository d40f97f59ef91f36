"""Flash sales (秒杀) over real gRPC, against the running catalog and order services, the
embedded MongoDB and NATS: the pool is exact under a crowd, each member gets at most the
limit, unpaid units come back and sell again, and unsold units go back to the SKU."""
from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import grpc
from siyu.catalog.v1 import catalog_pb2 as CS, catalog_pb2_grpc
from siyu.common.v1 import common_pb2
from siyu.order.v1 import order_pb2 as OS, order_pb2_grpc

from siyu_kit.ids import new_id
from siyu_kit.protos import epoch_ms, timestamp
from tests.support import (database_fixture, field_violations, new_merchant_id, reason, rpc_error,
                           stub_fixture, wait_until)
from tests.support.flash_sale import (buy_request, buyer, create, flash_expiry, get_sale, internal, levels, now,
                                      reserve_request, shopper)
from tests.support.order import make_skus, staff

catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
order = stub_fixture("order", order_pb2_grpc.OrderServiceStub)
catalog_db = database_fixture("catalog")
order_db = database_fixture("order")


def audited(catalog, mid: str, sku_id: str) -> bool:
    return catalog.AuditStock(CS.AuditStockRequest(sku_id=sku_id), metadata=staff(mid)).consistent


def pool_exact(sale: CS.FlashSale, returned: int = 0) -> bool:
    return sale.available_units + sale.reserved_units + sale.sold_units + returned == sale.total_units


def refused(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    error = rpc_error(call, *args, **kwargs)
    return error.code(), reason(error)


# ---- creating, reading, listing


def test_create_moves_the_units_into_the_pool_once(catalog, catalog_db):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1999, 50))
    sale = create(catalog, mid, sku, units=20, price=999, key="launch", title="")
    assert (sale.total_units, sale.available_units, sale.reserved_units, sale.sold_units) == (20, 20, 0, 0)
    assert sale.state == CS.FLASH_SALE_STATE_RUNNING and sale.per_member_limit == 1
    assert (sale.price.amount, sale.list_price.amount, sale.sku_id) == (999, 1999, sku)
    assert sale.title == "测试商品 Test"  # the product's title when none is given
    assert levels(catalog, mid, sku) == (50, 20, 30)
    again = create(catalog, mid, sku, units=20, price=999, key="launch")
    assert again.flash_sale_id == sale.flash_sale_id
    assert levels(catalog, mid, sku) == (50, 20, 30)
    assert catalog_db.flash_sales.count_documents({"merchant_id": mid}) == 1
    assert get_sale(catalog, mid, sale.flash_sale_id) == sale
    assert wait_until(lambda: audited(catalog, mid, sku), message="ledger matches the stock")


def test_create_without_enough_stock_leaves_nothing_behind(catalog, catalog_db):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1999, 5))
    code, why = refused(catalog.CreateFlashSale, CS.CreateFlashSaleRequest(
        sku_id=sku, price={"amount": 1}, units=6, starts_at=timestamp(now()),
        ends_at=timestamp(now() + timedelta(hours=1)), idempotency_key="k"), metadata=staff(mid))
    assert (code, why) == (grpc.StatusCode.FAILED_PRECONDITION, "OUT_OF_STOCK")
    assert catalog_db.flash_sales.count_documents({"merchant_id": mid}) == 0
    assert levels(catalog, mid, sku) == (5, 0, 5)
    # The same key works once the request fits.
    assert create(catalog, mid, sku, units=5, key="k").available_units == 5


def test_create_rejects_bad_input_with_violations_and_writes_nothing(catalog, catalog_db):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 50))
    error = rpc_error(catalog.CreateFlashSale, CS.CreateFlashSaleRequest(
        sku_id="nope", price={"amount": -1, "currency": "USD"}, units=0, per_member_limit=101,
        starts_at=timestamp(now()), ends_at=timestamp(now() - timedelta(seconds=1)), live_session_id="room-1",
        title="x" * 121), metadata=staff(mid))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"idempotency_key", "sku_id", "price.amount", "price.currency", "units", "per_member_limit",
            "live_session_id", "title"} <= set(field_violations(error))
    # When it ends is judged once every field is well-formed.
    error = rpc_error(catalog.CreateFlashSale, CS.CreateFlashSaleRequest(
        sku_id=sku, price={"amount": 1000}, units=1, idempotency_key="k", starts_at=timestamp(now()),
        ends_at=timestamp(now() - timedelta(seconds=1))), metadata=staff(mid))
    assert set(field_violations(error)) == {"ends_at"}
    error = rpc_error(catalog.CreateFlashSale, CS.CreateFlashSaleRequest(
        sku_id=sku, price={"amount": 1000}, units=1, idempotency_key="k"), metadata=staff(mid))
    assert {"starts_at", "ends_at"} <= set(field_violations(error))
    error = rpc_error(catalog.CreateFlashSale, CS.CreateFlashSaleRequest(
        sku_id=sku, price={"amount": 1000}, units=1, idempotency_key="k", starts_at=timestamp(now()),
        ends_at=timestamp(now() + timedelta(hours=1))), metadata=staff(mid))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "price.amount" in field_violations(error)
    assert catalog_db.flash_sales.count_documents({"merchant_id": mid}) == 0
    assert levels(catalog, mid, sku) == (50, 0, 50)
    code, _ = refused(catalog.CreateFlashSale, CS.CreateFlashSaleRequest(sku_id=sku), metadata=shopper(mid))
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_reads_and_bad_ids_on_every_catalog_rpc(catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 50))
    sale = create(catalog, mid, sku, units=3)
    error = rpc_error(catalog.GetFlashSale, CS.GetFlashSaleRequest(flash_sale_id="fls_x"), metadata=shopper(mid))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "flash_sale_id" in field_violations(error)
    error = rpc_error(catalog.ListFlashSales, CS.ListFlashSalesRequest(page_size=101, page_token="%%",
                                                                      live_session_id="x"), metadata=shopper(mid))
    assert {"page_size", "live_session_id"} <= set(field_violations(error))
    error = rpc_error(catalog.ListFlashSales, CS.ListFlashSalesRequest(page_token="%%"), metadata=shopper(mid))
    assert set(field_violations(error)) == {"page_token"}
    error = rpc_error(catalog.ReserveFlashSale, CS.ReserveFlashSaleRequest(
        reservation_id="a.b", flash_sale_id=sale.flash_sale_id, member_id="m", quantity=0), metadata=internal(mid))
    assert {"reservation_id", "order_id", "member_id", "quantity", "expires_at"} <= set(field_violations(error))
    late = reserve_request(sale.flash_sale_id, expires_in=-1)
    assert "expires_at" in field_violations(rpc_error(catalog.ReserveFlashSale, late, metadata=internal(mid)))
    assert get_sale(catalog, mid, sale.flash_sale_id).available_units == 3


def test_another_merchant_cannot_see_or_use_a_sale(catalog):
    mid, other = new_merchant_id(), new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 50))
    sale = create(catalog, mid, sku, units=3)
    assert refused(catalog.GetFlashSale, CS.GetFlashSaleRequest(flash_sale_id=sale.flash_sale_id),
                   metadata=shopper(other))[0] == grpc.StatusCode.NOT_FOUND
    assert not catalog.ListFlashSales(CS.ListFlashSalesRequest(), metadata=shopper(other)).flash_sales
    assert refused(catalog.ReserveFlashSale, reserve_request(sale.flash_sale_id),
                   metadata=internal(other))[0] == grpc.StatusCode.NOT_FOUND
    code, why = refused(catalog.CreateFlashSale, CS.CreateFlashSaleRequest(
        sku_id=sku, price={"amount": 1}, units=1, starts_at=timestamp(now()),
        ends_at=timestamp(now() + timedelta(hours=1)), idempotency_key="k"), metadata=staff(other))
    assert (code, why) == (grpc.StatusCode.NOT_FOUND, "SKU_NOT_FOUND")
    assert get_sale(catalog, mid, sale.flash_sale_id).available_units == 3
    assert levels(catalog, mid, sku) == (50, 3, 47)


def test_list_shows_sales_not_ended_soonest_first_in_pages(catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 100))
    room = new_id("liv")
    starts = [300, -60, 120, 60, 600]
    made = [create(catalog, mid, sku, units=1, starts_in=s, live_session_id=room if i % 2 else "")
            for i, s in enumerate(starts)]
    create(catalog, mid, sku, units=1, starts_in=-1, lasts=3)
    want = [m.flash_sale_id for _, m in sorted(zip(starts, made), key=lambda p: p[0])]
    assert wait_until(lambda: [s.flash_sale_id for s in catalog.ListFlashSales(
        CS.ListFlashSalesRequest(page_size=100), metadata=shopper(mid)).flash_sales] == want,
        message="the short sale ends and leaves the list")
    seen, token = [], ""
    while True:
        page = catalog.ListFlashSales(CS.ListFlashSalesRequest(page_size=2, page_token=token), metadata=shopper(mid))
        seen += [s.flash_sale_id for s in page.flash_sales]
        token = page.next_page_token
        if not token:
            break
    assert seen == want
    in_room = catalog.ListFlashSales(CS.ListFlashSalesRequest(live_session_id=room), metadata=shopper(mid))
    assert [s.flash_sale_id for s in in_room.flash_sales] == [m for m in want if m in {made[1].flash_sale_id,
                                                                                         made[3].flash_sale_id}]
    states = {s.flash_sale_id: s.state for s in catalog.ListFlashSales(CS.ListFlashSalesRequest(),
                                                                       metadata=shopper(mid)).flash_sales}
    assert states[made[1].flash_sale_id] == CS.FLASH_SALE_STATE_RUNNING
    assert states[made[0].flash_sale_id] == CS.FLASH_SALE_STATE_SCHEDULED


# ---- reserving in the catalog


async def press(call, give_up_after_s: float = 60.0):
    """A buyer's press through the app: while the service answers OVERLOADED (at its bound
    of calls in flight) it is pressed again after a moment, as the gateway's clients do
    after Retry-After. The reply, or (code, reason, message) of any other refusal, or of
    OVERLOADED after a minute (an answer too, which fails the test)."""
    started = time.monotonic()
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as error:
            if reason(error) != "OVERLOADED" or time.monotonic() - started > give_up_after_s:
                return error.code(), reason(error), error.details()
        await asyncio.sleep(0.2)


async def test_a_crowd_takes_exactly_the_pool(stack, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 100))
    sale = create(catalog, mid, sku, units=10)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.ports['catalog']}") as ch:
        stub = catalog_pb2_grpc.CatalogServiceStub(ch)

        async def one():
            answer = await press(lambda: stub.ReserveFlashSale(reserve_request(sale.flash_sale_id),
                                                               metadata=internal(mid)))
            return answer[:2] if isinstance(answer, tuple) else answer.reservation.reservation_id
        # More presses at once than the service's bound of calls in flight (64).
        outcomes = await asyncio.gather(*(one() for _ in range(80)))
    won = [o for o in outcomes if isinstance(o, str)]
    assert len(won) == 10 and len(set(won)) == 10
    assert {o for o in outcomes if not isinstance(o, str)} == {(grpc.StatusCode.FAILED_PRECONDITION, "SOLD_OUT")}
    after = get_sale(catalog, mid, sale.flash_sale_id)
    assert (after.available_units, after.reserved_units) == (0, 10) and pool_exact(after)
    assert levels(catalog, mid, sku) == (100, 10, 90)


def test_reserve_answers_with_the_reservation_the_sale_and_the_sku(catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 10))
    sale = create(catalog, mid, sku, units=5, price=700, limit=2)
    request = reserve_request(sale.flash_sale_id, quantity=2)
    got = catalog.ReserveFlashSale(request, metadata=internal(mid))
    assert got.reservation.flash_sale_id == sale.flash_sale_id
    assert got.reservation.state == CS.RESERVATION_STATE_RESERVED
    assert [(line.sku_id, line.quantity) for line in got.reservation.lines] == [(sku, 2)]
    assert (got.flash_sale.price.amount, got.flash_sale.available_units) == (700, 3)
    assert (got.sku.sku.sku_id, got.sku.sku.list_price.amount, got.sku.product_title) == (sku, 1000, "测试商品 Test")
    # A repeat returns the same reservation and takes nothing more.
    again = catalog.ReserveFlashSale(request, metadata=internal(mid))
    assert again.reservation == got.reservation
    assert get_sale(catalog, mid, sale.flash_sale_id).available_units == 3
    fetched = catalog.GetReservation(CS.GetReservationRequest(reservation_id=request.reservation_id),
                                     metadata=internal(mid)).reservation
    assert fetched.flash_sale_id == sale.flash_sale_id


def test_a_member_gets_at_most_the_limit_and_a_release_gives_it_back(catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 10))
    sale = create(catalog, mid, sku, units=5, limit=2)
    member = new_id("mem")
    first = catalog.ReserveFlashSale(reserve_request(sale.flash_sale_id, member), metadata=internal(mid))
    catalog.ReserveFlashSale(reserve_request(sale.flash_sale_id, member), metadata=internal(mid))
    assert refused(catalog.ReserveFlashSale, reserve_request(sale.flash_sale_id, member),
                   metadata=internal(mid)) == (grpc.StatusCode.FAILED_PRECONDITION, "LIMIT_REACHED")
    assert refused(catalog.ReserveFlashSale, reserve_request(sale.flash_sale_id, quantity=3),
                   metadata=internal(mid)) == (grpc.StatusCode.FAILED_PRECONDITION, "LIMIT_REACHED")
    after = get_sale(catalog, mid, sale.flash_sale_id)
    assert (after.available_units, after.reserved_units) == (3, 2)  # refused members took nothing
    catalog.ReleaseReservation(CS.ReleaseReservationRequest(reservation_id=first.reservation.reservation_id),
                               metadata=internal(mid))
    after = get_sale(catalog, mid, sale.flash_sale_id)
    assert (after.available_units, after.reserved_units) == (4, 1)
    catalog.ReserveFlashSale(reserve_request(sale.flash_sale_id, member), metadata=internal(mid))
    assert levels(catalog, mid, sku) == (10, 5, 5)  # the SKU does not see the pool's inner moves


def test_before_and_after_the_window_members_are_told_why(catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 10))
    later = create(catalog, mid, sku, units=2, starts_in=3600)
    assert refused(catalog.ReserveFlashSale, reserve_request(later.flash_sale_id),
                   metadata=internal(mid)) == (grpc.StatusCode.FAILED_PRECONDITION, "NOT_STARTED")
    short = create(catalog, mid, sku, units=2, starts_in=-1, lasts=3)
    wait_until(lambda: get_sale(catalog, mid, short.flash_sale_id).state == CS.FLASH_SALE_STATE_ENDED,
               message="the sale ends")
    assert refused(catalog.ReserveFlashSale, reserve_request(short.flash_sale_id),
                   metadata=internal(mid)) == (grpc.StatusCode.FAILED_PRECONDITION, "ENDED")


def test_unsold_units_go_back_to_the_sku_after_the_sale_even_late_ones(catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 10))
    sale = create(catalog, mid, sku, units=6, starts_in=-1, lasts=4)
    held = catalog.ReserveFlashSale(reserve_request(sale.flash_sale_id), metadata=internal(mid))
    assert levels(catalog, mid, sku) == (10, 6, 4)
    # After the end, the five free units come back; the held one stays in the pool.
    assert wait_until(lambda: levels(catalog, mid, sku) == (10, 1, 9), timeout=20, message="free units returned")
    catalog.ReleaseReservation(CS.ReleaseReservationRequest(reservation_id=held.reservation.reservation_id),
                               metadata=internal(mid))
    assert wait_until(lambda: levels(catalog, mid, sku) == (10, 0, 10), message="the late release returned")
    after = get_sale(catalog, mid, sale.flash_sale_id)
    assert (after.available_units, after.reserved_units, after.sold_units) == (0, 0, 0)
    assert wait_until(lambda: audited(catalog, mid, sku), message="ledger matches the stock")


def test_units_held_by_a_reservation_never_written_are_released(stack, catalog, catalog_db):
    """The reserving process died between taking the units and writing the reservation."""
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 10))
    sale = create(catalog, mid, sku, units=2)
    member, rid = new_id("mem"), new_id("rsv")
    expired_ms = epoch_ms(now() - timedelta(minutes=5))
    catalog_db.flash_sales.update_one(
        {"_id": sale.flash_sale_id}, {"$inc": {"available": -1, "reserved": 1},
                                      "$set": {f"holds.{rid}": {"q": 1, "member_id": member, "exp_ms": expired_ms}}})
    catalog_db.flash_quotas.insert_one({"_id": f"{sale.flash_sale_id}:{member}", "merchant_id": mid,
                                        "flash_sale_id": sale.flash_sale_id, "member_id": member, "used": 1,
                                        "holds": {rid: 1}})
    wait_until(lambda: get_sale(catalog, mid, sale.flash_sale_id).available_units == 2, message="orphan released")
    assert catalog_db.flash_quotas.find_one({"_id": f"{sale.flash_sale_id}:{member}"})["used"] == 0
    catalog.ReserveFlashSale(reserve_request(sale.flash_sale_id, member), metadata=internal(mid))


# ---- buying through the order service


def buy(order, md, sale_id: str, key: str = "", quantity: int = 0) -> OS.Order:
    return order.PlaceFlashSaleOrder(buy_request(sale_id, key, quantity), metadata=md).order


def order_of(order, md, order_id: str) -> OS.Order:
    return order.GetOrder(OS.GetOrderRequest(order_id=order_id), metadata=md).order


async def test_300_members_at_once_buy_exactly_the_20_units(stack, catalog, order, order_db):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (5900, 100))
    sale = create(catalog, mid, sku, units=20, price=990)
    members = [new_id("mem") for _ in range(300)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.ports['order']}") as ch:
        stub = order_pb2_grpc.OrderServiceStub(ch)

        async def press_buy(member_id: str):
            started = time.monotonic()
            request = buy_request(sale.flash_sale_id)  # pressed again with the same key
            answer = await press(lambda: stub.PlaceFlashSaleOrder(request, metadata=buyer(mid, member_id)))
            return (answer if isinstance(answer, tuple) else answer.order), time.monotonic() - started
        started = time.monotonic()
        outcomes = await asyncio.gather(*(press_buy(m) for m in members))
        elapsed = time.monotonic() - started
    orders = [o for o, _ in outcomes if isinstance(o, OS.Order)]
    losers = [o for o, _ in outcomes if not isinstance(o, OS.Order)]
    assert len(orders) == 20 and len({o.member_id for o in orders}) == 20
    assert {(code, why) for code, why, _ in losers} == {(grpc.StatusCode.FAILED_PRECONDITION, "SOLD_OUT")}
    assert all(message for _, _, message in losers)
    for placed in orders:
        assert placed.state == OS.ORDER_STATE_PENDING_PAYMENT and placed.flash_sale_id == sale.flash_sale_id
        (line,) = placed.lines
        assert (line.sku_id, line.quantity, line.unit_price.amount, line.paid_amount.amount) == (sku, 1, 5900, 990)
        assert [(st.step, st.amount.amount, st.detail) for st in line.steps] == [
            ("ACTIVITY_PRICE", 4910, sale.flash_sale_id)]
        assert placed.expires_at.seconds - placed.created_at.seconds == 600
    assert order_db.orders.count_documents({"merchant_id": mid}) == 20
    after = get_sale(catalog, mid, sale.flash_sale_id)
    assert (after.available_units, after.reserved_units, after.sold_units) == (0, 20, 0) and pool_exact(after)
    assert levels(catalog, mid, sku) == (100, 20, 80)
    slowest_loser = max(t for o, t in outcomes if not isinstance(o, OS.Order))
    print(f"\n300 buyers, 20 units: all answered in {elapsed:.2f}s, slowest loser {slowest_loser:.2f}s")


def test_a_member_buys_at_most_the_limit_and_a_replay_is_the_same_order(catalog, order, order_db):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 10))
    sale = create(catalog, mid, sku, units=5, price=500, limit=2)
    md = buyer(mid)
    first = buy(order, md, sale.flash_sale_id, key="a")
    assert buy(order, md, sale.flash_sale_id, key="a") == first
    buy(order, md, sale.flash_sale_id, key="b")
    error = rpc_error(order.PlaceFlashSaleOrder, buy_request(sale.flash_sale_id, "c"), metadata=md)
    assert (error.code(), reason(error)) == (grpc.StatusCode.FAILED_PRECONDITION, "LIMIT_REACHED")
    assert "as many as" in error.details()
    assert order_db.orders.count_documents({"merchant_id": mid}) == 2
    two = buy(order, buyer(mid), sale.flash_sale_id, quantity=2)
    assert (two.lines[0].quantity, two.payable.amount) == (2, 1000)
    after = get_sale(catalog, mid, sale.flash_sale_id)
    assert (after.available_units, after.reserved_units) == (1, 4)


def test_unpaid_flash_orders_expire_and_their_units_sell_again(catalog, order):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 10))
    flash_expiry(order, mid, 2)
    sale = create(catalog, mid, sku, units=2)
    md_a, md_b = buyer(mid), buyer(mid)
    a, b = buy(order, md_a, sale.flash_sale_id), buy(order, md_b, sale.flash_sale_id)
    assert a.expires_at.seconds - a.created_at.seconds == 2
    assert refused(order.PlaceFlashSaleOrder, buy_request(sale.flash_sale_id), metadata=buyer(mid))[1] == "SOLD_OUT"
    wait_until(lambda: order_of(order, md_a, a.order_id).state == OS.ORDER_STATE_CANCELLED
               and order_of(order, md_b, b.order_id).state == OS.ORDER_STATE_CANCELLED, message="orders expired")
    wait_until(lambda: get_sale(catalog, mid, sale.flash_sale_id).available_units == 2, message="units back")
    # The expired order did not use up the member's limit.
    again = buy(order, md_a, sale.flash_sale_id)
    assert again.state == OS.ORDER_STATE_PENDING_PAYMENT
    buy(order, buyer(mid), sale.flash_sale_id)
    after = get_sale(catalog, mid, sale.flash_sale_id)
    assert (after.available_units, after.reserved_units, after.sold_units) == (0, 2, 0) and pool_exact(after)
    assert levels(catalog, mid, sku) == (10, 2, 8)


def test_a_paid_flash_order_sells_its_units_and_the_ledger_adds_up(catalog, order):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 10))
    sale = create(catalog, mid, sku, units=3, price=600, starts_in=-1, lasts=8)
    md = buyer(mid)
    placed = buy(order, md, sale.flash_sale_id)
    payment = order.PayOrder(OS.PayOrderRequest(order_id=placed.order_id, idempotency_key="p"), metadata=md).payment
    assert payment.amount.amount == 600
    order.CompleteSandboxPayment(OS.CompleteSandboxPaymentRequest(payment_id=payment.payment_id), metadata=md)
    assert order_of(order, md, placed.order_id).state == OS.ORDER_STATE_PAID
    wait_until(lambda: get_sale(catalog, mid, sale.flash_sale_id).sold_units == 1, message="units sold")
    assert wait_until(lambda: levels(catalog, mid, sku) == (9, 2, 7), message="the stock follows its pool")
    # The product's sales counter is raised after the stock movement is stored.
    assert wait_until(lambda: catalog.GetProduct(CS.GetProductRequest(product_id=sale.product_id),
                                                 metadata=shopper(mid)).product.sales == 1, message="sales counted")
    # After the sale the two unsold units go back to the SKU; the ledger explains it all.
    assert wait_until(lambda: levels(catalog, mid, sku) == (9, 0, 9), timeout=20, message="unsold units back")
    assert wait_until(lambda: audited(catalog, mid, sku), message="ledger matches the stock")
    kinds = [m.kind for m in catalog.AuditStock(CS.AuditStockRequest(sku_id=sku), metadata=staff(mid)).movements]
    assert sorted(kinds) == ["COMMIT", "INITIAL", "POOL_IN", "POOL_OUT"]
    after = get_sale(catalog, mid, sale.flash_sale_id)
    assert (after.available_units, after.reserved_units, after.sold_units) == (0, 0, 1)


def test_buying_is_refused_outside_the_window_for_another_merchant_and_for_bad_input(catalog, order, order_db):
    mid, other = new_merchant_id(), new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 10))
    later = create(catalog, mid, sku, units=2, starts_in=3600)
    assert refused(order.PlaceFlashSaleOrder, buy_request(later.flash_sale_id), metadata=buyer(mid)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "NOT_STARTED")
    sale = create(catalog, mid, sku, units=2)
    assert refused(order.PlaceFlashSaleOrder, buy_request(sale.flash_sale_id),
                   metadata=buyer(other))[0] == grpc.StatusCode.NOT_FOUND
    error = rpc_error(order.PlaceFlashSaleOrder, OS.PlaceFlashSaleOrderRequest(
        flash_sale_id="fls_1", quantity=101, remark="x" * 501,
        attribution=common_pb2.Attribution(persona_id="p1", channel=common_pb2.CHANNEL_H5)), metadata=buyer(mid))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"flash_sale_id", "idempotency_key", "quantity", "remark", "attribution.persona_id"} <= \
        set(field_violations(error))
    error = rpc_error(order.PlaceFlashSaleOrder, OS.PlaceFlashSaleOrderRequest(
        flash_sale_id=sale.flash_sale_id, idempotency_key="k",
        attribution=common_pb2.Attribution(channel=common_pb2.CHANNEL_H5)), metadata=buyer(mid))
    assert set(field_violations(error)) == {"attribution.channel"}
    assert refused(order.PlaceFlashSaleOrder, buy_request(sale.flash_sale_id),
                   metadata=staff(mid))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert order_db.orders.count_documents({"merchant_id": {"$in": [mid, other]}}) == 0
    assert get_sale(catalog, mid, sale.flash_sale_id).available_units == 2
