"""The internal RPCs the member service calls for a member's data export and 360° view,
called directly over gRPC: OrderService.ExportMemberData and SummarizeMemberOrders, and
CatalogService.ExportMemberData. Each answers for the calling merchant's records only,
refuses a malformed member id field by field, and refuses any caller but a service."""
from __future__ import annotations

import json

import grpc
import pytest
from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from siyu.order.v1 import order_pb2, order_pb2_grpc

from siyu_kit.ids import new_id
from tests.support import field_violations, metadata, new_merchant_id, rpc_error, stub_fixture
from tests.support import flash_sale
from tests.support.order import make_skus, member, place, staff

order = stub_fixture("order", order_pb2_grpc.OrderServiceStub)
catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)


def as_member_service(mid: str):
    return metadata(mid, service="member")


@pytest.fixture(scope="module")
def placed(order, catalog):
    """A merchant's member with one order and one flash-sale reservation."""
    mid, member_id = new_merchant_id(), new_id("mem")
    [sku, flash_sku] = make_skus(catalog, mid, (1999, 10), (500, 30))
    placed_order = place(order, member(mid, member_id), "k-1", (sku, 2))
    sale = flash_sale.create(catalog, mid, flash_sku)
    reservation = catalog.ReserveFlashSale(flash_sale.reserve_request(sale.flash_sale_id, member_id),
                                           metadata=flash_sale.internal(mid)).reservation
    return mid, member_id, placed_order, reservation


def export_order(order, mid: str, member_id: str) -> dict:
    return json.loads(order.ExportMemberData(order_pb2.ExportMemberDataRequest(member_id=member_id),
                                             metadata=as_member_service(mid)).document)


def export_catalog(catalog, mid: str, member_id: str) -> dict:
    return json.loads(catalog.ExportMemberData(catalog_pb2.ExportMemberDataRequest(member_id=member_id),
                                               metadata=as_member_service(mid)).document)


def test_order_export_holds_the_members_orders_for_their_merchant_only(order, placed):
    mid, member_id, placed_order, _ = placed
    document = export_order(order, mid, member_id)
    assert list(document) == ["orders", "payments", "refunds"]
    assert placed_order.order_id in json.dumps(document["orders"])
    assert len(document["orders"]) == 1 and document["payments"] == [] and document["refunds"] == []
    # Another merchant asking about the same member id finds nothing of the first's.
    assert export_order(order, new_merchant_id(), member_id) == {"orders": [], "payments": [], "refunds": []}


def test_order_summary_counts_the_members_orders_for_their_merchant_only(order, placed):
    mid, member_id, placed_order, _ = placed
    summary = order.SummarizeMemberOrders(order_pb2.SummarizeMemberOrdersRequest(member_id=member_id),
                                          metadata=as_member_service(mid))
    assert (summary.order_count, summary.paid_count, summary.paid_amount, summary.refunded_amount) == (1, 0, 0, 0)
    assert summary.last_order_id == placed_order.order_id
    assert summary.last_order_state == order_pb2.ORDER_STATE_PENDING_PAYMENT
    assert summary.last_order_payable == placed_order.payable.amount == 3998
    elsewhere = order.SummarizeMemberOrders(order_pb2.SummarizeMemberOrdersRequest(member_id=member_id),
                                            metadata=as_member_service(new_merchant_id()))
    assert elsewhere == order_pb2.SummarizeMemberOrdersResponse()


def test_catalog_export_holds_the_members_flash_sale_records_for_their_merchant_only(catalog, placed):
    mid, member_id, _, reservation = placed
    document = export_catalog(catalog, mid, member_id)
    assert list(document) == ["flash_sale_quotas", "flash_sale_reservations"]
    assert len(document["flash_sale_quotas"]) == 1
    [held] = document["flash_sale_reservations"]
    assert reservation.reservation_id in json.dumps(held)
    assert "outbox" not in held
    assert export_catalog(catalog, new_merchant_id(), member_id) == {
        "flash_sale_quotas": [], "flash_sale_reservations": []}


CALLS = {
    "order.ExportMemberData": ("order", "ExportMemberData", order_pb2.ExportMemberDataRequest),
    "order.SummarizeMemberOrders": ("order", "SummarizeMemberOrders", order_pb2.SummarizeMemberOrdersRequest),
    "catalog.ExportMemberData": ("catalog", "ExportMemberData", catalog_pb2.ExportMemberDataRequest),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_a_malformed_member_id_is_refused_field_by_field(order, catalog, call):
    service, method, request = CALLS[call]
    rpc = getattr({"order": order, "catalog": catalog}[service], method)
    mid = new_merchant_id()
    for bad in ("", "ord_01ARZ3NDEKTSV4RRFFQ69G5FAV", "mem_not-an-id"):
        error = rpc_error(rpc, request(member_id=bad), metadata=as_member_service(mid))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert set(field_violations(error)) == {"member_id"}, bad


@pytest.mark.parametrize("call", list(CALLS))
def test_only_a_service_may_call(order, catalog, placed, call):
    service, method, request = CALLS[call]
    rpc = getattr({"order": order, "catalog": catalog}[service], method)
    mid, member_id, _, _ = placed
    for caller in (staff(mid), member(mid, member_id), metadata(mid, channel="H5")):
        error = rpc_error(rpc, request(member_id=member_id), metadata=caller)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
