"""live_room: 2,000 server-sent-event viewers on one live session through the gateway
(500 members, four connections each, as phones and tabs reconnect), while a flash sale
runs in the room: the staff pins the product, starts a 60-unit sale bound to the session,
100 members press "buy" at once and the winners pay (stock_left and someone_bought reach
the room), and the gateways' viewer reports add viewers_changed.

Reported:
- `connections_held`: viewers connected (snapshot received) when the sale starts, and
  `reconnects` (a viewer the gateway dropped as slow resumes with Last-Event-ID);
- p50/p99 (the table's latency columns) from an event's `at` (when its producer made
  it) to its arrival at a viewer, over every delivery;
- `events_lost`: per viewer, the stream's ids of the session after the viewer's snapshot
  that it never received (must be 0), and `duplicates`;
- `gateway_rss_per_viewer_kb`: the gateway's resident memory growth over the viewers.

The viewers are a lean raw-socket client (HTTP/1.0, no per-connection client object) in
the bench process, which shares the machine's cores with the suite: the latencies are
under that load. ratio_to_baseline: none (a correctness and capacity scenario).
"""
from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import httpx
import nats
from nats.js import api

from bench.harness import Bench, Load, Member, checked, percentile, progress, result, send
from siyu_kit.events.streams import LIVE_STREAM_TOPIC, stream_name

VIEWERS = 2000
MEMBERS = 500
BUYERS = 100
UNITS = 60
CONNECT_CONCURRENCY = 64
QUIET_S = 60  # at most this long for every viewer to have the stream's last event
_AT = re.compile(rb'"at":"([^"]+)"')


def rfc3339(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class Viewer:
    member: Member
    first_id: int = -1  # the snapshot's id on the first connection: what came before is not owed
    last_id: int = 0
    snapshots: int = 0
    connects: int = 0
    received: list[tuple[int, float, bytes]] = field(default_factory=list)  # (id, arrived, at)
    failed: str = ""


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def watch(viewer: Viewer, host: str, port: int, path: str, key: str, connected: asyncio.Event,
                stop: asyncio.Event, gate: asyncio.Semaphore) -> None:
    """One viewer: reads the stream until `stop`; reconnects with its last id when the
    gateway ends the stream (a slow viewer is dropped)."""
    while not stop.is_set():
        async with gate:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as error:
                viewer.failed = repr(error)
                await asyncio.sleep(0.5)
                continue
            resume = f"Last-Event-ID: {viewer.last_id}\r\n" if viewer.last_id else ""
            writer.write((f"GET {path} HTTP/1.0\r\nHost: {host}\r\nX-Api-Key: {key}\r\n"
                          f"Authorization: Bearer {viewer.member.token}\r\nAccept: text/event-stream\r\n"
                          f"{resume}\r\n").encode())
            status = await reader.readline()
            if b" 200 " not in status:
                viewer.failed = status.decode(errors="replace").strip()
                writer.close()
                await asyncio.sleep(0.5)
                continue
            while (await reader.readline()).strip():
                pass  # the response headers
        viewer.connects += 1
        try:
            await read_events(viewer, reader, connected)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def read_events(viewer: Viewer, reader: asyncio.StreamReader, connected: asyncio.Event) -> None:
    kind, seq, at = b"", 0, b""
    while True:
        line = await reader.readline()
        if not line:
            return  # the gateway ended the stream
        line = line.rstrip(b"\r\n")
        if line:
            if line.startswith(b"event:"):
                kind = line[6:].strip()
            elif line.startswith(b"id:"):
                seq = int(line[3:].strip() or 0)
            elif line.startswith(b"data:") and kind != b"snapshot":
                found = _AT.search(line)
                at = found.group(1) if found else b""
            continue
        arrived = time.time()
        if kind == b"snapshot":
            viewer.snapshots += 1
            if viewer.first_id < 0:
                viewer.first_id = seq
                connected.set()
            if seq:
                viewer.last_id = max(viewer.last_id, seq)
        elif kind and seq:
            viewer.received.append((seq, arrived, at))
            viewer.last_id = seq
        kind, seq, at = b"", 0, b""


async def stream_ids(nats_url: str, session_id: str) -> list[int]:
    """Every id the room's stream holds for the session, as the gateway numbers them."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL, ack_policy=api.AckPolicy.NONE)
        sub = await js.pull_subscribe(f"siyu.live.room.{session_id}", stream=stream_name(LIVE_STREAM_TOPIC),
                                      config=config)
        pending = (await sub.consumer_info()).num_pending
        ids: list[int] = []
        while pending:
            for msg in await sub.fetch(min(pending, 256), timeout=5):
                ids.append(msg.metadata.sequence.stream)
                pending = msg.metadata.num_pending
        await sub.unsubscribe()
        return ids
    finally:
        await nc.close()


async def open_room(http: httpx.AsyncClient, staff: dict, bench: Bench) -> tuple[str, str]:
    """A persona, its live session with the flash SKU in the line-up, started."""
    persona = checked(await http.post("/v1/staff/personas", headers=staff, json={
        "code": f"live-{uuid.uuid4().hex[:8]}", "name": "小美 Bench"}), "UpsertPersona")["persona"]
    sku = bench.shop["flash_sku"]
    session = checked(await http.post("/v1/staff/live-sessions", headers=staff, json={
        "persona_id": persona["persona_id"], "title": "直播基准 Bench Live",
        "scheduled_at": rfc3339(datetime.now(timezone.utc)), "idempotency_key": uuid.uuid4().hex,
        "line_up": [{"sku_id": sku, "live_price": {"amount": "7900", "currency": "CNY"}}]}),
        "CreateLiveSession")["live_session"]
    session_id = session["live_session_id"]
    checked(await http.post(f"/v1/staff/live-sessions/{session_id}:change-state", headers=staff,
                            json={"state": "LIVE_SESSION_STATE_LIVE"}), "ChangeLiveSessionState")
    return session_id, sku


async def sell(http: httpx.AsyncClient, staff: dict, bench: Bench, session_id: str, sku: str,
               buyers: list[Member]) -> dict:
    """Pin, a flash sale bound to the session, everyone presses at once, winners pay."""
    checked(await http.post(f"/v1/staff/live-sessions/{session_id}:pin", headers=staff, json={"sku_id": sku}),
            "PinLiveProduct")
    now = datetime.now(timezone.utc)
    sale = checked(await http.post("/v1/staff/flash-sales", headers=staff, json={
        "title": "直播秒杀 Live Flash", "sku_id": sku, "price": {"amount": "990", "currency": "CNY"},
        "units": str(UNITS), "per_member_limit": 1, "live_session_id": session_id,
        "starts_at": rfc3339(now + timedelta(seconds=1)), "ends_at": rfc3339(now + timedelta(hours=1)),
        "idempotency_key": uuid.uuid4().hex}), "CreateFlashSale")["flash_sale"]
    await asyncio.sleep(2.5)  # the sale runs, and the room heard that it started
    answers: dict[str, int] = {}

    async def buy(member: Member) -> None:
        auth = {"Authorization": f"Bearer {member.token}"}
        resp = await send(http, "POST", f"/v1/flash-sales/{sale['flash_sale_id']}:buy", headers=auth, json={
            "idempotency_key": uuid.uuid4().hex, "quantity": "1", "attribution": {"live_session_id": session_id}})
        outcome = "ORDER" if resp.status_code == 200 else resp.json().get("error", {}).get("reason", "ERROR")
        answers[outcome] = answers.get(outcome, 0) + 1
        if outcome != "ORDER":
            return
        order_id = resp.json()["order"]["order_id"]
        paid = await send(http, "POST", f"/v1/orders/{order_id}:pay", headers=auth,
                          json={"idempotency_key": uuid.uuid4().hex})
        if paid.status_code == 200:
            await send(http, "POST", f"/v1/sandbox/payments/{paid.json()['payment']['payment_id']}:complete",
                       headers=auth, json={})
            answers["PAID"] = answers.get("PAID", 0) + 1

    await asyncio.gather(*(buy(m) for m in buyers))
    return answers


async def run(bench: Bench) -> dict:
    url = urlsplit(bench.stack.gateway_url)
    key = bench.shop["api_keys"]["H5"]
    limits = httpx.Limits(max_connections=BUYERS, max_keepalive_connections=BUYERS)
    async with httpx.AsyncClient(base_url=bench.stack.gateway_url, headers={"X-Api-Key": key}, timeout=60,
                                 limits=limits) as http:
        staff = {"Authorization": f"Bearer {await bench.staff_token(http)}", "X-Api-Key": ""}
        session_id, sku = await open_room(http, staff, bench)
        members = await bench.login_members("live-viewer", MEMBERS)
        viewers = [Viewer(members[i % MEMBERS]) for i in range(VIEWERS)]
        pid = bench.stack.procs["gateway"].pid
        rss_before = rss_kb(pid)
        stop, gate = asyncio.Event(), asyncio.Semaphore(CONNECT_CONCURRENCY)
        path = f"/v1/live-sessions/{session_id}/events"
        flags = [asyncio.Event() for _ in viewers]
        started = time.perf_counter()
        tasks = [asyncio.create_task(watch(v, url.hostname, url.port, path, key, f, stop, gate))
                 for v, f in zip(viewers, flags)]
        try:
            await asyncio.wait_for(asyncio.gather(*(f.wait() for f in flags)), timeout=300)
        except asyncio.TimeoutError:
            pass
        connect_s = time.perf_counter() - started
        held = sum(f.is_set() for f in flags)
        rss_after = rss_kb(pid)
        progress("live_room", f"{held} viewers connected in {connect_s:.1f}s; gateway RSS "
                              f"{rss_before // 1024} → {rss_after // 1024} MiB; selling…")
        sale_started = time.perf_counter()
        answers = await sell(http, staff, bench, session_id, sku, members[:BUYERS])
        # Until every viewer has the stream's last event (or QUIET_S is over).
        deadline = time.monotonic() + QUIET_S
        ids = await stream_ids(bench.stack.nats_url, session_id)
        while time.monotonic() < deadline:
            await asyncio.sleep(2)
            ids = await stream_ids(bench.stack.nats_url, session_id)
            if ids and all(v.last_id >= ids[-1] for v in viewers if v.first_id >= 0):
                break
        elapsed = time.perf_counter() - sale_started
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    lost = duplicates = 0
    latencies: list[float] = []
    for viewer in viewers:
        if viewer.first_id < 0:
            continue
        got = [seq for seq, _, _ in viewer.received]
        owed = [i for i in ids if i > viewer.first_id]
        lost += len(set(owed) - set(got))
        duplicates += len(got) - len(set(got))
        for _, arrived, at in viewer.received:
            if at:
                latencies.append((arrived - datetime.fromisoformat(at.decode()).timestamp()) * 1000)
    ordered = sorted(latencies)
    load = Load(elapsed, latencies)
    progress("live_room", f"{len(ids)} events, {len(latencies)} deliveries, lost {lost}, "
                          f"p50 {percentile(ordered, 50):.0f} ms, p99 {percentile(ordered, 99):.0f} ms")
    return result(
        "live_room", load, {"what": "none: a capacity and correctness scenario"}, VIEWERS,
        viewers=VIEWERS, members=MEMBERS, connections_held=held, connect_s=round(connect_s, 1),
        reconnects=sum(max(0, v.connects - 1) for v in viewers),
        refused=sorted({v.failed for v in viewers if v.failed})[:5],
        stream_events=len(ids), deliveries=len(latencies), events_lost=lost, duplicates=duplicates,
        buyers=BUYERS, units=UNITS, answers=answers,
        gateway_rss_before_kb=rss_before, gateway_rss_after_kb=rss_after,
        gateway_rss_per_viewer_kb=round((rss_after - rss_before) / max(1, held), 1))
