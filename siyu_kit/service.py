"""The process of a service: gRPC server, health, reflection, outbox relay, event
consumers and periodic jobs on one event loop, with a clean SIGTERM."""
from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import grpc
import nats
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from nats.js import JetStreamContext
from pymongo.collection import Collection

from siyu_kit import clients, config, db, lease as leases, liveness, logging as slog, metrics, profiling, trust
from siyu_kit.events import outbox
from siyu_kit.events import invalidation
from siyu_kit.events.consumer import ACK_WAIT_S, Consumer, Subscription
from siyu_kit.events.relay import OutboxRelay
from siyu_kit.events.streams import ensure_streams
from siyu_kit.grpc_server import ContextInterceptor
from siyu_kit.admission import AdmissionInterceptor

log = slog.get("siyu.service")

# A consumer down longer than this (SIYU_CONSUMER_DOWN_LIMIT_S) turns health NOT_SERVING:
# the pod stops taking traffic and its orchestrator sees that it no longer consumes.
# Shorter outages (a NATS blip, a stream failing over) are ridden out by the consumer.
CONSUMER_DOWN_LIMIT_S = 30.0
# The lease of the relay's sweep for events a crashed replica left behind.
RELAY_LEASE = "relay-sweep"


@dataclass(frozen=True)
class Job:
    """Runs `run` every `interval_s` seconds; a failure is logged and tried next time."""
    name: str
    interval_s: float
    run: Callable[[], Awaitable[Any]]


@dataclass
class Parts:
    # (add_XServicer_to_server, servicer, full service name)
    servicers: list[tuple[Callable, Any, str]] = field(default_factory=list)
    # collections whose documents carry an outbox
    outbox_collections: list[Collection] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)


class Runtime:
    """What a service's wiring gets: settings, clients of other services, the relay."""

    def __init__(self, settings: config.Settings):
        self.settings = settings
        self.relay: OutboxRelay | None = None
        self._channels: dict[str, grpc.aio.Channel] = {}

    def channel(self, service: str) -> grpc.aio.Channel:
        if service not in self._channels:
            self._channels[service] = clients.channel(self.settings.addr(service), self.settings.service)
        return self._channels[service]


async def _serve(name: str, build: Callable[[Runtime], Parts]) -> None:
    settings = config.load(name)
    slog.configure(name, settings.log_level)
    config.refuse_dev_secrets(name)
    trust.set_issuer(name)
    metrics.serve(settings.metrics_port)
    db.connect(settings.mongodb_uri, settings.mongodb_db, settings.db_threads, service=name)
    runtime = Runtime(settings)
    parts = build(runtime)

    server = grpc.aio.server(interceptors=[AdmissionInterceptor(name), ContextInterceptor(name)],
                             options=clients.server_options())
    # Readiness on "" and each service; liveness on liveness.LIVENESS_SERVICE (siyu_kit/liveness.py).
    health = liveness.Health(liveness.Liveness(config.env_seconds("CONSUMER_DOWN_LIMIT_S", CONSUMER_DOWN_LIMIT_S)))
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = [reflection.SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    for add, servicer, full_name in parts.servicers:
        add(servicer, server)
        names.append(full_name)
    reflection.enable_server_reflection(names, server)
    await _set_health(health, parts, health_pb2.HealthCheckResponse.NOT_SERVING)
    bound = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    await server.start()
    log.info("service.listening", port=bound)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    nc = await _connect_nats(settings.nats_url, stop)
    tasks: list[asyncio.Task] = []
    worker_tasks: list[asyncio.Task] = []
    workers: list[Any] = []
    consumers: list[Consumer] = []
    if nc is not None:
        js: JetStreamContext = nc.jetstream()
        # While a cluster elects its leaders this waits (health NOT_SERVING) rather than
        # crashing; a stop meanwhile ends the service cleanly.
        if await ensure_streams(js, stop) is None:
            await nc.close()
            nc = None
    if nc is not None:
        # Caches of the hot path hear the events that change what they hold, in every replica.
        await invalidation.listen(nc)
        # One holder id for this process's leases: its jobs and its relay's sweep.
        holder = leases.new_holder(name)
        lease_store = leases.mongo_store()
        runtime.relay = OutboxRelay(name, js, parts.outbox_collections, settings.relay_interval_s,
                                    sweep_lease=leases.Lease(lease_store, RELAY_LEASE, holder))
        workers.append(runtime.relay)
        outbox.on_commit(runtime.relay.kick)
        ack_wait_s = config.env_seconds("CONSUMER_ACK_WAIT_S", ACK_WAIT_S)
        consumers = [Consumer(name, js, sub, settings.max_deliver, ack_wait_s) for sub in parts.subscriptions]
        workers += consumers
        worker_tasks = [asyncio.create_task(w.run(), name=type(w).__name__) for w in workers]
        tasks += worker_tasks
        tasks += [asyncio.create_task(_every(name, job, leases.Lease(lease_store, job.name, holder)), name=job.name)
                  for job in parts.jobs]
        down_limit_s = config.env_seconds("CONSUMER_DOWN_LIMIT_S", CONSUMER_DOWN_LIMIT_S)
        tasks.append(asyncio.create_task(_watch_health(health, parts, nc, consumers, down_limit_s, stop)))
        health.liveness.watch(nc, consumers, tasks)
        await stop.wait()

    # SIGTERM: stop taking traffic, let in-flight calls finish, then stop the workers.
    log.info("service.stopping")
    await _set_health(health, parts, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.stop(grace=5)
    for worker in workers:
        worker.stop()
    # Relay and consumers finish their current step (an idle fetch gives way); jobs and
    # anything still busy are cancelled. An unacked message is redelivered, and unsent
    # events stay in the outbox, so nothing is lost either way.
    if worker_tasks:
        await asyncio.wait(worker_tasks, timeout=3)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if nc is not None:
        await nc.close()
    log.info("service.stopped")


async def _connect_nats(url: str, stop: asyncio.Event):
    while not stop.is_set():
        try:
            # SIYU_NATS_URL may list every node of a cluster, comma-separated.
            return await nats.connect([u.strip() for u in url.split(",") if u.strip()],
                                      max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                      connect_timeout=2, reconnected_cb=invalidation.on_reconnected)
        except Exception as error:  # noqa: BLE001 - keep trying until NATS answers
            log.warning("nats.unreachable", url=url, error=repr(error))
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass
    return None


async def _set_health(health: HealthServicer, parts: Parts, status) -> None:
    await health.set("", status)
    for _, _, full_name in parts.servicers:
        await health.set(full_name, status)


async def _watch_health(health: HealthServicer, parts: Parts, nc, consumers: list[Consumer],
                        down_limit_s: float, stop: asyncio.Event) -> None:
    """SERVING only while MongoDB and NATS answer and no consumer has been down for
    longer than `down_limit_s` (a consumer restarts itself meanwhile)."""
    serving = None
    while not stop.is_set():
        down = [c.sub.durable for c in consumers if c.down_for() > down_limit_s]
        ok = nc.is_connected and not down and await db.run_sync(db.ping)
        if ok != serving:
            serving = ok
            await _set_health(health, parts, health_pb2.HealthCheckResponse.SERVING if ok
                              else health_pb2.HealthCheckResponse.NOT_SERVING)
            log.info("service.health", serving=ok, consumers_down=down)
        await asyncio.sleep(1.0)


async def _every(service_name: str, job: Job, lease: leases.Lease) -> None:
    """Runs the job only while this replica holds the lease named after it; the others
    wait, trying to acquire it, and one of them takes over within about TTL when the
    holder dies. A run sees its fencing token through `siyu_kit.lease.current()`."""
    held = metrics.LEASES_HELD.labels(service_name, job.name)
    held.set(0)
    keeper = asyncio.create_task(leases.hold_while(lease, lambda now: held.set(1 if now else 0)))
    try:
        while True:
            if not lease.held():
                await asyncio.sleep(min(job.interval_s, lease.retry_s))
                continue
            outcome = "ok"
            mark = leases.enter(lease.as_held())
            try:
                await job.run()
            except Exception:  # noqa: BLE001 - a failed run is retried next interval
                outcome = "failed"
                log.exception("job.failed", job=job.name)
            finally:
                leases.leave(mark)
            metrics.JOB_RUNS.labels(service_name, job.name, outcome).inc()
            await asyncio.sleep(job.interval_s)
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)


def run(name: str, build: Callable[[Runtime], Parts]) -> None:
    profiling.arm(name)
    asyncio.run(_serve(name, build))
