"""A dependency that is away is UNAVAILABLE with a plain message, never INTERNAL; the
gateway answers it 503 with Retry-After."""
from __future__ import annotations

import grpc
import nats.errors
import nats.js.errors
import pymongo.errors
import pytest
from google.rpc import code_pb2

from gateway import errors as gateway_errors
from siyu_kit import errors
from siyu_kit.grpc_server import dependency_away, status_of


@pytest.mark.parametrize("error", [
    pymongo.errors.ServerSelectionTimeoutError("127.0.0.1:27017: [Errno 111] Connection refused"),
    pymongo.errors.AutoReconnect("connection closed"),
    pymongo.errors.NetworkTimeout("timed out"),
    pymongo.errors.NotPrimaryError("not primary"),
    pymongo.errors.ConnectionFailure("refused"),
    pymongo.errors.WaitQueueTimeoutError("pool exhausted"),
    pymongo.errors.ExecutionTimeout("operation exceeded time limit", code=50),
    pymongo.errors.OperationFailure("interrupted at shutdown", code=11600),
    pymongo.errors.OperationFailure("primary stepped down", code=189),
])
def test_database_outages_are_unavailable_with_a_plain_message(error):
    away = dependency_away(error)
    assert isinstance(away, errors.Unavailable)
    assert away.reason == "STORAGE_UNAVAILABLE"
    assert "27017" not in away.message and "Errno" not in away.message
    assert status_of(away, "req_1").code == code_pb2.UNAVAILABLE


@pytest.mark.parametrize("error", [
    nats.errors.ConnectionClosedError(), nats.errors.NoServersError(), nats.errors.TimeoutError(),
    nats.errors.ConnectionReconnectingError(), nats.js.errors.ServiceUnavailableError(),
    nats.js.errors.NoStreamResponseError(),
])
def test_nats_outages_are_unavailable(error):
    away = dependency_away(error)
    assert isinstance(away, errors.Unavailable) and away.reason == "EVENTS_UNAVAILABLE"


@pytest.mark.parametrize("error", [
    pymongo.errors.DuplicateKeyError("E11000 duplicate key", code=11000),
    pymongo.errors.OperationFailure("bad query", code=2),
    nats.js.errors.NotFoundError(),
    KeyError("x"),
    ValueError("bug"),
])
def test_bugs_and_refusals_are_not_mistaken_for_an_outage(error):
    assert dependency_away(error) is None


def test_every_503_from_the_gateway_carries_retry_after():
    for api in (gateway_errors.from_status(grpc.StatusCode.UNAVAILABLE, "connection refused 10.0.0.3", ()),
                gateway_errors.from_status(grpc.StatusCode.CANCELLED, "", ()),
                gateway_errors.from_domain(errors.Unavailable("away"))):
        resp = gateway_errors.response(api, "req_1")
        assert resp.status_code == 503
        assert int(resp.headers["Retry-After"]) >= 1
    ok = gateway_errors.response(gateway_errors.ApiError("NOT_FOUND", "no"), "req_1")
    assert "Retry-After" not in ok.headers
    limited = gateway_errors.ApiError("UNAVAILABLE", "x", headers={"Retry-After": "7"})
    assert gateway_errors.response(limited, "r").headers["Retry-After"] == "7"


def test_grpc_refusing_an_oversized_status_is_a_clean_error_not_a_quota():
    # What the gateway's channel reports when a service's trailing metadata is too large.
    api = gateway_errors.from_status(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "Stream removed (received metadata size exceeds hard limit (value length 17149 vs. 16384))", ())
    body = gateway_errors.body(api, "req_1")["error"]
    assert body["status"] == 500 and body["reason"] == "RESPONSE_TOO_LARGE"
    assert "metadata" not in body["message"] and "16384" not in body["message"]
    # A service's own RESOURCE_EXHAUSTED (with details) is still a 429.
    sold_out = errors.ResourceExhausted("sold out", reason="OUT_OF_STOCK")
    trailers = (("grpc-status-details-bin", status_of(sold_out, "r").SerializeToString()),)
    api = gateway_errors.from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "sold out", trailers)
    assert (api.http_status, api.reason) == (429, "OUT_OF_STOCK")
