"""Helpers shared by the test modules. Here: calling services directly over gRPC, their
databases, and waiting. Per service: tests.support.catalog, .order, .fulfilment,
.flash_sale, .member; the gateway for a seeded merchant: tests.support.shop."""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections import Counter
from typing import Callable, Iterator, TypeVar

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from pymongo import MongoClient

from siyu_kit import config, trust
from siyu_kit.config import SERVICE_NAMES
from siyu_kit.context import RequestContext
from siyu_kit.ids import new_id
from siyu_kit.metrics import db_commands, job_runs

T = TypeVar("T")


def channel(stack, service: str) -> grpc.Channel:
    """A channel that signs each call's identity anew, so metadata built once (a module's
    constant) outlives the assertion it carried."""
    return trust.resigning_channel(f"127.0.0.1:{stack.ports[service]}")


def metadata(merchant_id: str = "", *, channel: str = "", member_id: str = "", staff_id: str = "",
             roles: tuple[str, ...] = (), service: str = "") -> tuple[tuple[str, str], ...]:
    """Call metadata as the gateway (or, with `service`, another service) would send it,
    signed (siyu_kit.trust) so the services believe it."""
    kind, caller = ("member", member_id) if member_id else (("staff", staff_id) if staff_id else ("", ""))
    ctx = RequestContext(request_id=new_id("req"), merchant_id=merchant_id, channel=channel,
                         caller_kind=kind, caller_id=caller, roles=roles, calling_service=service)
    return ctx.to_metadata()


@contextlib.contextmanager
def running(stack, start: Callable[[], object]) -> Iterator:
    """`start()` brings up processes of `stack`; when that fails, the tail of every log is
    printed (the reason is there, not in the timeout) and what started is stopped. Every
    process stops when the block ends."""
    try:
        start()
    except Exception:
        for log in sorted((stack.data_dir / "log").glob("*.log")):
            print(f"==== {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        stack.stop_all()
        raise
    try:
        yield stack
    finally:
        stack.stop_all()


def stub_fixture(service: str, stub_class: type):
    """A module fixture: a gRPC stub of `service` in the session's stack."""
    @pytest.fixture(scope="module")
    def stub(stack):
        with channel(stack, service) as ch:
            yield stub_class(ch)
    return stub


def database_fixture(service: str):
    """A module fixture: the service's own database, to prove what was (not) written."""
    @pytest.fixture(scope="module")
    def database(stack):
        client = MongoClient(stack.mongodb_uri, tz_aware=True)
        yield client[config.load(service).mongodb_db]
        client.close()
    return database


def new_merchant_id() -> str:
    return new_id("mch")


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)
    found = {}
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.update({v.field: v.description for v in bad.field_violations})
    return found


def rpc_error(call: Callable, *args, **kwargs) -> grpc.RpcError:
    """The error a gRPC call must fail with."""
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value


def reason(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def wait_until(probe: Callable[[], T], timeout: float = 15.0, interval: float = 0.05,
               message: str = "condition") -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{message} not met within {timeout}s (last: {last!r})")


async def eventually(probe: Callable[[], object], timeout: float = 15.0, interval: float = 0.05,
                     message: str = "condition"):
    """`wait_until` for async tests: polls (awaiting the probe if it is a coroutine)
    without blocking the event loop."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{message} not met within {timeout}s (last: {last!r})")


async def stored(js, stream: str, subject: str) -> list:
    """Every message JetStream holds on `subject` in `stream`, in order (read from the
    stream's leader message by message)."""
    from nats.js.errors import NotFoundError

    found, seq = [], 1
    while True:
        try:
            msg = await js.get_msg(stream, seq, subject=subject, next=True)
        except NotFoundError:
            return found
        found.append(msg)
        seq = msg.seq + 1


def wait_job_runs(stack, service: str, job: str, runs: int = 3, timeout: float = 15.0) -> None:
    """Wait until `job` of `service` has finished `runs` more runs: with three, at least two
    whole runs started after this call, so whatever they would do has been done."""
    start = job_runs(stack.metrics_url(service), job)
    wait_until(lambda: job_runs(stack.metrics_url(service), job) >= start + runs, timeout=timeout,
               message=f"{runs} more runs of {service}'s {job}")


def db_round_trips(stack) -> Counter:
    """MongoDB commands so far by (service, RPC), the background work left out."""
    counts = Counter()
    for service in SERVICE_NAMES:
        for rpc, value in db_commands(stack.metrics_url(service)).items():
            if rpc != "background":
                counts[(service, rpc)] += value
    return counts


def round_trips_per_run(count: Callable[[], Counter], runs: list[Callable[[], object]]) -> tuple[Counter, float, str]:
    """Does the first of `runs` so every cache on the path is warm, as in steady state, then
    the others: the database round trips those spent (by `count`, e.g. db_round_trips),
    their mean per run, and a breakdown by service and RPC for a failure's message."""
    first, *measured = runs
    first()
    before = count()
    for run in measured:
        run()
    spent = count() - before
    breakdown = ", ".join(f"{service}.{rpc}={n / len(measured):g}" for (service, rpc), n in sorted(spent.items()))
    return spent, sum(spent.values()) / len(measured), breakdown


def ensure_gateway(stack, services) -> str:
    """The suite's gateway and the named services; with SIYU_TEST_ONLY they start here."""
    missing = [n for n in services if n not in stack.procs]
    for name in missing:
        stack.start_service(name)
    if missing:
        stack.wait_services_serving(missing, timeout=120)
    if "gateway" not in stack.procs:
        stack.start_gateway()

        def up():
            try:
                return httpx.get(f"{stack.gateway_url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        wait_until(up, timeout=60, message="gateway /healthz")
    return stack.gateway_url


def block_routes(proto: str, block: str) -> dict[str, str]:
    """RPC name → HTTP path of every annotated RPC in a `// ---- <block> ----` block of the
    service in `protos/<proto>` (up to the block's end marker)."""
    import re
    from pathlib import Path
    text = (Path(__file__).parents[2] / "protos" / proto).read_text(encoding="utf-8")
    body = text.split(f"// ---- {block} ----", 1)[1].split(f"// ---- end of {block} ----", 1)[0]
    return {name: m.group(2) for name, rule in re.findall(r"rpc (\w+)\(.*?\{(.*?)\n  \}", body, re.S)
            if (m := re.search(r'(get|post|put|patch|delete): "([^"]+)"', rule))}


def assert_routes_named(module_file: str, routes: dict[str, str]) -> None:
    """Each route's fixed path (up to its first variable) is called somewhere in the module."""
    from pathlib import Path
    source = Path(module_file).read_text(encoding="utf-8")
    missing = [rpc for rpc, path in routes.items() if path.split("{")[0].split(":")[0] not in source]
    assert missing == [], f"no case calls {missing}"
