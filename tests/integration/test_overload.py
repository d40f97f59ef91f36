"""Overload answered fast, on real servers: a service admits a bounded number of calls and
refuses the rest at once (UNAVAILABLE, OVERLOADED, RetryInfo) without running them; a
gateway process at its bound answers 503 with Retry-After and the JSON error body; a
gateway with two worker processes keeps a member's rate limit as one process does."""
from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2
from siyu.member.v1 import member_pb2 as pb, member_pb2_grpc

from gateway.overload import MAX_RETRY_AFTER_S
from siyu_kit.admission import AdmissionInterceptor
from siyu_kit.config import SERVICE_NAMES
from siyu_kit.devstack import free_port
from siyu_kit.grpc_server import details_of
from siyu_kit.ids import new_id
from tests.support import ensure_gateway, eventually, metadata, stub_fixture, wait_until
from tests.support.member import merchant_with_key

OPS = metadata(service="test")
# Health's Check is served by every service but is never refused; a siyu method name is.
HELD = "/siyu.test.v1.Held/Hold"


class Held:
    """A siyu RPC that waits until the test lets it go, counting the calls it ran."""

    def __init__(self):
        self.ran = 0
        self.go = asyncio.Event()

    async def hold(self, request, context):
        self.ran += 1
        await self.go.wait()
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
async def bounded_server():
    held = Held()
    admission = AdmissionInterceptor("kittest", max_in_flight=2, min_deadline_s=5)
    server = grpc.aio.server(interceptors=[admission])
    handler = grpc.method_handlers_generic_handler("siyu.test.v1.Held", {"Hold": grpc.unary_unary_rpc_method_handler(
        held.hold, request_deserializer=health_pb2.HealthCheckRequest.FromString,
        response_serializer=health_pb2.HealthCheckResponse.SerializeToString)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(HELD, request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                                   response_deserializer=health_pb2.HealthCheckResponse.FromString)
        yield held, admission, call
    await server.stop(0)


async def refusal(call, timeout: float = 30) -> tuple[grpc.StatusCode, str, int]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(health_pb2.HealthCheckRequest(), timeout=timeout)
    details = details_of(info.value.trailing_metadata())
    return info.value.code(), details.reason, details.retry_after_s


async def test_a_burst_above_the_bound_is_refused_at_once_and_never_run(bounded_server):
    held, admission, call = bounded_server
    async def one():
        return await call(health_pb2.HealthCheckRequest(), timeout=30)
    admitted = [asyncio.create_task(one()) for _ in range(2)]
    await eventually(lambda: held.ran == 2 and admission.in_flight == 2, message="two calls admitted")

    # Ten more while both slots are taken: each refused while the first two still wait.
    refused = await asyncio.gather(*(refusal(call) for _ in range(10)))
    assert refused == [(grpc.StatusCode.UNAVAILABLE, "OVERLOADED", 1)] * 10
    assert held.ran == 2, "a refused call must not run"

    held.go.set()
    replies = await asyncio.gather(*admitted)
    assert all(r.status == health_pb2.HealthCheckResponse.SERVING for r in replies)
    assert admission.in_flight == 0
    # Slots freed: the next call is admitted again.
    assert (await call(health_pb2.HealthCheckRequest(), timeout=30)).status == health_pb2.HealthCheckResponse.SERVING


async def test_a_call_with_too_little_deadline_left_is_refused_before_it_starts(bounded_server):
    held, _, call = bounded_server
    held.go.set()
    # The server's floor is 5 s here: a 2 s deadline is not worth starting.
    assert await refusal(call, timeout=2) == (grpc.StatusCode.UNAVAILABLE, "DEADLINE_TOO_SHORT", 1)
    assert held.ran == 0


# ---- gateway processes of their own in front of the session's services -------------------

member_stub = stub_fixture("member", member_pb2_grpc.MemberServiceStub)


@pytest.fixture(scope="module")
def services(stack):
    ensure_gateway(stack, SERVICE_NAMES)
    return stack


@contextlib.contextmanager
def gateway_process(stack, name: str, **env: str):
    """One more gateway on a free port with `env` on top of the suite's settings."""
    port = free_port()
    proc = stack._spawn(name, [sys.executable, "-m", "gateway"],
                        {**stack.env(), "SIYU_GATEWAY_PORT": str(port), "SIYU_METRICS_PORT": "0", **env})
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, f"{name} exited; see {stack.data_dir}/log/{name}.log"
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False
    try:
        wait_until(up, timeout=60, message=f"{name} answering")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except Exception:  # noqa: BLE001 - a gateway that does not stop is killed
            proc.kill()
        stack.procs.pop(name, None)


def new_member(stub) -> dict[str, str]:
    """A fresh merchant, its H5 key and a signed-in member's headers."""
    merchant_id, key = merchant_with_key(stub, "ov", "Overload Shop")
    token = stub.Login(pb.LoginRequest(code="sandbox:" + new_id("u")),
                       metadata=metadata(merchant_id, channel="H5")).access_token
    return {"X-Api-Key": key, "Authorization": f"Bearer {token}"}


async def each_on_its_own_connection(url: str, path: str, headers: dict, count: int) -> list[httpx.Response]:
    async def one() -> httpx.Response:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            return await client.get(path, headers=headers)
    return await asyncio.gather(*(one() for _ in range(count)))


@pytest.fixture(scope="module")
def busy_gateway(services):
    """A gateway of two workers, each serving one request at a time, the profile route
    held 3 s before its service call, and members limited to 0.5 requests a second
    (burst 1)."""
    with gateway_process(services, "gateway-busy", SIYU_GATEWAY_WORKERS="2", SIYU_GATEWAY_MAX_IN_FLIGHT="1",
                         SIYU_DELAYPOINTS="gateway.call.GetMe=3", SIYU_RATE_LIMIT_MEMBER_RPS="0.5") as url:
        yield url


def test_a_gateway_at_its_bound_answers_503_with_retry_after_at_once(busy_gateway, member_stub):
    # Six members at once, each on a connection of their own: two workers hold one each.
    members = [new_member(member_stub) for _ in range(6)]

    async def everyone() -> list[httpx.Response]:
        async def one(headers: dict) -> httpx.Response:
            async with httpx.AsyncClient(base_url=busy_gateway, timeout=30) as client:
                return await client.get("/v1/me", headers=headers)
        return await asyncio.gather(*(one(m) for m in members))
    responses = asyncio.run(everyone())
    codes = sorted(r.status_code for r in responses)
    assert set(codes) <= {200, 503} and 1 <= codes.count(200) <= 2 and codes.count(503) >= 4, codes
    for busy in (r for r in responses if r.status_code == 503):
        # 1 s, or drawn up to the cap when a bound's worth were refused (here, the bound is 1).
        assert 1 <= int(busy.headers["retry-after"]) <= MAX_RETRY_AFTER_S
        assert busy.headers["content-type"].startswith("application/json")
        error = busy.json()["error"]
        assert (error["status"], error["reason"], error["code"]) == (503, "OVERLOADED", "UNAVAILABLE")
        assert error["request_id"] == busy.headers["x-request-id"]
    # Operations paths never wait for a slot.
    assert httpx.get(f"{busy_gateway}/healthz", timeout=5).status_code == 200


def test_two_gateway_workers_keep_a_members_rate_as_one_process(busy_gateway, member_stub):
    # Burst 1 at 0.5 a second: one request now, the next 2 s later, whichever worker takes
    # the connection; workers with buckets of their own would each let one through.
    headers = new_member(member_stub)
    codes = []
    started = time.monotonic()
    for _ in range(8):
        with httpx.Client(base_url=busy_gateway, timeout=30) as client:  # a new connection each time
            resp = client.get("/v1/me/addresses", headers=headers)
        codes.append(resp.status_code)
        if resp.status_code == 429:
            limited = resp
    elapsed = time.monotonic() - started
    assert set(codes) <= {200, 429}, codes
    assert 1 <= codes.count(200) <= 1 + math.floor(elapsed * 0.5), (codes, elapsed)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["reason"] == "RATE_LIMITED"
