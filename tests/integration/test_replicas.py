"""A second replica of every service beside the session's stack (same MongoDB, same NATS,
other ports): each job runs in one replica at a time, orders placed through both
replicas are published once each and counted once by their consumer, and a killed lease
holder's job is taken over by the other replica within seconds."""
from __future__ import annotations

import os
import signal
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient
from siyu.catalog.v1 import catalog_pb2_grpc
from siyu.order.v1 import order_pb2_grpc

from siyu_kit import config
from siyu_kit.devstack import Stack, free_port
from siyu_kit.ids import new_id
from tests.support import channel, new_merchant_id, running, wait_until
from tests.support.order import make_skus, member, place

SERVICES = ("catalog", "member", "order", "content")
# A frequent job of the content service, the one whose holder is killed.
JOB = "content-scheduled-publishing"
PLACED = "siyu.order.order.placed"


@pytest.fixture(scope="module")
def twin(stack, tmp_path_factory):
    """The second replicas: started after the session's, so those hold every lease."""
    ports = dict(stack.ports)
    for name in SERVICES:
        ports[name], ports[f"{name}_metrics"] = free_port(), free_port()
    data_dir = Path(tmp_path_factory.mktemp("replicas"))
    second = Stack(data_dir, ports, dict(stack.extra_env))
    def start() -> None:
        for name in SERVICES:
            second.start_service(name)
        second.wait_services_serving(list(SERVICES), timeout=90)

    with running(second, start):
        yield second


def samples(stack, service: str, metric: str) -> list[tuple[dict, float]]:
    with urllib.request.urlopen(stack.metrics_url(service), timeout=5) as resp:
        text = resp.read().decode()
    return [(s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == metric]


def held(stack, service: str) -> dict[str, float]:
    return {labels["job"]: value for labels, value in samples(stack, service, "siyu_leases_held")}


def runs(stack, service: str, job: str = "") -> float:
    return sum(value for labels, value in samples(stack, service, "siyu_job_runs_total")
               if not job or labels["job"] == job)


def placed_publishes(*stacks) -> float:
    return sum(value for s in stacks for labels, value in
               samples(s, "order", "siyu_events_published_by_subject_total") if labels["subject"] == PLACED)


def test_each_job_and_each_relay_sweep_runs_in_one_replica(stack, twin):
    replicas = (stack, twin)
    for service in SERVICES:
        def one_holder_each(service=service):
            mine, theirs = held(stack, service), held(twin, service)
            jobs = set(mine) | set(theirs)
            return jobs and set(mine) == set(theirs) and all(mine[j] + theirs[j] == 1 for j in jobs) and jobs
        jobs = wait_until(one_holder_each, timeout=20, message=f"{service}: one holder per lease")
        assert "relay-sweep" in jobs
    busy = {"catalog": "catalog-reservation-sweeper", "order": "order-expiry", "member": "member-points-unfreeze",
            "content": JOB}
    seen = {}
    for service, job in busy.items():
        holder = next(r for r in replicas if held(r, service)[job] == 1)
        other = twin if holder is stack else stack
        seen[service] = (holder, other, runs(holder, service, job), runs(other, service, job))
    for service, job in busy.items():
        holder, other, start, idle = seen[service]
        wait_until(lambda: runs(holder, service, job) >= start + 3, timeout=20, message=f"{job} runs in its holder")
        assert runs(other, service, job) == idle, f"{job} ran in the replica without its lease"


def test_orders_placed_through_both_replicas_are_published_and_counted_once(stack, twin):
    mid = new_merchant_id()
    n = 8
    before = placed_publishes(stack, twin)
    with channel(stack, "catalog") as c1, channel(stack, "order") as o1, channel(twin, "order") as o2:
        sku = make_skus(catalog_pb2_grpc.CatalogServiceStub(c1), mid, (1500, 100))[0]
        orders = [order_pb2_grpc.OrderServiceStub(o1), order_pb2_grpc.OrderServiceStub(o2)]
        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(lambda i: place(orders[i % 2], member(mid), new_id("k"), (sku, 1)).order_id,
                                range(n)))
    client = MongoClient(stack.mongodb_uri, tz_aware=True)
    try:
        orders_db = client[config.load("order").mongodb_db]
        content_db = client[config.load("content").mongodb_db]

        def cleared():
            return orders_db.orders.count_documents({"_id": {"$in": ids}, "outbox_pending": 0}) == n

        def counted():
            buckets = content_db.funnel_buckets.find({"merchant_id": mid})
            return sum(int(b.get("orders") or 0) for b in buckets if ":channel:" in b["_id"])

        wait_until(cleared, timeout=20, message="every order's outbox cleared")
        wait_until(lambda: counted() >= n, timeout=20, message="the funnel counted the orders")
        published = placed_publishes(stack, twin) - before
        assert published == n, f"{published} publishes for {n} orders; dropped as duplicates so far: " \
            f"{[samples(r, 'order', 'siyu_events_duplicate_total') for r in (stack, twin)]}"
        assert counted() == n
    finally:
        client.close()


def test_a_killed_holder_is_replaced_within_seconds(stack, twin):
    client = MongoClient(stack.mongodb_uri, tz_aware=True)
    leases = client[config.load("content").mongodb_db]["leases"]
    first = leases.find_one({"_id": JOB})["token"]
    # The session's replica freezes: its lease runs out and the second replica takes it.
    session_content = stack.procs["content"].pid
    os.kill(session_content, signal.SIGSTOP)
    try:
        wait_until(lambda: held(twin, "content").get(JOB) == 1, timeout=15, message="the second replica takes over")
    finally:
        os.kill(session_content, signal.SIGCONT)
    # Thawed, the old holder finds its token superseded and stops.
    wait_until(lambda: held(stack, "content").get(JOB) == 0, timeout=10, message="the old holder stops")
    frozen = runs(stack, "content", JOB)
    start = runs(twin, "content", JOB)
    wait_until(lambda: runs(twin, "content", JOB) >= start + 3, timeout=10, message="the new holder runs the job")
    assert runs(stack, "content", JOB) == frozen
    taken = leases.find_one({"_id": JOB})["token"]
    assert taken > first

    twin.kill("content")  # SIGKILL: no release, the lease has to run out
    wait_until(lambda: held(stack, "content").get(JOB) == 1, timeout=15, message="the session's replica takes it back")
    wait_until(lambda: runs(stack, "content", JOB) >= frozen + 3, timeout=10, message="the job runs again")
    assert leases.find_one({"_id": JOB})["token"] > taken
    client.close()
