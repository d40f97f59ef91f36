"""Liveness, apart from readiness: a process is restarted for what a restart cures (a stuck
event loop, a consumer dead while NATS answers, a worker that ended), never for MongoDB or
NATS being away."""
from __future__ import annotations

import asyncio
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from siyu_kit import clients
from siyu_kit.liveness import LIVENESS_SERVICE, Health, Liveness

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


class FakeConsumer:
    def __init__(self, down_for: float):
        self._down_for = down_for

    def down_for(self) -> float:
        return self._down_for


class FakeNats:
    def __init__(self, connected: bool):
        self.is_connected = connected


class FakeTask:
    def __init__(self, name: str, done: bool):
        self._name, self._done = name, done

    def get_name(self) -> str:
        return self._name

    def done(self) -> bool:
        return self._done


def test_alive_before_the_parts_are_running_and_while_they_run():
    live = Liveness(consumer_down_limit_s=30)
    assert live.failures() == []
    live.watch(FakeNats(True), [FakeConsumer(0), FakeConsumer(29)], [FakeTask("OutboxRelay", False)])
    assert live.failures() == []


def test_a_consumer_down_past_its_limit_while_nats_answers_is_dead():
    live = Liveness(consumer_down_limit_s=30)
    live.watch(FakeNats(True), [FakeConsumer(0), FakeConsumer(31)], [])
    assert live.failures() == ["consumer down 31 s"]


def test_consumers_down_because_nats_is_away_are_no_reason_to_restart():
    live = Liveness(consumer_down_limit_s=30)
    live.watch(FakeNats(False), [FakeConsumer(600)], [])
    assert live.failures() == []


def test_a_worker_or_job_that_ended_is_dead():
    live = Liveness(consumer_down_limit_s=30)
    live.watch(FakeNats(False), [], [FakeTask("Consumer", False), FakeTask("expire-orders", True)])
    assert live.failures() == ["task expire-orders ended"]


async def test_the_liveness_health_answers_apart_from_readiness():
    live = Liveness(consumer_down_limit_s=30)
    health = Health(live)
    await health.set("", NOT_SERVING)  # MongoDB away: not ready
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)

            async def check(service: str) -> int:
                return (await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)).status
            assert await check("") == NOT_SERVING
            assert await check(LIVENESS_SERVICE) == SERVING
            live.watch(FakeNats(True), [FakeConsumer(120)], [])
            assert await check(LIVENESS_SERVICE) == NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await check("siyu.nothing.v1.Nothing")
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await server.stop(None)


def test_a_stuck_event_loop_does_not_answer_the_liveness_probe():
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict = {}

    async def serve():
        server = grpc.aio.server(options=clients.server_options())
        health_pb2_grpc.add_HealthServicer_to_server(Health(Liveness(consumer_down_limit_s=30)), server)
        holder["port"] = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        holder["server"] = server
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(10)
    request = health_pb2.HealthCheckRequest(service=LIVENESS_SERVICE)
    unblock = threading.Event()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{holder['port']}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            assert stub.Check(request, timeout=5).status == SERVING
            # Blocking work on the loop (a synchronous call that hangs): the probe times out.
            loop.call_soon_threadsafe(lambda: unblock.wait(10))
            with pytest.raises(grpc.RpcError) as stuck:
                stub.Check(request, timeout=1)
            assert stuck.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            unblock.set()
            assert stub.Check(request, timeout=5).status == SERVING
    finally:
        unblock.set()
        asyncio.run_coroutine_threadsafe(holder["server"].stop(None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
