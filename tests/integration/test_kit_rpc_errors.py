"""The interceptor every service runs, on a real gRPC server: a database that does not
answer is UNAVAILABLE (not INTERNAL), and hundreds of field violations still reach the
caller as INVALID_ARGUMENT instead of overflowing gRPC's trailing metadata."""
from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymongo import MongoClient

from siyu_kit import errors
from siyu_kit.devstack import free_port
from siyu_kit.grpc_server import ContextInterceptor
from tests.support import field_violations


class Failing(health_pb2_grpc.HealthServicer):
    """Health's Check stands in for any RPC: it fails the way the test asks."""

    def __init__(self):
        self.fail = None

    async def Check(self, request, context):
        self.fail()


@pytest.fixture
async def server():
    servicer = Failing()
    srv = grpc.aio.server(interceptors=[ContextInterceptor("kittest")])
    health_pb2_grpc.add_HealthServicer_to_server(servicer, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield servicer, health_pb2_grpc.HealthStub(ch)
    await srv.stop(0)


async def _error(stub) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
    return info.value


async def test_a_database_that_does_not_answer_is_unavailable_and_a_bug_still_internal(server):
    servicer, stub = server
    # A real driver against a port where nothing listens: ServerSelectionTimeoutError.
    client = MongoClient(f"mongodb://127.0.0.1:{free_port()}", serverSelectionTimeoutMS=200)
    servicer.fail = lambda: client.siyu_x.things.find_one({"_id": "x"})
    try:
        error = await _error(stub)
    finally:
        client.close()
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "127.0.0.1" not in error.details() and "Timeout" not in error.details()

    servicer.fail = lambda: {}["missing"]
    error = await _error(stub)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "missing" not in error.details()


async def test_hundreds_of_violations_reach_the_caller_capped(server):
    servicer, stub = server

    def refuse():
        v = errors.Violations()
        for i in range(400):
            v.add(f"lines[{i}].sku_id", "must name a SKU of this merchant; got a value that is not an id")
        v.raise_if_any()
    servicer.fail = refuse
    error = await _error(stub)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = field_violations(error)
    assert len(found) == errors.MAX_VIOLATIONS + 1
    assert "lines[0].sku_id" in found and "lines[19].sku_id" in found and "lines[20].sku_id" not in found
    assert found[""].startswith("380 more violations")


async def test_an_rpc_the_service_does_not_implement_is_unimplemented_not_internal(server):
    servicer, stub = server

    def not_implemented():
        raise NotImplementedError("Method not implemented!")

    servicer.fail = not_implemented
    error = await _error(stub)
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
