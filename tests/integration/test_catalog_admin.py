"""Staff and internal catalog RPCs over gRPC: categories, product edits and shelving, stock
adjustments, returns and the stock audit, including the repair of a ledger left short."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import mongoengine
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from siyu.catalog.v1 import catalog_pb2 as pb, catalog_pb2_grpc
from siyu.order.v1 import events_pb2 as order_events

from siyu_kit import config
from siyu_kit.ids import new_id
from siyu_kit.protos import utcnow
from tests.support.catalog import (_publish, internal, order_event, reserve, shopper, sku_input, staff, stock_of,
                                   upsert)
from tests.support import (database_fixture, field_violations, metadata, new_merchant_id, rpc_error, stub_fixture,
                           wait_until)

from services.catalog.adapters import repositories as repo
from services.catalog.application import inventory
from services.catalog.entrypoint.main import use_cases

stub = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
db = database_fixture("catalog")

STAFF_RPCS = ("CreateCategory", "UpdateCategory", "SetProductStatus", "AdjustStock", "AuditStock")


def reason_of(error: grpc.RpcError) -> str:
    for detail in rpc_status.from_call(error).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def finance(m):
    return metadata(m, staff_id="stf_fin", roles=("FINANCE",))


def member(m):
    return metadata(m, channel="MINI_PROGRAM", member_id=new_id("mem"))


def create(stub, m, name, parent=""):
    return stub.CreateCategory(pb.CreateCategoryRequest(name=name, parent_id=parent), metadata=staff(m)).category


def adjust(stub, m, sku_id, delta, key, reason="盘点"):
    req = pb.AdjustStockRequest(sku_id=sku_id, delta=delta, reason=reason, idempotency_key=key)
    return stub.AdjustStock(req, metadata=staff(m)).stock


def audit(stub, m, sku_id, md=None):
    return stub.AuditStock(pb.AuditStockRequest(sku_id=sku_id), metadata=md or staff(m))


def levels(s):
    return s.on_hand, s.reserved, s.available


# ---- categories

def test_category_tree_names_depth_and_versions(stub, db):
    m = new_merchant_id()
    root = create(stub, m, "服装")
    assert (root.parent_id, list(root.ancestor_ids), root.version) == ("", [], 1)
    chain = [root]
    for depth in range(2, 6):
        chain.append(create(stub, m, f"第{depth}层", chain[-1].category_id))
    assert list(chain[-1].ancestor_ids) == [c.category_id for c in chain[:-1]]
    err = rpc_error(create, stub, m, "too deep", chain[-1].category_id)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and reason_of(err) == "CATEGORY_TOO_DEEP"
    err = rpc_error(create, stub, m, " 服装 ")
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and reason_of(err) == "CATEGORY_NAME_TAKEN"
    same_name_elsewhere = create(stub, m, "服装", root.category_id)
    second = stub.CreateCategory(pb.CreateCategoryRequest(name="母婴", sort_order=-1), metadata=staff(m)).category

    listed = stub.ListCategories(pb.ListCategoriesRequest(), metadata=shopper(m)).categories
    assert [c.name for c in listed[:2]] == ["母婴", "服装"]  # roots first, by sort order
    assert len(listed) == 7 and {c.category_id for c in listed} >= {same_name_elsewhere.category_id}

    renamed = stub.UpdateCategory(pb.UpdateCategoryRequest(category_id=second.category_id, name="母婴用品", sort_order=9,
                                                           expected_version=1), metadata=staff(m)).category
    assert (renamed.name, renamed.sort_order, renamed.version, renamed.parent_id) == ("母婴用品", 9, 2, "")
    stale = pb.UpdateCategoryRequest(category_id=second.category_id, name="旧名", expected_version=1)
    assert rpc_error(stub.UpdateCategory, stale, metadata=staff(m)).code() == grpc.StatusCode.ABORTED
    onto = pb.UpdateCategoryRequest(category_id=second.category_id, name="服装")
    err = rpc_error(stub.UpdateCategory, onto, metadata=staff(m))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert db.categories.find_one({"_id": second.category_id})["name"] == "母婴用品"


def test_categories_are_per_merchant_and_checked(stub, db):
    a, b = new_merchant_id(), new_merchant_id()
    root = create(stub, a, "服装")
    err = rpc_error(create, stub, b, "子类", root.category_id)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    req = pb.UpdateCategoryRequest(category_id=root.category_id, name="B's")
    assert rpc_error(stub.UpdateCategory, req, metadata=staff(b)).code() == grpc.StatusCode.NOT_FOUND
    assert stub.ListCategories(pb.ListCategoriesRequest(), metadata=shopper(b)).categories == []
    err = rpc_error(stub.CreateCategory, pb.CreateCategoryRequest(name=" ", parent_id="women"), metadata=staff(a))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and {"name", "parent_id"} <= set(field_violations(err))
    bad = pb.UpdateCategoryRequest(category_id="x", name="y" * 41, expected_version=-1)
    assert {"category_id", "name", "expected_version"} <= set(field_violations(
        rpc_error(stub.UpdateCategory, bad, metadata=staff(a))))
    assert db.categories.count_documents({"merchant_id": a}) == 1
    assert db.categories.find_one({"_id": root.category_id})["name"] == "服装"
    # A product can only be filed under a category of its own merchant.
    err = rpc_error(upsert, stub, b, category_id=root.category_id)
    assert err.code() == grpc.StatusCode.NOT_FOUND and "category_id" in field_violations(err)
    assert db.products.count_documents({"merchant_id": b}) == 0


@pytest.mark.parametrize("rpc", STAFF_RPCS)
def test_staff_rpcs_refuse_shoppers_members_and_other_roles(stub, rpc):
    m = new_merchant_id()
    request = getattr(pb, f"{rpc}Request")()
    for md in (shopper(m), member(m)):
        assert rpc_error(getattr(stub, rpc), request, metadata=md).code() in (
            grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    if rpc != "AuditStock":  # finance may audit
        assert rpc_error(getattr(stub, rpc), request, metadata=finance(m)).code() == grpc.StatusCode.PERMISSION_DENIED
    assert rpc_error(stub.ReturnStock, pb.ReturnStockRequest(), metadata=shopper(m)).code() == \
        grpc.StatusCode.PERMISSION_DENIED


# ---- products

def test_product_edits_check_the_version_and_the_status_machine(stub, db):
    m = new_merchant_id()
    p = upsert(stub, m, status=pb.PRODUCT_STATUS_DRAFT).product
    assert (p.status, p.version) == (pb.PRODUCT_STATUS_DRAFT, 1)
    err = rpc_error(upsert, stub, m, title="stale", expected_version=7)
    assert err.code() == grpc.StatusCode.ABORTED
    assert rpc_error(upsert, stub, m, code="NEW", expected_version=1).code() == grpc.StatusCode.ABORTED
    err = rpc_error(upsert, stub, m, status=pb.PRODUCT_STATUS_OFF_SHELF)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and reason_of(err) == "STATUS_TRANSITION"
    assert db.products.find_one({"_id": p.product_id})["version"] == 1
    on = upsert(stub, m, title="v2", expected_version=1).product
    assert (on.title, on.version, on.status) == ("v2", 2, pb.PRODUCT_STATUS_ON_SHELF)

    def set_status(status, version=0, md=None, pid=p.product_id):
        req = pb.SetProductStatusRequest(product_id=pid, status=status, expected_version=version)
        return stub.SetProductStatus(req, metadata=md or staff(m)).product

    off = set_status(pb.PRODUCT_STATUS_OFF_SHELF, 2)
    assert (off.status, off.version) == (pb.PRODUCT_STATUS_OFF_SHELF, 3)
    # Unspecified status on an update keeps the current one.
    assert upsert(stub, m, title="v3", status=pb.PRODUCT_STATUS_UNSPECIFIED).product.status == pb.PRODUCT_STATUS_OFF_SHELF
    assert rpc_error(set_status, pb.PRODUCT_STATUS_ON_SHELF, 3).code() == grpc.StatusCode.ABORTED
    err = rpc_error(set_status, pb.PRODUCT_STATUS_DRAFT)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and reason_of(err) == "STATUS_TRANSITION"
    assert set_status(pb.PRODUCT_STATUS_ON_SHELF).status == pb.PRODUCT_STATUS_ON_SHELF
    assert set_status(pb.PRODUCT_STATUS_ON_SHELF).version == 5  # already there: no change
    other = new_merchant_id()
    assert rpc_error(set_status, pb.PRODUCT_STATUS_OFF_SHELF, md=staff(other)).code() == grpc.StatusCode.NOT_FOUND
    err = rpc_error(set_status, 0, -1, pid="nope")
    assert {"product_id", "status", "expected_version"} <= set(field_violations(err))
    assert db.products.find_one({"_id": p.product_id})["status"] == "ON_SHELF"


# ---- stock

def test_adjust_restocks_writes_off_and_replays(stub, db):
    m = new_merchant_id()
    sku_id = upsert(stub, m, skus=[sku_input("S", stock=5)]).product.skus[0].sku_id
    reserve(stub, m, [(sku_id, 2)])
    assert levels(adjust(stub, m, sku_id, 10, "restock-1")) == (15, 2, 13)
    assert levels(adjust(stub, m, sku_id, 10, "restock-1")) == (15, 2, 13)  # replay: no change
    assert levels(adjust(stub, m, sku_id, -13, "write-off-1", "破损")) == (2, 2, 0)
    err = rpc_error(adjust, stub, m, sku_id, -1, "write-off-2")
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and reason_of(err) == "OUT_OF_STOCK"
    err = rpc_error(adjust, stub, m, sku_id, 5, "restock-1")
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert levels(stock_of(stub, m, sku_id)) == (2, 2, 0)
    moves = [(mv.kind, mv.on_hand_delta, mv.reference, mv.reason) for mv in audit(stub, m, sku_id).movements
             if mv.kind == "ADJUST"]
    assert moves == [("ADJUST", 10, "restock-1", "盘点"), ("ADJUST", -13, "write-off-1", "破损")]

    other = new_merchant_id()
    assert rpc_error(adjust, stub, other, sku_id, 1, "k").code() == grpc.StatusCode.NOT_FOUND
    err = rpc_error(adjust, stub, m, "bad", 0, "a.b", reason="")
    assert {"sku_id", "delta", "reason", "idempotency_key"} <= set(field_violations(err))
    err = rpc_error(adjust, stub, m, sku_id, 1_000_001, "big")
    assert "delta" in field_violations(err)
    assert levels(stock_of(stub, m, sku_id)) == (2, 2, 0)
    assert db.stock_movements.count_documents({"sku_id": sku_id, "kind": "ADJUST"}) == 2


def test_return_stock_is_idempotent_and_counts_sales_back(stack, stub, db):
    m = new_merchant_id()
    p = upsert(stub, m, skus=[sku_input("A", stock=5), sku_input("B", stock=5)]).product
    a, b = (s.sku_id for s in p.skus)
    rid = reserve(stub, m, [(a, 3), (b, 1)]).reservation_id
    event = order_event("siyu.order.order.paid", m, rid, order_events.OrderPaid)
    asyncio.run(_publish(stack, "siyu.order.order.paid", event.data, event.event_id))
    wait_until(lambda: db.products.find_one({"_id": p.product_id})["sales"] == 4, timeout=15, message="sales counted")

    req = pb.ReturnStockRequest(return_id="ret-1", order_id="ord_1", lines=[pb.ReservationLine(sku_id=a, quantity=2)])
    for _ in range(2):
        got = stub.ReturnStock(req, metadata=internal(m)).stock
        assert [(s.sku_id, *levels(s)) for s in got] == [(a, 4, 0, 4)]
    assert db.products.find_one({"_id": p.product_id})["sales"] == 2
    assert [mv.kind for mv in audit(stub, m, a).movements] == ["INITIAL", "RESERVE", "COMMIT", "RETURN"]

    other = new_merchant_id()
    err = rpc_error(stub.ReturnStock, pb.ReturnStockRequest(return_id="ret-2", order_id="o", lines=req.lines),
                    metadata=internal(other))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "lines[0].sku_id" in field_violations(err)
    bad = pb.ReturnStockRequest(return_id="a.b", lines=[pb.ReservationLine(sku_id=b, quantity=0),
                                                        pb.ReservationLine(sku_id="x", quantity=1)])
    err = rpc_error(stub.ReturnStock, bad, metadata=internal(m))
    assert {"return_id", "order_id", "lines[0].quantity", "lines[1].sku_id"} <= set(field_violations(err))
    assert levels(stock_of(stub, m, b)) == (4, 0, 4)
    assert levels(stock_of(stub, m, a)) == (4, 0, 4)


def test_audit_is_consistent_after_a_mix_of_every_movement(stack, stub, db):
    m = new_merchant_id()
    sku_id = upsert(stub, m, skus=[sku_input("S", stock=20)]).product.skus[0].sku_id
    paid = reserve(stub, m, [(sku_id, 4)]).reservation_id
    released = reserve(stub, m, [(sku_id, 3)]).reservation_id
    reserve(stub, m, [(sku_id, 2)])  # still held
    stub.ReleaseReservation(pb.ReleaseReservationRequest(reservation_id=released), metadata=internal(m))
    event = order_event("siyu.order.order.paid", m, paid, order_events.OrderPaid)
    asyncio.run(_publish(stack, "siyu.order.order.paid", event.data, event.event_id))
    wait_until(lambda: stock_of(stub, m, sku_id).on_hand == 16, timeout=15, message="committed")
    adjust(stub, m, sku_id, 5, "in-1")
    adjust(stub, m, sku_id, -6, "out-1")
    ret = pb.ReturnStockRequest(return_id="r-1", order_id="o-1", lines=[pb.ReservationLine(sku_id=sku_id, quantity=1)])
    stub.ReturnStock(ret, metadata=internal(m))

    report = audit(stub, m, sku_id, md=finance(m))
    assert levels(report.stock) == (16, 2, 14)
    assert report.consistent and levels(report.recomputed) == levels(report.stock)
    assert sorted(mv.kind for mv in report.movements) == sorted(
        ["INITIAL", "RESERVE", "RESERVE", "RESERVE", "RELEASE", "COMMIT", "ADJUST", "ADJUST", "RETURN"])
    assert all(mv.at.seconds for mv in report.movements)
    assert rpc_error(audit, stub, new_merchant_id(), sku_id).code() == grpc.StatusCode.NOT_FOUND
    assert "sku_id" in field_violations(rpc_error(audit, stub, m, "bad"))


@pytest.fixture
def catalog_storage(stack):
    """The catalog's repositories, connected from the test process as the service connects."""
    mongoengine.connect(db=config.load("catalog").mongodb_db, host=stack.mongodb_uri, tz_aware=True,
                        uuidRepresentation="standard")
    yield
    mongoengine.disconnect()


def test_a_stock_write_whose_movement_was_lost_is_repaired(stub, catalog_storage):
    """A crash between a stock update and its movement insert leaves the ledger short; the
    repair job stores the owed movement (once) and the audit is consistent again."""
    m = new_merchant_id()
    p = upsert(stub, m, skus=[sku_input("S", stock=5)]).product
    sku_id = p.skus[0].sku_id
    # What a process that died right after its stock writes leaves behind.
    assert repo.stock_adjust(m, sku_id, "lost-adjust", 7, "restock") is not None
    assert repo.stock_return(m, sku_id, "lost-return", 2) is not None
    assert repo.stock_consume(m, sku_id, "never-held", 1) is None  # a stale commit moves nothing
    # The audit counts the movements the stock still owes, so it adds up meanwhile.
    owing = audit(stub, m, sku_id)
    assert owing.consistent and levels(owing.stock) == (14, 0, 14) and levels(owing.recomputed) == (14, 0, 14)
    assert repo.stock_get(m, sku_id)["pending_count"] >= 2

    # Within the grace period a write may still be finishing: nothing is touched.
    assert asyncio.run(use_cases(None).inventory.repair_ledger(utcnow())) >= 0
    assert repo.stock_get(m, sku_id)["pending_count"] >= 2
    later = utcnow() + inventory.REPAIR_GRACE + timedelta(seconds=1)
    assert asyncio.run(use_cases(None).inventory.repair_ledger(later)) >= 2
    fixed = audit(stub, m, sku_id)
    assert fixed.consistent and levels(fixed.recomputed) == (14, 0, 14)
    assert {(mv.kind, mv.reference) for mv in fixed.movements} >= {("ADJUST", "lost-adjust"), ("RETURN", "lost-return")}
    assert repo.stock_get(m, sku_id)["pending_count"] == 0
    # Running it again stores nothing twice; the return counted its units out of sales once.
    asyncio.run(use_cases(None).inventory.repair_ledger(later))
    assert len(audit(stub, m, sku_id).movements) == len(fixed.movements)
    assert repo.product_get(m, p.product_id)["sales"] == -2
