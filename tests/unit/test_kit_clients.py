"""Channels to services balance over every address behind a name and keep their
connections checked; servers accept the clients' keepalive pings."""
from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from siyu_kit import clients


def test_a_host_and_port_is_resolved_by_dns_to_every_address():
    assert clients.target("catalog:7051") == "dns:///catalog:7051"
    assert clients.target("127.0.0.1:7051") == "dns:///127.0.0.1:7051"
    for named in ("dns:///catalog:7051", "ipv4:10.0.0.1:7051,10.0.0.2:7051", "unix:/tmp/s.sock"):
        assert clients.target(named) == named


def test_channels_balance_round_robin_and_send_keepalives():
    options = dict(clients.channel_options())
    assert options["grpc.lb_policy_name"] == "round_robin"
    assert options["grpc.keepalive_time_ms"] == clients.KEEPALIVE_TIME_MS
    assert options["grpc.keepalive_permit_without_calls"] == 1
    # The server lets through pings at least as often as the clients send them.
    server = dict(clients.server_options())
    assert server["grpc.http2.min_ping_interval_without_data_ms"] <= clients.KEEPALIVE_TIME_MS
    assert server["grpc.keepalive_permit_without_calls"] == 1
    assert server["grpc.max_connection_age_ms"] > 0


async def _server(status) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=clients.server_options())
    health = HealthServicer()
    await health.set("", status)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def test_calls_are_spread_over_every_address_of_a_target():
    serving, port_a = await _server(health_pb2.HealthCheckResponse.SERVING)
    not_serving, port_b = await _server(health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        # Two pods behind one name, as a headless Service's DNS answer lists them.
        target = f"ipv4:127.0.0.1:{port_a},127.0.0.1:{port_b}"
        async with grpc.aio.insecure_channel(target, options=clients.channel_options()) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await channel.channel_ready()
            seen = [(await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)).status for _ in range(20)]
        # pick_first would send all twenty to one of them.
        assert seen.count(health_pb2.HealthCheckResponse.SERVING) >= 5
        assert seen.count(health_pb2.HealthCheckResponse.NOT_SERVING) >= 5
    finally:
        await serving.stop(None)
        await not_serving.stop(None)


async def test_a_service_channel_reaches_a_server_through_the_dns_target():
    server, port = await _server(health_pb2.HealthCheckResponse.SERVING)
    try:
        async with clients.channel(f"127.0.0.1:{port}", "test") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(None)
