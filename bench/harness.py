"""What every scenario shares: the load loop, latency percentiles, the bench merchant
and its HTTP and gRPC clients, database round-trip snapshots, the table and the JSON."""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import ssl
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import grpc
import httpx
from siyu.member.v1 import member_pb2, member_pb2_grpc

from siyu_kit.config import SERVICE_NAMES
from siyu_kit.context import RequestContext
from siyu_kit.devstack import Stack
from siyu_kit.metrics import consumer_lag, db_commands


class Rejected(Exception):
    """An answer that is not a success; `reason` is the API's reason (SOLD_OUT, …) or
    the HTTP status / gRPC code when there is none."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def progress(scenario: str, message: str) -> None:
    """A line on stderr while a long scenario runs; the table stays on stdout."""
    print(f"  {scenario}: {message}", file=sys.stderr, flush=True)


def percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_ms:
        return 0.0
    return sorted_ms[max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)]


@dataclass
class Load:
    """What a measured run did: the latency of every success, the failures by reason."""
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + sum(self.failures.values())

    @property
    def throughput_per_s(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s else 0.0

    def latency(self) -> dict[str, float]:
        ordered = sorted(self.latencies_ms)
        return {f"p{p}_ms": round(percentile(ordered, p), 2) for p in (50, 95, 99)}

    def summary(self) -> dict:
        return {"requests": self.requests, "throughput_per_s": round(self.throughput_per_s, 1),
                **self.latency(), "errors": sum(self.failures.values()), "error_reasons": dict(self.failures)}


async def closed_loop(op: Callable[[int], Awaitable[object]], concurrency: int, duration_s: float) -> Load:
    """`concurrency` callers, each starting its next call as soon as the last one ends,
    until `duration_s` is over. `op(i)` gets a running number to pick its member or SKU."""
    load = Load()
    deadline = time.perf_counter() + duration_s

    async def caller(first: int) -> None:
        i = first
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await op(i)
            except Rejected as error:
                load.failures[error.reason] += 1
            else:
                load.latencies_ms.append((time.perf_counter() - started) * 1000)
            i += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(caller(n) for n in range(concurrency)))
    load.elapsed_s = time.perf_counter() - started
    return load


async def send(http: httpx.AsyncClient, method: str, path: str, **kwargs) -> httpx.Response:
    """One HTTP call, tried again when the connection fails (a kept-alive connection the
    server has just closed): every write the bench sends carries an idempotency key."""
    for _ in range(3):
        try:
            return await http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            failure = error
    raise Rejected(type(failure).__name__, str(failure)) from failure


def error_reason(resp: httpx.Response) -> str:
    try:
        return resp.json()["error"].get("reason") or resp.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP_{resp.status_code}"


def checked(resp: httpx.Response, what: str) -> dict:
    """The JSON of a response that must be a success for the scenario to go on."""
    if resp.status_code != 200:
        raise RuntimeError(f"{what} failed: {resp.status_code} {resp.text[:300]}")
    return resp.json()


async def answer(http: httpx.AsyncClient, method: str, path: str, success: str,
                 **kwargs) -> tuple[str, httpx.Response | None]:
    """One press of a burst: `success` for a 200, else the API's reason word (or the
    transport failure's name), with the response when there was one."""
    try:
        resp = await send(http, method, path, **kwargs)
    except Rejected as error:
        return error.reason, None
    return (success if resp.status_code == 200 else error_reason(resp)), resp


class Gate:
    """Where every press of a burst waits; `burst` opens it for all at one instant,
    `opened` (time.perf_counter), from which each press's latency runs."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.opened = 0.0

    async def wait(self) -> None:
        await self._event.wait()

    async def burst(self, presses: list[Awaitable[None]]) -> None:
        """Parks every press at the gate, opens it, and waits for every answer."""
        tasks = [asyncio.create_task(p) for p in presses]
        await asyncio.sleep(0.1)  # every task is parked at the gate
        self.opened = time.perf_counter()
        self._event.set()
        await asyncio.gather(*tasks)


@dataclass(frozen=True)
class Member:
    member_id: str
    token: str


@dataclass
class Bench:
    """The running suite, the seeded bench merchant, and where results go."""
    stack: Stack
    shop: dict
    out_dir: Path
    baselines: dict = field(default_factory=dict)

    @property
    def merchant_id(self) -> str:
        return self.shop["merchant_id"]

    @contextlib.asynccontextmanager
    async def devices(self, count: int) -> AsyncIterator[list[httpx.AsyncClient]]:
        """`count` clients of the gateway with the merchant's H5 channel key, one connection
        each, as that many phones would call it. (One client with a pool of thousands of
        connections spends more CPU in its pool than the gateway does per request.)"""
        tls = ssl.create_default_context()  # shared: building one per client costs milliseconds
        clients = [httpx.AsyncClient(base_url=self.stack.gateway_url,
                                     headers={"X-Api-Key": self.shop["api_keys"]["H5"]}, verify=tls,
                                     limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                                     timeout=60) for _ in range(count)]
        try:
            yield clients
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))

    def grpc_channel(self, service: str) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(f"127.0.0.1:{self.stack.ports[service]}")

    def metadata(self, member_id: str = "") -> tuple[tuple[str, str], ...]:
        """What the gateway sends for an H5 call, from a member when `member_id` is given."""
        return RequestContext(request_id=f"req_bench{uuid.uuid4().hex}", merchant_id=self.merchant_id,
                              channel="H5", caller_kind="member" if member_id else "",
                              caller_id=member_id).to_metadata()

    async def login_members(self, prefix: str, count: int, concurrency: int = 32) -> list[Member]:
        """Members signed in through the member service's Login, as the gateway would."""
        members: list[Member | None] = [None] * count
        async with self.grpc_channel("member") as ch:
            stub = member_pb2_grpc.MemberServiceStub(ch)
            queue = iter(range(count))

            async def worker() -> None:
                for i in queue:
                    for attempt in range(10):
                        try:
                            reply = await stub.Login(member_pb2.LoginRequest(code=f"sandbox:{prefix}-{i}"),
                                                     metadata=self.metadata(), timeout=60)
                            break
                        except grpc.aio.AioRpcError as error:
                            # A member service at its bound (OVERLOADED) asks to come back shortly.
                            if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == 9:
                                raise
                            await asyncio.sleep(1)
                    members[i] = Member(reply.member.member_id, reply.access_token)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return [m for m in members if m is not None]

    async def staff_token(self, http: httpx.AsyncClient) -> str:
        resp = await http.post("/v1/staff/login", headers={"X-Api-Key": ""}, json={
            "merchant_code": self.shop["merchant_code"], "username": self.shop["staff_username"],
            "password": self.shop["staff_password"]})
        if resp.status_code != 200:
            raise RuntimeError(f"staff login failed: {resp.text}")
        return resp.json()["access_token"]

    async def settled(self, timeout_s: float = 180.0, quiet_s: float = 6.0) -> float:
        """Waits until no service has events left to handle (for `quiet_s` together, longer
        than a consumer takes to read its lag again): what a scenario did to set up (thousands
        of sign-ins, each a member.registered for several consumers) is not left running
        under the load it then measures. Seconds waited; TimeoutError past `timeout_s`."""
        started = time.monotonic()
        quiet_since = None
        while True:
            lag = sum(await asyncio.gather(*(asyncio.to_thread(consumer_lag, self.stack.metrics_url(s))
                                             for s in SERVICE_NAMES)))
            now = time.monotonic()
            quiet_since = (quiet_since or now) if lag == 0 else None
            if quiet_since is not None and now - quiet_since >= quiet_s:
                return now - started
            if now - started > timeout_s:
                raise TimeoutError(f"{lag:.0f} events still unhandled after {timeout_s:.0f}s")
            await asyncio.sleep(0.5)

    def db_commands(self) -> Counter:
        """Database commands each service has sent so far, by (service, rpc)."""
        counts = Counter()
        for service in SERVICE_NAMES:
            for rpc, value in db_commands(self.stack.metrics_url(service)).items():
                counts[(service, rpc)] += value
        return counts

    def write(self, result: dict) -> Path:
        path = self.out_dir / f"{result['scenario']}.json"
        path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        return path


def result(scenario: str, load: Load, baseline: dict, concurrency: int, **extra) -> dict:
    """The JSON every scenario writes; ratio = this scenario's throughput over the baseline's."""
    ratio = load.throughput_per_s / baseline["throughput_per_s"] if baseline.get("throughput_per_s") else 0.0
    return {"scenario": scenario, **load.summary(), "baseline": baseline, "ratio_to_baseline": round(ratio, 3),
            "cores": os.cpu_count(), "concurrency": concurrency, "duration_s": round(load.elapsed_s, 2), **extra}


COLUMNS = [("scenario", 11, "{}"), ("requests", 9, "{}"), ("req/s", 9, "{:.1f}"), ("p50 ms", 8, "{:.1f}"),
           ("p95 ms", 8, "{:.1f}"), ("p99 ms", 8, "{:.1f}"), ("baseline/s", 11, "{:.1f}"), ("ratio", 7, "{:.3f}"),
           ("errors", 7, "{}")]


def table_header() -> str:
    return "  ".join(name.rjust(width) for name, width, _ in COLUMNS)


def table_row(r: dict) -> str:
    values = [r["scenario"], r["requests"], r["throughput_per_s"], r["p50_ms"], r["p95_ms"], r["p99_ms"],
              r["baseline"].get("throughput_per_s", 0.0), r["ratio_to_baseline"], r["errors"]]
    return "  ".join(fmt.format(v).rjust(width) for (_, width, fmt), v in zip(COLUMNS, values))
