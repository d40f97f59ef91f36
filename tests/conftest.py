"""One suite per test session: the embedded MongoDB server, nats-server, the WeChat
stand-in, the four services and the gateway, each a real process on a free loopback port."""
from __future__ import annotations

import os
from pathlib import Path

import nats
import pytest

from siyu_kit.devstack import Stack
from siyu_kit.events.streams import ensure_streams
from tests.support import running

SESSION_ENV = {
    # Each process publishes what it commits at once; the relay's sweep only picks up what a
    # killed process left (after its 2 s grace), so polling faster would only load the suite.
    "SIYU_RELAY_INTERVAL_S": "1.0",
    # Expired reservations and unpaid orders are swept soon after their expiry, so a test
    # that sets a short expiry waits seconds, not the production interval.
    "SIYU_CATALOG_SWEEP_INTERVAL_S": "1.0",
    "SIYU_ORDER_EXPIRY_INTERVAL_S": "1.0",
    # Orders whose after-sales window closed settle within a moment (tests use 0 days).
    "SIYU_ORDER_SETTLE_INTERVAL_S": "1.0",
    "SIYU_ORDER_SPLIT_EXECUTE_INTERVAL_S": "1.0",
    # Community campaigns close and the uncollected rule applies within a moment.
    "SIYU_ORDER_COMMUNITY_SWEEP_INTERVAL_S": "1.0",
    # Bargains past their time limit fail within a moment (bargain activities ending soon).
    "SIYU_ORDER_BARGAIN_SWEEP_INTERVAL_S": "1.0",
    # Points unfreeze and expire within a second of falling due.
    "SIYU_MEMBER_POINTS_JOB_INTERVAL_S": "1.0",
    "SIYU_MEMBER_COUPON_JOB_INTERVAL_S": "1.0",
    "SIYU_MEMBER_BALANCE_JOB_INTERVAL_S": "1.0",
    "SIYU_MEMBER_BIRTHDAY_JOB_INTERVAL_S": "1.0",
    "SIYU_MEMBER_DATA_EXPORT_INTERVAL_S": "1.0",
    "SIYU_MEMBER_RFM_JOB_INTERVAL_S": "1.0",
    # A backfill started over (as for data an older version wrote) is picked up at once.
    "SIYU_MEMBER_BACKFILL_INTERVAL_S": "1.0",
    # Scheduled content is published within a moment of its time.
    "SIYU_CONTENT_PUBLISH_INTERVAL_S": "1.0",
    "SIYU_LIVE_LIKES_INTERVAL_S": "1.0",
    # Withdrawals the provider answered later are asked about again within a second.
    "SIYU_MEMBER_WITHDRAWAL_JOB_INTERVAL_S": "1.0",
    # The catalog keeps an order's stock this long past the order's expiry (60 s in production).
    "SIYU_ORDER_RESERVATION_GRACE_S": "2",
    # Hundreds of members buying at once share one channel key; the per-member limit stays
    # at its default, which test_gateway_http relies on.
    "SIYU_RATE_LIMIT_KEY_RPS": "5000",
    # A WeChat payment with no notification is asked about after a second, not thirty.
    "SIYU_ORDER_WECHAT_QUERY_AFTER_S": "1",
    # Groups past their deadline are closed within a moment (group buy).
    "SIYU_ORDER_GROUP_SWEEP_INTERVAL_S": "1.0",
    # Gateways report live-room viewers every half second: a test sees them counted soon.
    "SIYU_GATEWAY_LIVE_REPORT_S": "0.5",
    # Two workers' suites share two cores with the tests' own crowds (200 buyers at once):
    # a call waits its turn longer than in production, and a 504 there is the machine, not
    # the suite. Still below the tests' HTTP client timeouts (30 s).
    "SIYU_GATEWAY_DEADLINE_S": "20",
    # A job whose holder died is taken over within seconds (tests/integration/test_replicas.py).
    "SIYU_LEASE_TTL_S": "6",
}


@pytest.fixture(scope="session")
def infra(tmp_path_factory) -> Stack:
    """Only the embedded MongoDB server and nats-server, for tests of the shared kit."""
    servers = Stack.on_free_ports(Path(tmp_path_factory.mktemp("infra")))
    try:
        servers.start_infra()
    except Exception:
        servers.stop_all()
        raise
    yield servers
    servers.stop_all()


@pytest.fixture
async def js(infra):
    """JetStream on the infra-only servers, with every stream in place."""
    nc = await nats.connect(infra.nats_url)
    jetstream = nc.jetstream()
    await ensure_streams(jetstream)
    yield jetstream
    await nc.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    data_dir = Path(tmp_path_factory.mktemp("siyu"))
    suite = Stack.on_free_ports(data_dir, **SESSION_ENV)
    # SIYU_TEST_ONLY=catalog,order starts just those services (no gateway), for working
    # on one service; the full run starts everything and waits for the gateway's /healthz/deps.
    only = [n for n in os.environ.get("SIYU_TEST_ONLY", "").split(",") if n]

    def start() -> None:
        if only:
            suite.start_infra()
            suite.start_wechat()
            for name in only:
                suite.start_service(name)
            suite.wait_services_serving(only, timeout=120)
        else:
            suite.start_all()
            suite.wait_ready(timeout=120)

    with running(suite, start):
        yield suite
    if os.environ.get("SIYU_KEEP_LOGS"):
        print(f"logs kept in {data_dir}/log")


# A test worker's internal error ends the run with the controller's own traceback last,
# which hides the worker's; CI shows only the end of the output, so the worker's last
# lines are repeated there.
_worker_errors: list[str] = []
WORKER_ERROR_LINES = 15


def pytest_internalerror(excrepr, excinfo) -> None:
    text = str(excinfo.value)
    if isinstance(excinfo.value, AssertionError) and text.startswith("Traceback"):
        _worker_errors.append(text)


def pytest_unconfigure(config) -> None:
    import sys

    for text in _worker_errors:
        lines = [line for line in text.splitlines() if line.strip(" ^~") and line.strip() != "assert False"]
        print("a test worker's internal error ended the run; its last lines:", *lines[-WORKER_ERROR_LINES:],
              sep="\n", file=sys.stderr)
