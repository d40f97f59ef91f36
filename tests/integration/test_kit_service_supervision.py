"""A real service process (content, which consumes order events) on its own servers:
its gRPC health reports a consumer that has been down past SIYU_CONSUMER_DOWN_LIMIT_S,
the consumer comes back by itself when its stream returns and after NATS restarts, and a
changed SIYU_MAX_DELIVER reaches the server's consumer when the service restarts."""
from __future__ import annotations

from pathlib import Path

import grpc
import nats
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.js.errors import NotFoundError

from siyu_kit.devstack import Stack
from siyu_kit.events.streams import DLQ_PREFIX, DLQ_STREAM, ensure_streams, stream_name
from siyu_kit.ids import new_id
from siyu_kit.liveness import LIVENESS_SERVICE
from tests.support import eventually

# Slow failure scenarios: `make chaos` runs them (see the Makefile).
pytestmark = pytest.mark.chaos

SERVICE = "content"
DURABLE = "content-funnel-order-paid"
PAID = "siyu.order.order.paid"
ORDER_STREAM = stream_name("order")
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    stack = Stack.on_free_ports(Path(tmp_path_factory.mktemp("supervision")), SIYU_CONSUMER_DOWN_LIMIT_S="2")
    try:
        stack.start_infra()
        stack.start_service(SERVICE)
        stack.wait_services_serving([SERVICE], timeout=60)
    except Exception:
        stack.stop_all()
        raise
    yield stack
    stack.stop_all()


@pytest.fixture
async def js(servers):
    nc = await nats.connect(servers.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    yield nc.jetstream()
    await nc.close()


def health(stack, service: str = "") -> int | None:
    """Readiness by default; the liveness probe's answer with service=LIVENESS_SERVICE."""
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports[SERVICE]}") as ch:
        try:
            return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service),
                                                        timeout=2).status
        except grpc.RpcError:
            return None


async def _consumes(js) -> bool:
    """Publish an unreadable order.paid and wait for the consumer to dead-letter it:
    proof that it fetches and handles again."""
    msg_id = new_id("evt")
    await js.publish(PAID, b"not an envelope " + msg_id.encode(), headers={"Nats-Msg-Id": msg_id})

    async def dead_lettered():
        seq = 1
        while True:
            try:
                msg = await js.get_msg(DLQ_STREAM, seq, subject=f"{DLQ_PREFIX}.{SERVICE}.{DURABLE}", next=True)
            except NotFoundError:
                return False
            if msg.data.endswith(msg_id.encode()):
                return True
            seq = msg.seq + 1
    return await eventually(dead_lettered, timeout=20, message="the consumer handles events again")


async def test_a_consumer_down_past_the_limit_turns_health_not_serving_until_it_is_back(servers, js):
    assert health(servers) == SERVING
    # The order stream is lost (as if JetStream lost it): fetching and subscribing fail
    # while NATS and the database are fine.
    await js.delete_stream(ORDER_STREAM)
    await eventually(lambda: health(servers) == NOT_SERVING, timeout=15,
                     message="health reports the consumer down")
    assert servers.procs[SERVICE].poll() is None
    # NATS answers, yet the consumer stays down: the liveness probe asks for a restart.
    assert health(servers, LIVENESS_SERVICE) == NOT_SERVING

    # The stream is back (any process that starts creates it): the consumer resubscribes
    # by itself, without a restart of the service.
    await ensure_streams(js)
    await eventually(lambda: health(servers) == SERVING, timeout=20, message="SERVING again")
    assert health(servers, LIVENESS_SERVICE) == SERVING
    assert await _consumes(js)


async def test_the_consumer_survives_nats_stopping_and_starting(servers, js):
    servers.stop("nats")
    await eventually(lambda: health(servers) == NOT_SERVING, timeout=15, message="NOT_SERVING without NATS")
    # Without NATS no consumer can run, and a restart would not bring NATS back: still alive.
    assert health(servers, LIVENESS_SERVICE) == SERVING
    # Start nats-server again on the same port and data; the database keeps running.
    servers.start_nats()
    await eventually(lambda: health(servers) == SERVING, timeout=30, message="SERVING after NATS is back")
    assert await _consumes(js)


async def test_a_changed_max_deliver_and_ack_wait_reach_the_server_on_restart(servers, js):
    info = await js.consumer_info(ORDER_STREAM, DURABLE)
    assert (info.config.max_deliver, info.config.ack_wait) == (6, 30.0)  # SIYU_MAX_DELIVER=5, default wait

    servers.stop(SERVICE)
    servers.start_service(SERVICE, extra_env={"SIYU_MAX_DELIVER": "8", "SIYU_CONSUMER_ACK_WAIT_S": "45"})
    servers.wait_services_serving([SERVICE], timeout=60)
    info = await js.consumer_info(ORDER_STREAM, DURABLE)
    assert (info.config.max_deliver, info.config.ack_wait) == (9, 45.0)
    assert await _consumes(js)
