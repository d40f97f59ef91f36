"""After payment, over the order service's real gRPC port with the real catalog, the
embedded MongoDB and NATS: shipping, delivery, receipt (by the member and by the
auto-confirm job), and the staff's order search and detail."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest
from siyu.catalog.v1 import catalog_pb2_grpc
from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2, order_pb2 as OS, order_pb2_grpc

from siyu_kit import config, db
from siyu_kit.ids import new_id
from siyu_kit.protos import utcnow
from tests.support import database_fixture, field_violations, new_merchant_id, reason, rpc_error, stub_fixture
from tests.support.fulfilment import as_staff, paid_order, pay, ship, staff
from tests.support.order import events_found, make_skus, member, place

from services.order.adapters.documents import OrderSettingsDoc
from services.order.adapters.refunds import Refunds
from services.order.adapters.repositories import MongoOrders, MongoSettings
from services.order.application.fulfilment import FulfilmentUseCases

DAY_S = 24 * 3600

order = stub_fixture("order", order_pb2_grpc.OrderServiceStub)
catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
database = database_fixture("order")


def test_paid_shipped_delivered_completed_each_once(stack, order, catalog):
    mid = new_merchant_id()
    paid, _, md = paid_order(order, catalog, mid, (1999, 5, 2))
    shipped = ship(order, mid, paid.order_id)
    assert shipped.state == OS.ORDER_STATE_SHIPPED and shipped.version == paid.version + 1
    assert (shipped.shipment.carrier, shipped.shipment.tracking_number) == ("顺丰", "SF-1234567")
    assert shipped.auto_confirm_at.seconds - shipped.shipment.shipped_at.seconds == 10 * DAY_S
    # A repeat changes nothing, whatever it carries.
    assert ship(order, mid, paid.order_id, tracking="OTHER-1") == shipped
    delivered = order.MarkDelivered(OS.MarkDeliveredRequest(order_id=paid.order_id), metadata=staff(mid)).order
    assert delivered.state == OS.ORDER_STATE_DELIVERED and delivered.delivered_at.seconds > 0
    assert order.MarkDelivered(OS.MarkDeliveredRequest(order_id=paid.order_id), metadata=staff(mid)).order == delivered
    done = order.ConfirmReceipt(OS.ConfirmReceiptRequest(order_id=paid.order_id), metadata=md).order
    assert done.state == OS.ORDER_STATE_COMPLETED and done.completed_at.seconds > 0
    assert done.version == paid.version + 3
    assert order.ConfirmReceipt(OS.ConfirmReceiptRequest(order_id=paid.order_id), metadata=md).order == done
    assert as_staff(order, mid, paid.order_id).order == done

    # Late moves are refused with a reason.
    error = rpc_error(ship, order, mid, paid.order_id)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "ORDER_NOT_SHIPPABLE"
    error = rpc_error(order.MarkDelivered, OS.MarkDeliveredRequest(order_id=paid.order_id), metadata=staff(mid))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "ORDER_NOT_SHIPPED"

    for subject in ("shipped", "delivered", "completed"):
        (event,) = asyncio.run(events_found(stack, f"siyu.order.order.{subject}", paid.order_id))
        assert event.merchant_id == mid and event.channel == common_pb2.CHANNEL_H5
    (event,) = asyncio.run(events_found(stack, "siyu.order.order.completed", paid.order_id))
    payload = events_pb2.OrderCompleted()
    assert event.payload.Unpack(payload) and payload.confirmed_by == "MEMBER"
    assert payload.order.state == OS.ORDER_STATE_COMPLETED and payload.order.version == done.version


def test_receipt_can_be_confirmed_before_delivery_but_not_before_shipping(order, catalog):
    mid = new_merchant_id()
    paid, _, md = paid_order(order, catalog, mid, (500, 5, 1))
    error = rpc_error(order.ConfirmReceipt, OS.ConfirmReceiptRequest(order_id=paid.order_id), metadata=md)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "ORDER_NOT_SHIPPED"
    error = rpc_error(order.MarkDelivered, OS.MarkDeliveredRequest(order_id=paid.order_id), metadata=staff(mid))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    ship(order, mid, paid.order_id)
    done = order.ConfirmReceipt(OS.ConfirmReceiptRequest(order_id=paid.order_id), metadata=md).order
    assert done.state == OS.ORDER_STATE_COMPLETED
    unpaid = place(order, md, "unpaid", (make_skus(catalog, mid, (100, 5))[0], 1))
    error = rpc_error(ship, order, mid, unpaid.order_id)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "ORDER_NOT_SHIPPABLE"


@pytest.fixture(scope="module")
def storage(stack):
    settings = config.load("order")
    db.connect(stack.mongodb_uri, settings.mongodb_db, threads=4)
    return settings


async def test_auto_confirm_completes_due_orders_once(stack, storage, order, catalog, database):
    mid = new_merchant_id()
    # The merchant confirms after 1 day.
    await db.run_sync(OrderSettingsDoc(id=new_id("ost"), merchant_id=mid, auto_confirm_days=1).save)
    due, _, md = paid_order(order, catalog, mid, (300, 5, 1))
    later, _, _ = paid_order(order, catalog, mid, (300, 5, 1), md=md)
    shipped = ship(order, mid, due.order_id)
    assert shipped.auto_confirm_at.seconds - shipped.shipment.shipped_at.seconds == DAY_S
    ship(order, mid, later.order_id)
    delivered = order.MarkDelivered(OS.MarkDeliveredRequest(order_id=due.order_id), metadata=staff(mid)).order
    # Its day has passed.
    database.orders.update_one({"_id": due.order_id}, {"$inc": {"auto_confirm_ms": -DAY_S * 1000 - 1}})

    jobs = [FulfilmentUseCases(orders=MongoOrders(), refunds=Refunds(), settings=MongoSettings())
            for _ in range(3)]
    await asyncio.gather(*(job.auto_confirm_due(limit=10_000) for job in jobs))
    done = as_staff(order, mid, due.order_id).order
    assert done.state == OS.ORDER_STATE_COMPLETED and done.version == delivered.version + 1
    assert as_staff(order, mid, later.order_id).order.state == OS.ORDER_STATE_SHIPPED
    (event,) = await events_found(stack, "siyu.order.order.completed", due.order_id)
    payload = events_pb2.OrderCompleted()
    assert event.payload.Unpack(payload) and payload.confirmed_by == "AUTO"
    # A run a day later (a restart reads the same stored times) confirms the other one.
    tomorrow = FulfilmentUseCases(orders=MongoOrders(), refunds=Refunds(), settings=MongoSettings(),
                                  clock=lambda: utcnow() + timedelta(days=1, minutes=1))
    await tomorrow.auto_confirm_due(limit=10_000)
    assert as_staff(order, mid, later.order_id).order.state == OS.ORDER_STATE_COMPLETED
    assert as_staff(order, mid, due.order_id).order.version == done.version


def test_bad_fulfilment_input_changes_nothing(order, catalog):
    mid = new_merchant_id()
    paid, _, md = paid_order(order, catalog, mid, (500, 5, 1))
    cases = [
        (dict(order_id="x", carrier="SF", tracking_number="1"), {"order_id"}),
        (dict(order_id=paid.order_id, carrier="", tracking_number="SF1"), {"carrier"}),
        (dict(order_id=paid.order_id, carrier="x" * 33, tracking_number="SF1"), {"carrier"}),
        (dict(order_id=paid.order_id, carrier="SF", tracking_number=""), {"tracking_number"}),
        (dict(order_id=paid.order_id, carrier="SF", tracking_number="SF 123"), {"tracking_number"}),
        (dict(order_id=paid.order_id, carrier="SF", tracking_number="9" * 65), {"tracking_number"}),
    ]
    for fields, expected in cases:
        error = rpc_error(order.ShipOrder, OS.ShipOrderRequest(**fields), metadata=staff(mid))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and set(field_violations(error)) == expected
    for call, request in ((order.MarkDelivered, OS.MarkDeliveredRequest(order_id="ord_1")),
                          (order.GetOrderAsStaff, OS.GetOrderAsStaffRequest(order_id="")),
                          (order.ConfirmReceipt, OS.ConfirmReceiptRequest(order_id="nope"))):
        md_for = md if call is order.ConfirmReceipt else staff(mid)
        error = rpc_error(call, request, metadata=md_for)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and set(field_violations(error)) == {"order_id"}
    assert as_staff(order, mid, paid.order_id).order == paid


def test_other_merchants_and_members_cannot_move_or_read_the_order(order, catalog):
    mid = new_merchant_id()
    paid, _, md = paid_order(order, catalog, mid, (500, 5, 1))
    other = new_merchant_id()
    for call, request in ((order.ShipOrder, OS.ShipOrderRequest(order_id=paid.order_id, carrier="SF",
                                                                tracking_number="SF1")),
                          (order.MarkDelivered, OS.MarkDeliveredRequest(order_id=paid.order_id)),
                          (order.GetOrderAsStaff, OS.GetOrderAsStaffRequest(order_id=paid.order_id))):
        assert rpc_error(call, request, metadata=staff(other)).code() == grpc.StatusCode.NOT_FOUND
        # Members are not staff; staff need the RPC's role.
        assert rpc_error(call, request, metadata=md).code() in (grpc.StatusCode.UNAUTHENTICATED,
                                                                grpc.StatusCode.PERMISSION_DENIED)
        if call is not order.GetOrderAsStaff:  # a guide reads orders (address masked), never moves them
            assert rpc_error(call, request, metadata=staff(mid, "GUIDE")).code() == grpc.StatusCode.PERMISSION_DENIED
    for intruder in (member(other), member(mid)):
        error = rpc_error(order.ConfirmReceipt, OS.ConfirmReceiptRequest(order_id=paid.order_id), metadata=intruder)
        assert error.code() == grpc.StatusCode.NOT_FOUND
    error = rpc_error(order.SearchOrders, OS.SearchOrdersRequest(), metadata=md)
    assert error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    assert order.SearchOrders(OS.SearchOrdersRequest(), metadata=staff(other)).orders == []
    assert as_staff(order, mid, paid.order_id).order == paid


def test_staff_search_by_state_time_channel_and_member_newest_first(order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (100, 50))
    alice, bob = member(mid), member(mid, ch="LIVE")
    placed = [place(order, alice, f"a{i}", (sku, 1)) for i in range(3)] + \
             [place(order, bob, f"b{i}", (sku, 1)) for i in range(2)]
    paid = pay(order, alice, placed[1])
    md = staff(mid)

    def search(**fields) -> list[str]:
        return [o.order_id for o in order.SearchOrders(OS.SearchOrdersRequest(**fields), metadata=md).orders]

    newest_first = [o.order_id for o in reversed(placed)]
    assert search() == newest_first
    assert search(state=OS.ORDER_STATE_PAID) == [paid.order_id]
    assert search(state=OS.ORDER_STATE_PENDING_PAYMENT) == [o for o in newest_first if o != paid.order_id]
    assert search(channel=common_pb2.CHANNEL_LIVE) == newest_first[:2]
    assert search(member_id=placed[0].member_id) == newest_first[2:]
    assert search(member_id=placed[0].member_id, channel=common_pb2.CHANNEL_LIVE) == []
    assert search(created_from=placed[3].created_at) == newest_first[:2]
    assert search(created_to=placed[3].created_at) == newest_first[2:]
    pages, token = [], ""
    while True:
        resp = order.SearchOrders(OS.SearchOrdersRequest(page_size=2, page_token=token), metadata=md)
        pages.append([o.order_id for o in resp.orders])
        token = resp.next_page_token
        if not token:
            break
    assert pages == [newest_first[:2], newest_first[2:4], newest_first[4:]]

    bad = [(dict(page_size=101), {"page_size"}), (dict(page_size=-1), {"page_size"}),
           (dict(page_token="garbage"), {"page_token"}), (dict(member_id="usr_1"), {"member_id"}),
           (dict(state=99, channel=42), {"state", "channel"}),
           (dict(created_from=placed[3].created_at, created_to=placed[0].created_at), {"created_to"})]
    for fields, expected in bad:
        error = rpc_error(order.SearchOrders, OS.SearchOrdersRequest(**fields), metadata=md)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and set(field_violations(error)) == expected
    detail = as_staff(order, mid, paid.order_id)
    assert detail.order == paid and detail.refunds == []
    assert [(p.state, p.amount.amount) for p in detail.payments] == [(OS.PAYMENT_STATE_SUCCEEDED, 100)]
