"""The catalog service over real gRPC against the embedded MongoDB and NATS."""
from __future__ import annotations

import asyncio
import threading

import grpc
import pytest
from siyu.catalog.v1 import catalog_pb2 as pb, catalog_pb2_grpc
from siyu.order.v1 import events_pb2 as order_events

from siyu_kit.ids import new_id
from tests.support import field_violations, metadata, new_merchant_id, wait_until, database_fixture, stub_fixture
from tests.support.catalog import _publish, internal, order_event, reserve, shopper, sku_input, staff, stock_of, upsert

from services.catalog.domain import stock as rules


stub = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
db = database_fixture("catalog")


def ledger(db, m, sku_id):
    return rules.recompute(rules.Deltas(d["on_hand_delta"], d["reserved_delta"], d["available_delta"])
                           for d in db.stock_movements.find({"merchant_id": m, "sku_id": sku_id}))


def assert_ledger_matches(stub, db, m, sku_id):
    """The stored ledger adds up to the stock once the ledger writer job has stored the
    holds that reserving leaves owed on the stock (within a second or so)."""
    s = stock_of(stub, m, sku_id)
    levels = rules.Levels(s.on_hand, s.reserved, s.available)
    wait_until(lambda: ledger(db, m, sku_id) == levels, timeout=20,
               message=f"the stored ledger of {sku_id} adding up to {levels}")
    assert s.available == s.on_hand - s.reserved


def code_of(call):
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


# ---- products

def test_upsert_twice_creates_once_and_never_reapplies_stock(stub, db):
    m = new_merchant_id()
    first = upsert(stub, m, skus=[sku_input("S1", stock=5)])
    assert first.created and first.product.version == 1
    sku_id = first.product.skus[0].sku_id
    reserve(stub, m, [(sku_id, 2)])
    again = upsert(stub, m, title="Summer Dress v2", skus=[sku_input("S1", price=900, stock=5), sku_input("S2", stock=7)])
    assert not again.created
    assert again.product.product_id == first.product.product_id and again.product.version == 2
    assert again.product.title == "Summer Dress v2" and again.product.min_price.amount == 900
    skus = {s.code: s for s in again.product.skus}
    assert skus["S1"].sku_id == sku_id and skus["S1"].available == 3
    assert skus["S2"].available == 7
    assert db.products.count_documents({"merchant_id": m}) == 1
    s1 = stock_of(stub, m, sku_id)
    assert (s1.on_hand, s1.reserved, s1.available) == (5, 2, 3)
    assert_ledger_matches(stub, db, m, sku_id)
    assert_ledger_matches(stub, db, m, skus["S2"].sku_id)


def test_upsert_bad_input_is_rejected_with_violations_and_writes_nothing(stub, db):
    m = new_merchant_id()
    err = code_of(lambda: upsert(stub, m, code="bad code!", title="", skus=[
        sku_input("A", price=-1, stock=10_000_001), pb.SkuInput(code="A", list_price={"amount": 1, "currency": "USD"})]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    v = field_violations(err)
    assert {"code", "title", "skus[0].list_price.amount", "skus[0].initial_stock",
            "skus[1].list_price.currency"} <= set(v)
    # Rules between SKUs are checked once each SKU is well-formed.
    err = code_of(lambda: upsert(stub, m, skus=[sku_input("A"), sku_input("A")]))
    assert set(field_violations(err)) == {"skus[1].code"}
    err = code_of(lambda: upsert(stub, m, skus=[]))
    assert "skus" in field_violations(err)
    assert db.products.count_documents({"merchant_id": m}) == 0
    assert db.stock.count_documents({"merchant_id": m}) == 0


def test_upsert_needs_staff(stub):
    m = new_merchant_id()
    err = code_of(lambda: stub.UpsertProduct(pb.UpsertProductRequest(code="X"), metadata=shopper(m)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    err = code_of(lambda: stub.UpsertProduct(pb.UpsertProductRequest(code="X"),
                                             metadata=metadata(m, staff_id="stf_2", roles=("FINANCE",))))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


def test_list_search_filters_and_shelf(stub):
    m = new_merchant_id()
    dress, coat = (stub.CreateCategory(pb.CreateCategoryRequest(name=n), metadata=staff(m)).category.category_id
                   for n in ("连衣裙", "大衣"))
    upsert(stub, m, code="C1", title="夏季碎花连衣裙", category_id=dress, tags=["new"])
    upsert(stub, m, code="C2", title="Summer Dress", tags=["sale"])
    upsert(stub, m, code="C3", title="羊毛大衣 Wool Coat", category_id=coat)
    upsert(stub, m, code="C4", title="连衣裙 draft", status=pb.PRODUCT_STATUS_DRAFT)

    def titles(**kw):
        return [p.title for p in stub.ListProducts(pb.ListProductsRequest(**kw), metadata=shopper(m)).products]

    assert titles() == ["羊毛大衣 Wool Coat", "Summer Dress", "夏季碎花连衣裙"]
    assert titles(keyword="连衣裙") == ["夏季碎花连衣裙"]
    assert titles(keyword="碎花") == ["夏季碎花连衣裙"]
    assert titles(keyword="dress") == ["Summer Dress"]
    assert titles(keyword="DRE") == ["Summer Dress"]
    assert titles(keyword="wool 大衣") == ["羊毛大衣 Wool Coat"]
    assert titles(keyword="裙子") == []
    assert titles(category_id=coat) == ["羊毛大衣 Wool Coat"]
    assert titles(tag="sale") == ["Summer Dress"]
    other = new_merchant_id()
    assert stub.ListProducts(pb.ListProductsRequest(), metadata=shopper(other)).products == []


def test_cursor_pagination_stays_correct_while_products_are_added(stub):
    m = new_merchant_id()
    for i in range(5):
        upsert(stub, m, code=f"P{i}", title=f"Item {i}")
    page = stub.ListProducts(pb.ListProductsRequest(page_size=2), metadata=shopper(m))
    assert [p.code for p in page.products] == ["P4", "P3"] and page.next_page_token
    upsert(stub, m, code="P9", title="Newer")
    seen = [p.code for p in page.products]
    token = page.next_page_token
    while token:
        page = stub.ListProducts(pb.ListProductsRequest(page_size=2, page_token=token), metadata=shopper(m))
        seen += [p.code for p in page.products]
        token = page.next_page_token
    assert seen == ["P4", "P3", "P2", "P1", "P0"]
    for bad in ({"page_size": 101}, {"page_size": -1}, {"page_token": "garbage"}):
        err = code_of(lambda: stub.ListProducts(pb.ListProductsRequest(**bad), metadata=shopper(m)))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(field_violations(err)) & {"page_size", "page_token"}


def test_get_product_visibility_and_isolation(stub):
    a, b = new_merchant_id(), new_merchant_id()
    on = upsert(stub, a, code="ON").product
    draft = upsert(stub, a, code="DR", status=pb.PRODUCT_STATUS_DRAFT).product
    got = stub.GetProduct(pb.GetProductRequest(product_id=on.product_id), metadata=shopper(a)).product
    assert got.skus[0].available == 10 and got.min_price.amount == 1000
    for pid, md in ((draft.product_id, shopper(a)), (on.product_id, shopper(b))):
        err = code_of(lambda: stub.GetProduct(pb.GetProductRequest(product_id=pid), metadata=md))
        assert err.code() == grpc.StatusCode.NOT_FOUND
    err = code_of(lambda: stub.GetProduct(pb.GetProductRequest(product_id="nope"), metadata=shopper(a)))
    assert "product_id" in field_violations(err)
    # Merchant B upserting the same code gets its own product; A's is untouched.
    theirs = upsert(stub, b, code="ON", title="B's product").product
    assert theirs.product_id != on.product_id
    assert stub.GetProduct(pb.GetProductRequest(product_id=on.product_id), metadata=shopper(a)).product.title == "Summer Dress"


def test_get_skus_and_get_stock(stub):
    a, b = new_merchant_id(), new_merchant_id()
    p = upsert(stub, a, title="T恤", skus=[sku_input("S1", price=5900, stock=3, 颜色="红")]).product
    sku_id = p.skus[0].sku_id
    got = stub.GetSkus(pb.GetSkusRequest(sku_ids=[sku_id, new_id("sku")]), metadata=internal(a)).skus
    assert len(got) == 1
    assert got[0].product_title == "T恤" and got[0].sku.list_price.amount == 5900
    assert got[0].sku.attributes["颜色"] == "红" and got[0].product_status == pb.PRODUCT_STATUS_ON_SHELF
    assert stub.GetSkus(pb.GetSkusRequest(sku_ids=[sku_id]), metadata=internal(b)).skus == []
    err = code_of(lambda: stub.GetSkus(pb.GetSkusRequest(sku_ids=["x"]), metadata=internal(a)))
    assert "sku_ids[0]" in field_violations(err)
    err = code_of(lambda: stub.GetSkus(pb.GetSkusRequest(sku_ids=[sku_id]), metadata=shopper(a)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert stock_of(stub, a, sku_id).on_hand == 3
    err = code_of(lambda: stock_of(stub, b, sku_id))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = code_of(lambda: stock_of(stub, a, "bad"))
    assert "sku_id" in field_violations(err)


# ---- reservations

def test_reserve_is_all_or_none(stub, db):
    m = new_merchant_id()
    p = upsert(stub, m, skus=[sku_input("A", stock=5), sku_input("B", stock=1)]).product
    a, b = (s.sku_id for s in p.skus)
    rid = new_id("rsv")
    err = code_of(lambda: reserve(stub, m, [(a, 2), (b, 2)], rid=rid))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "lines[1].quantity" in field_violations(err)
    for sku_id, on_hand in ((a, 5), (b, 1)):
        s = stock_of(stub, m, sku_id)
        assert (s.on_hand, s.reserved, s.available) == (on_hand, 0, on_hand)
        assert_ledger_matches(stub, db, m, sku_id)
    got = stub.GetReservation(pb.GetReservationRequest(reservation_id=rid), metadata=internal(m)).reservation
    assert got.state == pb.RESERVATION_STATE_RELEASED


def test_reserve_is_idempotent_and_isolated(stub, db):
    a_m, b_m = new_merchant_id(), new_merchant_id()
    sku_id = upsert(stub, a_m).product.skus[0].sku_id
    rid = new_id("rsv")
    first = reserve(stub, a_m, [(sku_id, 3)], rid=rid)
    again = reserve(stub, a_m, [(sku_id, 3)], rid=rid)
    assert first.state == again.state == pb.RESERVATION_STATE_RESERVED
    assert stock_of(stub, a_m, sku_id).reserved == 3
    # Merchant B: A's SKU does not exist, A's reservation cannot be read or released.
    err = code_of(lambda: reserve(stub, b_m, [(sku_id, 1)]))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "lines[0].sku_id" in field_violations(err)
    for call in (stub.GetReservation, stub.ReleaseReservation):
        req = (pb.GetReservationRequest if call is stub.GetReservation else pb.ReleaseReservationRequest)(reservation_id=rid)
        assert code_of(lambda: call(req, metadata=internal(b_m))).code() == grpc.StatusCode.NOT_FOUND
    assert stock_of(stub, a_m, sku_id).reserved == 3
    assert_ledger_matches(stub, db, a_m, sku_id)


def test_reserve_bad_input_writes_nothing(stub, db):
    m = new_merchant_id()
    sku_id = upsert(stub, m).product.skus[0].sku_id
    req = pb.ReserveStockRequest(reservation_id="has.dot", order_id="",
                                 lines=[pb.ReservationLine(sku_id=sku_id, quantity=0),
                                        pb.ReservationLine(sku_id=sku_id, quantity=1)])
    err = code_of(lambda: stub.ReserveStock(req, metadata=internal(m)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"reservation_id", "order_id", "expires_at", "lines[0].quantity", "lines[1].sku_id"} <= set(field_violations(err))
    err = code_of(lambda: stub.ReserveStock(pb.ReserveStockRequest(), metadata=internal(m)))
    assert "lines" in field_violations(err)
    for call, req in ((stub.ReleaseReservation, pb.ReleaseReservationRequest(reservation_id="")),
                      (stub.GetReservation, pb.GetReservationRequest(reservation_id="a$b"))):
        assert "reservation_id" in field_violations(code_of(lambda: call(req, metadata=internal(m))))
    assert db.reservations.count_documents({"merchant_id": m}) == 0
    assert stock_of(stub, m, sku_id).reserved == 0
    err = code_of(lambda: stub.ReserveStock(req, metadata=shopper(m)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


def test_fifty_concurrent_reservations_for_ten_units(stub, db):
    m = new_merchant_id()
    sku_id = upsert(stub, m, skus=[sku_input("S", stock=10)]).product.skus[0].sku_id
    results = []
    lock = threading.Lock()

    def one():
        try:
            reserve(stub, m, [(sku_id, 1)])
            outcome = "ok"
        except grpc.RpcError as error:
            outcome = error.code()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 10
    assert results.count(grpc.StatusCode.FAILED_PRECONDITION) == 40
    s = stock_of(stub, m, sku_id)
    assert (s.on_hand, s.reserved, s.available) == (10, 10, 0)
    assert db.reservations.count_documents({"merchant_id": m, "state": "RESERVED"}) == 10
    assert_ledger_matches(stub, db, m, sku_id)


def test_release_is_idempotent_and_returns_stock(stub, db):
    m = new_merchant_id()
    sku_id = upsert(stub, m).product.skus[0].sku_id
    rid = reserve(stub, m, [(sku_id, 4)]).reservation_id
    for _ in range(2):
        got = stub.ReleaseReservation(pb.ReleaseReservationRequest(reservation_id=rid), metadata=internal(m))
        assert got.reservation.state == pb.RESERVATION_STATE_RELEASED
        s = stock_of(stub, m, sku_id)
        assert (s.on_hand, s.reserved, s.available) == (10, 0, 10)
    assert_ledger_matches(stub, db, m, sku_id)


def test_sweeper_releases_an_expired_reservation(stub, db):
    m = new_merchant_id()
    sku_id = upsert(stub, m).product.skus[0].sku_id
    rid = reserve(stub, m, [(sku_id, 2)], expires_in=1).reservation_id
    assert stock_of(stub, m, sku_id).reserved == 2

    def released():
        r = stub.GetReservation(pb.GetReservationRequest(reservation_id=rid), metadata=internal(m)).reservation
        return r.state == pb.RESERVATION_STATE_RELEASED

    wait_until(released, timeout=15, interval=0.2, message="expired reservation released")
    wait_until(lambda: stock_of(stub, m, sku_id).available == 10, timeout=5, message="stock returned")
    assert_ledger_matches(stub, db, m, sku_id)


# ---- order events

async def _acked_through(stack, durable, seq):
    import nats
    nc = await nats.connect(stack.nats_url)
    try:
        info = await nc.jetstream().consumer_info("SIYU_ORDER", durable)
        return info.ack_floor.stream_seq >= seq
    finally:
        await nc.close()


@pytest.mark.parametrize("subject,payload_cls,durable,state,expected", [
    ("siyu.order.order.paid", order_events.OrderPaid, "catalog-order-paid", pb.RESERVATION_STATE_COMMITTED, (7, 0, 7)),
    ("siyu.order.order.cancelled", order_events.OrderCancelled, "catalog-order-cancelled",
     pb.RESERVATION_STATE_RELEASED, (10, 0, 10)),
])
def test_order_events_move_the_reservation_once(stack, stub, db, subject, payload_cls, durable, state, expected):
    m = new_merchant_id()
    sku_id = upsert(stub, m).product.skus[0].sku_id
    rid = reserve(stub, m, [(sku_id, 3)]).reservation_id
    event = order_event(subject, m, rid, payload_cls)
    asyncio.run(_publish(stack, subject, event.data, event.event_id))

    def moved():
        r = stub.GetReservation(pb.GetReservationRequest(reservation_id=rid), metadata=internal(m)).reservation
        return r.state == state

    wait_until(moved, timeout=15, message="reservation moved by the order event")
    wait_until(lambda: db.reservations.find_one({"_id": rid})["settled"] == 1, timeout=5, message="stock moved")
    before = db.reservations.find_one({"_id": rid})["version"]
    # A replay (outside JetStream's duplicate window, so under another message id) changes nothing.
    seq = asyncio.run(_publish(stack, subject, event.data, event.event_id + "-replay"))
    wait_until(lambda: asyncio.run(_acked_through(stack, durable, seq)), timeout=15, message="replay handled")
    s = stock_of(stub, m, sku_id)
    assert (s.on_hand, s.reserved, s.available) == expected
    assert db.reservations.find_one({"_id": rid})["version"] == before
    assert_ledger_matches(stub, db, m, sku_id)


def test_reservation_events_are_published(stack, stub):
    import nats

    m = new_merchant_id()
    sku_id = upsert(stub, m).product.skus[0].sku_id
    rid = reserve(stub, m, [(sku_id, 1)]).reservation_id
    stub.ReleaseReservation(pb.ReleaseReservationRequest(reservation_id=rid), metadata=internal(m))

    async def subjects():
        from siyu.catalog.v1 import events_pb2
        from siyu_kit.events.outbox import decode
        nc = await nats.connect(stack.nats_url)
        try:
            js = nc.jetstream()
            sub = await js.subscribe("siyu.catalog.reservation.>", ordered_consumer=True)
            found = []
            try:
                while True:
                    msg = await sub.next_msg(timeout=1)
                    env = decode(msg.data)
                    changed = events_pb2.ReservationChanged()
                    env.payload.Unpack(changed)
                    if changed.reservation.reservation_id == rid:
                        found.append((msg.subject, env.merchant_id))
            except Exception:  # noqa: BLE001 - no more messages
                pass
            return found
        finally:
            await nc.close()

    found = wait_until(lambda: len(asyncio.run(subjects())) >= 2 and asyncio.run(subjects()), timeout=15,
                       interval=0.3, message="reservation events on NATS")
    assert found == [("siyu.catalog.reservation.reserved", m), ("siyu.catalog.reservation.released", m)]
