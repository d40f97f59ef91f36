"""The suite on a 3-node JetStream cluster with SIYU_STREAM_REPLICAS=3: streams and
durable consumers have three replicas; a stream brought up from one replica to three by
`ensure_streams` is left alone the next time; and the node leading the order stream is
killed (SIGKILL) while members buy: every paid order's `order.paid` is in the stream once
(one message per event id) and its effect, the catalog committing the sold units, is
applied exactly once; the order stream has a new leader and still three replicas. The
services start before the cluster has elected: they wait, NOT_SERVING, then serve."""
from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import grpc
import nats
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.js.api import StorageType, StreamConfig
from siyu.catalog.v1 import catalog_pb2 as CS, catalog_pb2_grpc
from siyu.order.v1 import order_pb2 as OS, order_pb2_grpc

from siyu_kit.config import SERVICE_NAMES
from siyu_kit.devstack import Stack
from siyu_kit.events import streams
from siyu_kit.events.outbox import decode
from siyu_kit.ids import new_id
from tests.support import eventually, new_merchant_id, running, stored, wait_until
from tests.support.fulfilment import pay
from tests.support.order import make_skus, member, place, staff

ORDER_STREAM = streams.stream_name("order")
PAID = "siyu.order.order.paid"
STOCK = 50
BEFORE_KILL, PURCHASES = 3, 10
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING

pytestmark = pytest.mark.skipif(bool(os.environ.get("NATS_URL")),
                                reason="starts its own NATS cluster; NATS_URL points elsewhere")


# Each service's health while it waited for the cluster to elect, and how long after the
# other nodes started they all served.
WAITED: dict[str, float | int | None] = {}


def waiting(stack, name: str) -> bool:
    """The service is alive and has found JetStream unavailable at least once."""
    proc = stack.procs[name]
    if proc.poll() is not None:
        raise AssertionError(f"{name} exited with {proc.returncode} while the cluster was electing")
    log = stack.data_dir / "log" / f"{name}.log"
    return log.exists() and "streams.unavailable" in log.read_text(errors="replace")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    data_dir = Path(tmp_path_factory.mktemp("jetstream-cluster"))
    stack = Stack.on_free_ports(data_dir, SIYU_STREAM_REPLICAS="3", SIYU_RELAY_INTERVAL_S="0.2",
                                # A message whose ack was lost with the leader comes back soon.
                                SIYU_CONSUMER_ACK_WAIT_S="5")

    def start() -> None:
        if not os.environ.get("MONGODB_URI"):
            stack.start_mongo()
        stack.start_wechat()
        # The services start while one node of three is up: JetStream has no meta leader
        # yet, as when a whole cluster restarts. They wait (not SERVING), then serve.
        stack.plan_nats_cluster(3)
        stack.start_nats_node("nats-1")
        for name in SERVICE_NAMES:
            stack.start_service(name)
        wait_until(lambda: all(waiting(stack, name) for name in SERVICE_NAMES), timeout=90,
                   message="every service waiting for JetStream")
        WAITED.update({name: health(stack, name) for name in SERVICE_NAMES})
        quorum_at = time.monotonic()
        stack.start_nats_node("nats-2")
        stack.start_nats_node("nats-3")
        stack.wait_nats_meta_leader(timeout=30)
        stack.wait_services_serving(list(SERVICE_NAMES), timeout=90)
        WAITED["serving_after_s"] = time.monotonic() - quorum_at

    with running(stack, start):
        yield stack


@pytest.fixture
async def js(cluster):
    nc = await nats.connect(cluster.nats_servers, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    # A just-formed cluster under the services' start (every durable created at once) and
    # two loaded cores answers slower than the client's 5 s default.
    yield nc.jetstream(timeout=20)
    await nc.close()


async def fully_replicated(js, stream: str, replicas: int = 3) -> bool:
    try:
        info = await js.stream_info(stream)
    except Exception as error:  # noqa: BLE001 - electing: not yet
        if streams.transient(error):
            return False
        raise
    peers = info.cluster.replicas or []
    return (info.config.num_replicas == replicas and bool(info.cluster.leader)
            and len(peers) == replicas - 1 and all(p.current for p in peers))


def test_services_started_before_the_cluster_elected_waited_not_serving_then_serve(cluster):
    serving_after_s = WAITED.pop("serving_after_s")
    assert WAITED == {name: NOT_SERVING for name in SERVICE_NAMES}
    assert all(health(cluster, name) == SERVING for name in SERVICE_NAMES)
    print(f"\nall four services SERVING {serving_after_s:.1f}s after the cluster's other nodes started")


async def test_ensure_streams_brings_a_one_replica_stream_to_three_and_then_does_nothing(js):
    suffix = new_id("t")[-8:].lower()
    one = StreamConfig(name=f"SIYU_TEST_{suffix.upper()}", subjects=[f"siyu-test.{suffix}.>"],
                       storage=StorageType.FILE, num_replicas=1, max_age=3600.0, duplicate_window=60.0)
    await settled(lambda: js.add_stream(one))
    try:
        wanted = replace(one, num_replicas=3)
        assert await streams.ensure_streams(js, configs=[wanted]) == {one.name: streams.UPDATED}
        assert await eventually(lambda: fully_replicated(js, one.name), timeout=20,
                                message="the stream has three current replicas")
        assert await streams.ensure_streams(js, configs=[wanted]) == {one.name: streams.UNCHANGED}
        # A storage change the server refuses is reported and the rest still reconciled.
        moved = replace(wanted, storage=StorageType.MEMORY, max_age=7200.0)
        assert await streams.ensure_streams(js, configs=[moved]) == {one.name: streams.UPDATED}
        info = await js.stream_info(one.name)
        assert (info.config.storage, info.config.max_age, info.config.num_replicas) == \
            (StorageType.FILE, 7200.0, 3)
    finally:
        await js.delete_stream(one.name)


def health(stack, service: str) -> int | None:
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports[service]}") as ch:
        try:
            return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2).status
        except grpc.RpcError:
            return None


class HealthWatch(threading.Thread):
    """Samples every service's health until stopped; remembers when one was last seen
    not SERVING."""

    def __init__(self, stack):
        super().__init__(daemon=True)
        self.stack, self.last_down, self.down = stack, None, set()
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            for name in SERVICE_NAMES:
                if health(self.stack, name) != SERVING:
                    self.last_down = time.monotonic()
                    self.down.add(name)
            self.halt.wait(0.2)


def buy(order, mid: str, sku: str) -> str:
    """One member places and pays an order of one unit; returns its id."""
    md = member(mid)
    placed = place(order, md, new_id("k"), (sku, 1))
    return pay(order, md, placed).order_id


async def settled(call, timeout: float = 30):
    """`call()`, tried again while JetStream is still electing or the client reconnecting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except Exception as error:  # noqa: BLE001 - only unavailability is retried
            if not streams.transient(error) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def paid_messages(js, merchant_id: str) -> list[tuple[str, str]]:
    """(Nats-Msg-Id, order id) of every order.paid of the merchant in the order stream."""
    found = []
    for msg in await stored(js, ORDER_STREAM, PAID):
        envelope = decode(msg.data)
        if envelope.merchant_id == merchant_id:
            assert msg.headers["Nats-Msg-Id"] == envelope.event_id
            found.append((envelope.event_id, envelope.aggregate_id))
    return found


async def test_the_node_leading_the_order_stream_dies_mid_purchase_and_nothing_is_lost_or_doubled(cluster, js):
    for name in [*(streams.stream_name(s) for s in SERVICE_NAMES), streams.stream_name(streams.LIVE_STREAM_TOPIC),
                 streams.DLQ_STREAM]:
        assert (await js.stream_info(name)).config.num_replicas == 3, name
    assert (await js.consumer_info(ORDER_STREAM, "catalog-order-paid")).config.num_replicas == 3

    mid = new_merchant_id()
    with grpc.insecure_channel(f"127.0.0.1:{cluster.ports['catalog']}") as cch, \
            grpc.insecure_channel(f"127.0.0.1:{cluster.ports['order']}") as och:
        catalog, order = catalog_pb2_grpc.CatalogServiceStub(cch), order_pb2_grpc.OrderServiceStub(och)
        [sku] = make_skus(catalog, mid, (990, STOCK))
        paid: list[str] = []
        failures: list[BaseException] = []

        def shoppers():
            try:
                for _ in range(PURCHASES):
                    paid.append(buy(order, mid, sku))
            except BaseException as error:  # noqa: BLE001 - reported by the test
                failures.append(error)

        buying = threading.Thread(target=shoppers)
        buying.start()
        wait_until(lambda: len(paid) >= BEFORE_KILL or failures, timeout=60, message="the first purchases")
        # Its leader is where the relays' publishes and the consumers' acks go.
        leader = cluster.stream_leader(ORDER_STREAM)
        assert leader in cluster.nats_nodes
        watch = HealthWatch(cluster)
        cluster.kill(leader)
        killed_at = time.monotonic()
        watch.start()
        buying.join(timeout=120)
        assert not buying.is_alive() and failures == [], failures
        assert len(paid) == PURCHASES

        # Every paid unit is committed by the catalog once: sold, not reserved, not twice.
        committed = CS.Stock(sku_id=sku, on_hand=STOCK - PURCHASES, reserved=0, available=STOCK - PURCHASES)

        def stock() -> CS.Stock:
            return catalog.GetStock(CS.GetStockRequest(sku_id=sku), metadata=staff(mid)).stock
        wait_until(lambda: stock() == committed, timeout=60, message="every paid order's units committed")
        applied_s = time.monotonic() - killed_at
        watch.halt.set()
        watch.join()
        assert all(health(cluster, name) == SERVING for name in SERVICE_NAMES)
        serving_s = 0.0 if watch.last_down is None else watch.last_down - killed_at
        audit = catalog.AuditStock(CS.AuditStockRequest(sku_id=sku), metadata=staff(mid))
        assert audit.consistent
        kinds = Counter(m.kind for m in audit.movements)
        assert (kinds["RESERVE"], kinds["COMMIT"], kinds["RELEASE"]) == (PURCHASES, PURCHASES, 0), kinds
        commits = Counter(m.reference for m in audit.movements if m.kind == "COMMIT")
        assert set(commits.values()) == {1}
        for order_id in paid:
            got = order.GetOrderAsStaff(OS.GetOrderAsStaffRequest(order_id=order_id), metadata=staff(mid))
            assert got.order.state == OS.ORDER_STATE_PAID

    # The test's own connection may have been to the dead node, and this thread blocked
    # its reconnect: read through a fresh one to a live node.
    nc = await nats.connect(cluster.nats_url)
    try:
        fresh = nc.jetstream(timeout=20)
        # One message per event in the stream, one event per paid order.
        messages = await settled(lambda: paid_messages(fresh, mid))
        assert sorted(order_id for _, order_id in messages) == sorted(paid)
        assert set(Counter(msg_id for msg_id, _ in messages).values()) == {1}

        info = await settled(lambda: fresh.stream_info(ORDER_STREAM))
        assert info.config.num_replicas == 3
        assert info.cluster.leader and info.cluster.leader != leader
        print(f"\nleader {leader} killed: services seen not SERVING {sorted(watch.down)}, "
              f"SERVING throughout after {serving_s:.1f}s, every paid order's effect applied after "
              f"{applied_s:.1f}s; "
              f"{len(messages)} order.paid for {PURCHASES} paid orders")
        # The node comes back on its data and catches up as a follower.
        cluster.start_nats_node(leader)
        assert await eventually(lambda: fully_replicated(fresh, ORDER_STREAM), timeout=30,
                                message="the restarted node is a current replica again")
    finally:
        await nc.close()
