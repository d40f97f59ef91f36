"""ResolveReservation is for the catalog only: a member or staff caller is denied."""
from __future__ import annotations

import grpc
from siyu.order.v1 import order_pb2, order_pb2_grpc

from tests.support import metadata, new_merchant_id, rpc_error, stub_fixture

stub = stub_fixture("order", order_pb2_grpc.OrderServiceStub)


def test_a_member_cannot_ask_what_became_of_a_reservation(stub):
    error = rpc_error(stub.ResolveReservation, order_pb2.ResolveReservationRequest(
        order_id="ord_01J0000000000000000000000A", reservation_id="rsv_01J0000000000000000000000A"),
        metadata=metadata(new_merchant_id(), channel="H5", member_id="mbr_01J0000000000000000000000A"))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED

