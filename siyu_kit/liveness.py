"""Liveness of a service process, apart from its readiness.

Readiness (the health of "" and of each gRPC service) says whether the process should take
traffic: it turns NOT_SERVING while MongoDB or NATS is away, which a restart would not cure.
Liveness (the health of LIVENESS_SERVICE) says whether the process should be restarted: it
is answered on the event loop, so a loop stuck in blocking work answers nothing and the
probe times out; and it turns NOT_SERVING when a consumer has been down longer than its
limit although NATS is connected (the consumer, not the broker, is broken), or when a
worker or job task that should run for the life of the process has ended.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable, Protocol, Sequence

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

from siyu_kit import logging as slog

log = slog.get("siyu.liveness")

# The health service name a liveness probe asks for (a Kubernetes gRPC probe's `service`).
LIVENESS_SERVICE = "liveness"


class _Consumer(Protocol):
    def down_for(self) -> float: ...


class _Connection(Protocol):
    @property
    def is_connected(self) -> bool: ...


class Liveness:
    """What the liveness answer is made of; `watch` hands it the running parts."""

    def __init__(self, consumer_down_limit_s: float, clock: Callable[[], float] = time.monotonic):
        self.consumer_down_limit_s = consumer_down_limit_s
        self.clock = clock
        self._nc: _Connection | None = None
        self._consumers: Sequence[_Consumer] = ()
        self._tasks: Sequence[asyncio.Task] = ()

    def watch(self, nc: _Connection | None, consumers: Sequence[_Consumer], tasks: Sequence[asyncio.Task]) -> None:
        self._nc, self._consumers, self._tasks = nc, list(consumers), list(tasks)

    def failures(self) -> list[str]:
        """Why the process should be restarted; empty while it is alive."""
        found = [f"task {task.get_name()} ended" for task in self._tasks if task.done()]
        # A consumer cannot consume while NATS is away; restarting would not bring NATS back.
        if self._nc is not None and self._nc.is_connected:
            found += [f"consumer down {round(c.down_for())} s" for c in self._consumers
                      if c.down_for() > self.consumer_down_limit_s]
        return found


class Health(HealthServicer):
    """The standard health service, which also answers LIVENESS_SERVICE from `liveness`."""

    def __init__(self, liveness: Liveness):
        super().__init__()
        self.liveness = liveness
        self._reported: list[str] = []

    async def Check(self, request: health_pb2.HealthCheckRequest, context):
        if request.service != LIVENESS_SERVICE:
            return await super().Check(request, context)
        failures = self.liveness.failures()
        if failures != self._reported:
            self._reported = failures
            log.warning("service.liveness", alive=not failures, failures=failures)
        status = health_pb2.HealthCheckResponse.NOT_SERVING if failures else health_pb2.HealthCheckResponse.SERVING
        return health_pb2.HealthCheckResponse(status=status)
