"""The gateway under load: a bound on the requests it serves at once (the excess answered
at once with 503, Retry-After and the JSON error body), several channels to each service,
a fast JSON response, and the worker processes of one gateway (SIYU_GATEWAY_WORKERS).

A request waiting for a slot would only reach its service after its caller has given up;
one refused at once can be retried by the client after Retry-After, and the requests that
were admitted keep their latency. The live-room streams and the operations paths hold no
slot: a stream lasts for hours, and /healthz must answer while the gateway is busy.

A crowd (thousands pressing a flash sale's "buy" at once) may hold at most half of the
slots, so the other half stays for everyone else: the winners paying, members browsing.
Refused callers are told to come back after a delay spread over more seconds the more are
refused: told all the same second, they would all come back in the same second.
"""
from __future__ import annotations

import itertools
import os
import random
import shutil
import tempfile
import time

import grpc
import orjson
from prometheus_client import Counter, Gauge
from starlette.responses import Response

from siyu_kit.clients import channel_options, target as channel_target
from siyu_kit.config import env_count

from gateway import errors
from gateway.errors import ApiError

# Sized for one gateway process on two cores: 4,000 presses at once are answered within
# 10 s (an order, a refusal or 503) instead of queueing past their callers' deadlines
# (docs/performance.md, "Overload").
DEFAULT_MAX_IN_FLIGHT = 128
# Channels (HTTP/2 connections) to each service: one connection serialises every call's
# frames through one socket and one server-side reader; a few spread them. One by default:
# a channel that tried to connect while its service was still starting fails calls at once
# (UNAVAILABLE) until its backoff ends, and with several the calls taking such a channel in
# turn fail while another channel is connected (seen as 503s right after start).
DEFAULT_CHANNELS = 1
RETRY_AFTER_S = 1
# The longest delay a refusal asks for: one second more for every bound's worth of refusals
# in the last second, drawn at random up to that.
MAX_RETRY_AFTER_S = 8
# Requests of a crowd: a flash sale's presses. They share at most this part of the bound.
CROWD_SUFFIXES = (":buy",)
CROWD_SHARE = 0.5
# Paths that never take a slot: operations, and streams that stay open.
UNBOUNDED_PREFIXES = ("/healthz", "/readyz", "/openapi.json", "/docs")
UNBOUNDED_SUFFIX = "/events"

IN_FLIGHT = Gauge("siyu_gateway_in_flight", "HTTP requests being served by this gateway process")
REFUSED = Counter("siyu_gateway_refused_total", "HTTP requests refused at once because the gateway was busy")


class JsonResponse(Response):
    """JSON rendered by orjson: the same bytes a front end parses, several times faster
    than the standard library for the nested replies the API sends."""
    media_type = "application/json"

    def render(self, content) -> bytes:
        return orjson.dumps(content)


class InFlightLimit:
    """ASGI middleware: at most `limit` HTTP requests in this process at once, of which at
    most `CROWD_SHARE` of them a crowd's."""

    def __init__(self, app, limit: int | None = None, clock=time.monotonic, draw=random.randint):
        self.app = app
        self.limit = limit if limit is not None else env_count("GATEWAY_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT)
        self.crowd_limit = max(1, int(self.limit * CROWD_SHARE))
        self.in_flight = 0
        self.crowd_in_flight = 0
        self._clock = clock
        self._draw = draw
        self._second = 0  # the whole second the refusals below were counted in
        self._refused_this_second = 0
        self._refused_last_second = 0

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or self.limit <= 0 or _unbounded(path):
            await self.app(scope, receive, send)
            return
        crowd = path.endswith(CROWD_SUFFIXES)
        if self.in_flight >= self.limit or (crowd and self.crowd_in_flight >= self.crowd_limit):
            await self._refuse(scope, receive, send)
            return
        self.in_flight += 1
        self.crowd_in_flight += crowd
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.crowd_in_flight -= crowd
            IN_FLIGHT.dec()

    def retry_after_s(self) -> int:
        """1 s when few are refused; when many are, a delay drawn from 1 s up to one second
        per bound's worth of refusals in the last second (at most MAX_RETRY_AFTER_S)."""
        second = int(self._clock())
        if second != self._second:
            self._refused_last_second = self._refused_this_second if second == self._second + 1 else 0
            self._second, self._refused_this_second = second, 0
        self._refused_this_second += 1
        refused = max(self._refused_last_second, self._refused_this_second)
        spread = min(MAX_RETRY_AFTER_S, RETRY_AFTER_S + refused // max(1, self.limit))
        return self._draw(RETRY_AFTER_S, spread) if spread > RETRY_AFTER_S else RETRY_AFTER_S

    async def _refuse(self, scope, receive, send) -> None:
        REFUSED.inc()
        request_id = scope.get("state", {}).get("request_id", "")
        error = ApiError("UNAVAILABLE", "the gateway is busy; retry shortly", "OVERLOADED",
                         headers={"Retry-After": str(self.retry_after_s())})
        await errors.response(error, request_id)(scope, receive, send)


def _unbounded(path: str) -> bool:
    return path.startswith(UNBOUNDED_PREFIXES) or path.endswith(UNBOUNDED_SUFFIX)


class ChannelPool:
    """Several channels to one service, taken in turn. Each has its own connection: with a
    subchannel pool of its own, channels with the same target would share one."""

    def __init__(self, target: str, count: int):
        options = (*channel_options(), ("grpc.use_local_subchannel_pool", 1))
        self.channels = [grpc.aio.insecure_channel(channel_target(target), options=options) for _ in range(max(1, count))]
        self._turn = itertools.cycle(range(len(self.channels)))

    def next_index(self) -> int:
        return next(self._turn)

    def next(self) -> grpc.aio.Channel:
        return self.channels[self.next_index()]

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()


def channels_per_service() -> int:
    return env_count("GATEWAY_CHANNELS", DEFAULT_CHANNELS)


# ---- worker processes ------------------------------------------------------------------

def workers() -> int:
    return max(1, env_count("GATEWAY_WORKERS", 1))


def shared_state_dir() -> str:
    """A fresh directory in shared memory (else the temporary directory) for the tables the
    workers share; the gateway's main process removes it when it stops."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return tempfile.mkdtemp(prefix="siyu-gateway-", dir=base)


def remove_shared_state(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
