"""relay_replicas: three relays (three replicas of one service) over one outbox collection.

`python -m bench.relay_replicas [events]` starts its own MongoDB-protocol server and
nats-server on free ports, then commits `events` documents (300 by default) spread over
three relays and counts every publish until all outboxes are clear, twice:

- `every relay sweeps`: each commit wakes its replica's relay, and every relay scans for
  anything pending (how the relay worked before leases);
- `own commits + leased sweep`: each replica publishes the documents it committed, and
  only the holder of the sweep's lease takes what is pending longer than the grace.

It prints publishes per event and the time until every outbox was clear. Numbers from a
shared 2-core machine are noisy.
"""
from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import nats
from google.protobuf import wrappers_pb2
from pymongo import MongoClient

from siyu_kit.devstack import Stack
from siyu_kit.events import outbox
from siyu_kit.events.relay import OutboxRelay
from siyu_kit.events.streams import ensure_streams
from siyu_kit.ids import new_id
from siyu_kit.lease import Lease, MongoLeases

REPLICAS = 3


class CountingPublisher:
    """Real JetStream, counting the publishes of one relay (also the relay tests' probe)."""

    def __init__(self, js):
        self._js = js
        self.published = 0

    async def publish(self, subject, data, headers=None, **kwargs):
        self.published += 1
        return await self._js.publish(subject, data, headers=headers, **kwargs)


async def _round(db, js, events: int, leased: bool) -> tuple[int, float]:
    coll = db[f"agg_{new_id('c').lower()}"]
    leases = MongoLeases(db[f"leases_{new_id('c').lower()}"])
    topic = f"siyu.catalog.bench{new_id('t').lower().replace('_', '')}"
    counted = [CountingPublisher(js) for _ in range(REPLICAS)]
    relays = [OutboxRelay("catalog", c, [coll], interval_s=0.5,
                          sweep_lease=Lease(leases, "relay-sweep", f"replica-{i}", ttl=10) if leased else None,
                          grace_s=2.0 if leased else 0.0)
              for i, c in enumerate(counted)]
    tasks = [asyncio.create_task(r.run()) for r in relays]
    while not all(r._loop for r in relays):
        await asyncio.sleep(0.01)
    started = time.monotonic()
    for i in range(events):
        e = outbox.make_event(f"{topic}.created", merchant_id="m_bench", aggregate_id=f"agg_{i}",
                              aggregate_version=1, payload=wrappers_pb2.StringValue(value="x"))
        await asyncio.to_thread(coll.insert_one, {"_id": f"agg_{i}", **outbox.for_insert(e)})
        relays[i % REPLICAS].kick(*((coll, f"agg_{i}") if leased else ()))
    while await asyncio.to_thread(coll.count_documents, {outbox.PENDING: 1}):
        await asyncio.sleep(0.02)
    elapsed = time.monotonic() - started
    for r in relays:
        r.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    return sum(c.published for c in counted), elapsed


async def main(events: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack.on_free_ports(Path(tmp))
        stack.start_infra()
        client = MongoClient(stack.mongodb_uri, tz_aware=True)
        db = client[f"bench_relays_{new_id('r').lower()}"]
        nc = await nats.connect(stack.nats_url)
        try:
            js = nc.jetstream()
            await ensure_streams(js)
            print(f"{events} events, {REPLICAS} relays")
            for leased, name in ((False, "every relay sweeps"), (True, "own commits + leased sweep")):
                published, elapsed = await _round(db, js, events, leased)
                print(f"{name:28} {published:5d} publishes ({published / events:.2f} per event), "
                      f"all clear after {elapsed:.2f} s")
        finally:
            await nc.close()
            client.drop_database(db.name)
            client.close()
            stack.stop_all()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
