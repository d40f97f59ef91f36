"""No paid order loses its stock, and every captured payment ends applied or refunded:
when order events reach the catalog after the reservation expired, when a payment
reaches stock that was released and sold meanwhile, and when the step after a payment
succeeded was lost."""
from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import nats
import pytest
from pymongo import MongoClient

from siyu_kit import config, context
from siyu_kit.events.outbox import make_event
from siyu_kit.ids import new_id
from siyu_kit.protos import epoch_ms
from tests.support import channel, metadata, wait_until

# Slow failure scenarios: `make chaos` runs them (see the Makefile).
pytestmark = pytest.mark.chaos

# Tests here read what the merchant holds as a whole, or change it: a new merchant for each.
SHOP_PER_TEST = True

UNPAID_EXPIRY_S = 3
# Long enough to place five orders, stop nats-server and pay three before they expire,
# on a machine busy with other tests too.
HELD_EXPIRY_S = 6
UNFULFILLABLE = "siyu.catalog.reservation.unfulfillable"


def place(shop, token: str, sku: str, quantity: int = 1) -> dict:
    resp = shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": quantity}]})
    assert resp.status_code == 200, resp.text
    return resp.json()["order"]


def my_order(shop, token: str, order_id: str) -> dict:
    resp = shop.call("GET", f"/v1/orders/{order_id}", token=token)
    assert resp.status_code == 200, resp.text
    return resp.json()["order"]


def staff_view(shop, order_id: str) -> dict:
    resp = shop.as_staff("GET", f"/v1/staff/orders/{order_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def ledger(shop, order_id: str) -> dict:
    resp = shop.as_staff("GET", f"/v1/staff/orders/{order_id}/ledger")
    assert resp.status_code == 200, resp.text
    return resp.json()


def assert_audit(shop, sku: str, expected: dict) -> Counter:
    audit = shop.audit(sku)
    assert audit["consistent"] is True, audit
    assert {k: int(v) for k, v in audit["stock"].items() if k != "sku_id"} == expected, audit
    return Counter(m["kind"] for m in audit["movements"])


def start_pay(shop, token: str, order_id: str) -> dict:
    resp = shop.call("POST", f"/v1/orders/{order_id}:pay", token=token, json={"idempotency_key": uuid.uuid4().hex})
    assert resp.status_code == 200, resp.text
    return resp.json()["payment"]


# ---- events delayed past the reservation's expiry ----------------------------------

@pytest.mark.skipif(bool(os.environ.get("NATS_URL")), reason="stops the suite's own nats-server")
def test_orders_paid_while_events_are_held_keep_their_stock_past_the_reservation_expiry(stack, shop):
    shop.update_order_settings(unpaid_expiry_seconds=str(HELD_EXPIRY_S))
    sku = shop.new_sku(stock=6)
    tokens = [shop.login(f"late-{uuid.uuid4().hex[:8]}")["access_token"] for _ in range(5)]
    orders = [place(shop, t, sku) for t in tokens]
    assert shop.stock(sku) == {"on_hand": 6, "reserved": 5, "available": 1}

    paid_ids: list[str] = []
    stack.stop("nats")
    try:
        # order.paid and order.cancelled wait in the order service's outbox.
        for token, order in zip(tokens[:3], orders[:3]):
            shop.pay(token, order["order_id"])
            paid_ids.append(order["order_id"])
        # Past the orders' expiry and the reservations' grace, the sweeper has run many
        # times: the paid orders' units are sold, the expired orders' units are back.
        wait_until(lambda: shop.stock(sku) == {"on_hand": 3, "reserved": 0, "available": 3}, timeout=30,
                   interval=0.3, message="the sweeper committed the paid orders and released the cancelled ones")
        # The freed units sell again, and no more than are there.
        buyers = [shop.login(f"next-{uuid.uuid4().hex[:8]}")["access_token"] for _ in range(4)]
        sold_again = 0
        for token in buyers:
            resp = shop.call("POST", "/v1/orders", token=token, json={
                "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": 1}]})
            if resp.status_code == 200:
                shop.pay(token, resp.json()["order"]["order_id"])
                paid_ids.append(resp.json()["order"]["order_id"])
                sold_again += 1
            else:
                assert resp.json()["error"]["reason"] == "OUT_OF_STOCK", resp.text
        assert sold_again == 3
    finally:
        if "nats" not in stack.procs:
            stack.start_nats()
        stack.wait_ready(timeout=60)

    # The held events arrive late and change nothing: the reservations are settled.
    owners = dict(zip([o["order_id"] for o in orders], tokens))
    wait_until(lambda: shop.stock(sku) == {"on_hand": 0, "reserved": 0, "available": 0}, timeout=30,
               message="every paid unit sold once")
    states = Counter(my_order(shop, owners[o["order_id"]], o["order_id"])["state"] for o in orders)
    assert states == Counter({"ORDER_STATE_PAID": 3, "ORDER_STATE_CANCELLED": 2}), states
    refunds = sum(1 for oid in paid_ids
                  if any(p["state"] == "PAYMENT_STATE_REFUNDED" for p in staff_view(shop, oid)["payments"]))
    assert all(ledger(shop, oid)["balanced"] for oid in paid_ids)
    kinds = assert_audit(shop, sku, {"on_hand": 0, "reserved": 0, "available": 0})
    oversold = len(paid_ids) - 6
    print(f"\nevents held past expiry + grace: paid orders={len(paid_ids)} refunds={refunds} oversold={oversold}")
    assert (kinds["COMMIT"], kinds["RELEASE"], refunds, oversold) == (6, 2, 0, 0), kinds


# ---- a payment that reaches released stock -------------------------------------------

def release_as_the_order_service(stack, shop, reservation_id: str) -> None:
    """What the order service does when placing fails, or what the sweeper did to an
    order written late: the reservation goes back before the order is paid."""
    from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc
    with channel(stack, "catalog") as ch:
        catalog_pb2_grpc.CatalogServiceStub(ch).ReleaseReservation(
            catalog_pb2.ReleaseReservationRequest(reservation_id=reservation_id),
            metadata=metadata(shop.data["merchant_id"], service="order"), timeout=10)


def replay_unfulfillable(stack, shop, order: dict) -> None:
    """Publish the catalog's unfulfillable event for `order` again, under a new message id,
    and wait until the order service has handled it."""
    from siyu.catalog.v1 import catalog_pb2, events_pb2

    token = context.use(context.RequestContext(request_id=new_id("req")))
    try:
        event = make_event(UNFULFILLABLE, merchant_id=shop.data["merchant_id"], aggregate_id=order["reservation_id"],
                           aggregate_version=9, payload=events_pb2.ReservationChanged(
                               reservation=catalog_pb2.Reservation(reservation_id=order["reservation_id"],
                                                                   order_id=order["order_id"])))
    finally:
        context.reset(token)

    async def publish() -> int:
        nc = await nats.connect(stack.nats_url)
        try:
            return (await nc.jetstream().publish(UNFULFILLABLE, event.data,
                                                 headers={"Nats-Msg-Id": event.event_id})).seq
        finally:
            await nc.close()

    async def handled(seq: int) -> bool:
        nc = await nats.connect(stack.nats_url)
        try:
            info = await nc.jetstream().consumer_info("SIYU_CATALOG", "order-reservation-unfulfillable")
            return info.ack_floor.stream_seq >= seq
        finally:
            await nc.close()

    seq = asyncio.run(publish())
    wait_until(lambda: asyncio.run(handled(seq)), timeout=15, message="the replay was handled")


def test_a_payment_for_released_stock_that_is_gone_is_refunded_and_the_order_cancelled(stack, shop):
    sku = shop.new_sku(stock=2)
    late, other = (shop.login(f"gone-{uuid.uuid4().hex[:8]}")["access_token"] for _ in range(2))
    order = place(shop, late, sku, 2)
    release_as_the_order_service(stack, shop, order["reservation_id"])
    rival = place(shop, other, sku, 2)  # the released units are sold to someone else
    shop.pay(other, rival["order_id"])
    wait_until(lambda: shop.stock(sku) == {"on_hand": 0, "reserved": 0, "available": 0}, timeout=15,
               message="the rival's units sold")

    shop.pay(late, order["order_id"])
    wait_until(lambda: my_order(shop, late, order["order_id"])["state"] == "ORDER_STATE_CANCELLED", timeout=20,
               message="the order the catalog could not fill was cancelled")
    seen = my_order(shop, late, order["order_id"])
    assert seen["cancel_reason"] == "STOCK_UNAVAILABLE", seen
    assert seen["refunded_amount"]["amount"] == seen["payable"]["amount"], seen
    payments = staff_view(shop, order["order_id"])["payments"]
    assert [(p["state"], p["refund_reason"]) for p in payments] == [("PAYMENT_STATE_REFUNDED", "STOCK_UNAVAILABLE")]
    entries = ledger(shop, order["order_id"])
    assert entries["balanced"] is True, entries
    assert sorted(e["kind"] for e in entries["entries"]) == ["ORDER_PAYMENT", "STOCK_REFUND"], entries
    kinds = assert_audit(shop, sku, {"on_hand": 0, "reserved": 0, "available": 0})
    assert kinds["COMMIT"] == 1, kinds  # only the rival's units were sold

    # Replaying the event (as from the dead-letter stream) refunds nothing twice.
    replay_unfulfillable(stack, shop, order)
    assert my_order(shop, late, order["order_id"]) == seen
    assert staff_view(shop, order["order_id"])["payments"] == payments
    assert ledger(shop, order["order_id"]) == entries
    print("\nunfulfillable: paid orders=2 refunds=1 oversold=0")


def test_a_payment_for_released_stock_still_there_holds_it_again_and_sells_it(stack, shop):
    sku = shop.new_sku(stock=3)
    token = shop.login(f"again-{uuid.uuid4().hex[:8]}")["access_token"]
    order = place(shop, token, sku, 2)
    release_as_the_order_service(stack, shop, order["reservation_id"])
    assert shop.stock(sku) == {"on_hand": 3, "reserved": 0, "available": 3}

    shop.pay(token, order["order_id"])
    wait_until(lambda: shop.stock(sku) == {"on_hand": 1, "reserved": 0, "available": 1}, timeout=20,
               message="the units were held again and sold")
    assert my_order(shop, token, order["order_id"])["state"] == "ORDER_STATE_PAID"
    kinds = assert_audit(shop, sku, {"on_hand": 1, "reserved": 0, "available": 1})
    assert (kinds["RESERVE"], kinds["RELEASE"], kinds["COMMIT"]) == (2, 1, 1), kinds
    assert ledger(shop, order["order_id"])["balanced"] is True


def test_a_flash_payment_for_units_back_in_the_pool_takes_them_again_or_is_refunded(stack, shop):
    sku = shop.new_sku(stock=10)
    now = datetime.now(timezone.utc)
    created = shop.as_staff("POST", "/v1/staff/flash-sales", json={
        "title": "late payments", "sku_id": sku, "price": {"amount": "5000", "currency": "CNY"}, "units": "2",
        "starts_at": (now + timedelta(seconds=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(),
        "idempotency_key": uuid.uuid4().hex})
    assert created.status_code == 200, created.text
    sale_id = created.json()["flash_sale"]["flash_sale_id"]

    def pool() -> tuple[int, int, int]:
        sale = shop.call("GET", f"/v1/flash-sales/{sale_id}").json()["flash_sale"]
        return int(sale["available_units"]), int(sale["reserved_units"]), int(sale["sold_units"])

    def buy(token: str) -> dict:
        def attempt():
            resp = shop.call("POST", f"/v1/flash-sales/{sale_id}:buy", token=token,
                             json={"idempotency_key": uuid.uuid4().hex})
            return resp.json()["order"] if resp.status_code == 200 else None
        return wait_until(attempt, timeout=15, interval=0.2, message="the sale started and sold a unit")

    a, b, c = (shop.login(f"flash-{uuid.uuid4().hex[:8]}")["access_token"] for _ in range(3))
    # Released before the payment, units still in the pool: taken again and sold.
    first = buy(a)
    release_as_the_order_service(stack, shop, first["reservation_id"])
    assert pool() == (2, 0, 0)
    shop.pay(a, first["order_id"])
    wait_until(lambda: pool() == (1, 0, 1), timeout=20, message="the late payment took its unit again")
    assert my_order(shop, a, first["order_id"])["state"] == "ORDER_STATE_PAID"

    # Released, and the unit sold to someone else meanwhile: refunded.
    second = buy(b)
    release_as_the_order_service(stack, shop, second["reservation_id"])
    third = buy(c)
    shop.pay(c, third["order_id"])
    wait_until(lambda: pool() == (0, 0, 2), timeout=20, message="the rival's unit sold")
    shop.pay(b, second["order_id"])
    wait_until(lambda: my_order(shop, b, second["order_id"])["state"] == "ORDER_STATE_CANCELLED", timeout=20,
               message="the flash order whose unit was gone was cancelled")
    assert my_order(shop, b, second["order_id"])["cancel_reason"] == "STOCK_UNAVAILABLE"
    assert ledger(shop, second["order_id"])["balanced"] is True
    assert pool() == (0, 0, 2)
    wait_until(lambda: shop.stock(sku)["on_hand"] == 8, timeout=15, message="the SKU followed its pool")
    assert shop.audit(sku)["consistent"] is True


# ---- a payment whose second step was lost ------------------------------------------------

def succeed_without_applying(stack, payment_id: str) -> None:
    """What a crash between the payment's write and the order's leaves behind: the
    provider took the money, the payment says SUCCEEDED, the order knows nothing."""
    client = MongoClient(stack.mongodb_uri, tz_aware=True)
    try:
        now = datetime.now(timezone.utc)
        done = client[config.load("order").mongodb_db]["payments"].update_one(
            {"_id": payment_id, "state": "PENDING"},
            {"$set": {"state": "SUCCEEDED", "provider_txn_id": f"sbx_txn_{uuid.uuid4().hex}", "succeeded_at": now,
                      "open": 1, "reconcile_ms": epoch_ms(now + timedelta(seconds=5))},
             "$inc": {"version": 1}})
        assert done.modified_count == 1
    finally:
        client.close()


def test_a_succeeded_payment_whose_order_never_heard_of_it_is_applied_by_the_job(stack, shop):
    sku = shop.new_sku(stock=2)
    token = shop.login(f"lost-{uuid.uuid4().hex[:8]}")["access_token"]
    order = place(shop, token, sku)
    payment = start_pay(shop, token, order["order_id"])
    succeed_without_applying(stack, payment["payment_id"])
    # Money the provider captured is in no ledger account yet.
    assert ledger(shop, order["order_id"])["balanced"] is False

    wait_until(lambda: my_order(shop, token, order["order_id"])["state"] == "ORDER_STATE_PAID", timeout=30,
               interval=0.3, message="the reconcile job applied the payment")
    assert ledger(shop, order["order_id"])["balanced"] is True
    wait_until(lambda: shop.stock(sku) == {"on_hand": 1, "reserved": 0, "available": 1}, timeout=15,
               message="the paid unit was sold")


def test_a_succeeded_payment_on_an_order_that_expired_meanwhile_is_refunded_by_the_job(stack, shop):
    shop.update_order_settings(unpaid_expiry_seconds=str(UNPAID_EXPIRY_S))
    sku = shop.new_sku(stock=2)
    token = shop.login(f"expired-{uuid.uuid4().hex[:8]}")["access_token"]
    order = place(shop, token, sku)
    payment = start_pay(shop, token, order["order_id"])
    succeed_without_applying(stack, payment["payment_id"])
    assert ledger(shop, order["order_id"])["balanced"] is False
    wait_until(lambda: my_order(shop, token, order["order_id"])["state"] == "ORDER_STATE_CANCELLED", timeout=20,
               message="the unpaid order expired")

    def refunded() -> bool:
        return [p["state"] for p in staff_view(shop, order["order_id"])["payments"]] == ["PAYMENT_STATE_REFUNDED"]

    wait_until(refunded, timeout=30, interval=0.3, message="the reconcile job refunded the payment")
    assert staff_view(shop, order["order_id"])["payments"][0]["refund_reason"] == "ORDER_CANCELLED"
    found = ledger(shop, order["order_id"])
    assert found["balanced"] is True, found
    assert sorted(e["kind"] for e in found["entries"]) == ["AUTO_REFUND", "UNAPPLIED_PAYMENT"], found
    wait_until(lambda: shop.stock(sku) == {"on_hand": 2, "reserved": 0, "available": 2}, timeout=15,
               message="the expired order's unit came back")
