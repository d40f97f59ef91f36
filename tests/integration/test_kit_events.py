"""The event kit against the real embedded MongoDB server and nats-server: the outbox
relay publishes each committed event once, and consumers ack, retry and dead-letter."""
from __future__ import annotations

import asyncio
import time

import pytest
from google.protobuf import wrappers_pb2
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError
from siyu.common.v1 import common_pb2

from bench.relay_replicas import CountingPublisher
from siyu_kit.events import outbox
from siyu_kit.events.consumer import Consumer, Poison, Subscription, backoff_s
from siyu_kit.events.relay import OutboxRelay
from siyu_kit.events.streams import DLQ_PREFIX, DLQ_STREAM, stream_name
from siyu_kit.ids import new_id
from siyu_kit.lease import Lease, MongoLeases
from tests.support import eventually, new_merchant_id, stored

STREAM = stream_name("catalog")



@pytest.fixture(scope="module")
def mongo(infra):
    client = MongoClient(infra.mongodb_uri, tz_aware=True, serverSelectionTimeoutMS=5000)
    db = client[f"kit_events_{new_id('t').lower()}"]
    yield db
    client.drop_database(db.name)
    client.close()




@pytest.fixture
def topic():
    """A subject prefix of this test alone, inside the catalog stream."""
    return f"siyu.catalog.kit{new_id('t').lower().replace('_', '')}"




def event(subject: str, merchant_id: str, aggregate_id: str, version: int = 1, text: str = "x") -> outbox.Event:
    return outbox.make_event(subject, merchant_id=merchant_id, aggregate_id=aggregate_id,
                             aggregate_version=version, payload=wrappers_pb2.StringValue(value=text))


# ---- the outbox relay -------------------------------------------------------------


async def test_relay_publishes_every_event_once_with_its_id_and_empties_the_outbox(mongo, js, topic):
    coll = mongo[f"agg_{new_id('c').lower()}"]
    merchant = new_merchant_id()
    created = [event(f"{topic}.created", merchant, "agg_1"), event(f"{topic}.created", merchant, "agg_2")]
    coll.insert_one({"_id": "agg_1", "merchant_id": merchant, "version": 1, **outbox.for_insert(created[0])})
    coll.insert_one({"_id": "agg_2", "merchant_id": merchant, "version": 1, **outbox.for_insert(created[1])})
    # A later change adds two events to agg_1 in the same single-document write.
    changed = [event(f"{topic}.changed", merchant, "agg_1", 2, "a"), event(f"{topic}.changed", merchant, "agg_1", 2, "b")]
    result = coll.update_one({"_id": "agg_1", "merchant_id": merchant, "version": 1},
                             outbox.add_to_update({"$set": {"version": 2}}, *changed))
    assert result.modified_count == 1
    coll.insert_one({"_id": "agg_3", "merchant_id": merchant, "version": 1, **outbox.for_insert()})

    relay = OutboxRelay("catalog", js, [coll])
    assert await relay.pass_once() == 4

    messages = await stored(js, STREAM, f"{topic}.>")
    by_id = {m.headers["Nats-Msg-Id"]: m for m in messages}
    assert len(messages) == 4
    assert set(by_id) == {e.event_id for e in created + changed}
    for e in created + changed:
        assert by_id[e.event_id].subject == e.subject
        assert by_id[e.event_id].data == e.data
        assert outbox.decode(by_id[e.event_id].data).event_id == e.event_id
    # agg_1's events went out in the order they were made.
    agg_1_order = [m.headers["Nats-Msg-Id"] for m in messages if outbox.decode(m.data).aggregate_id == "agg_1"]
    assert agg_1_order == sorted(e.event_id for e in (created[0], *changed))
    for doc in coll.find({}):
        assert doc.get(outbox.OUTBOX) in ({}, None)
        assert doc[outbox.PENDING] == 0
    assert await relay.pass_once() == 0
    assert len(await stored(js, STREAM, f"{topic}.>")) == 4


class _CrashBeforeClear:
    """The collection as the relay sees it, dying at its first write: the relay has
    published but not yet cleared the outbox."""

    def __init__(self, coll):
        self._coll = coll

    def find(self, *args, **kwargs):
        return self._coll.find(*args, **kwargs)

    def bulk_write(self, *args, **kwargs):
        raise ConnectionError("process died")


async def test_relay_crash_after_publish_before_clear_stores_no_duplicate(mongo, js, topic):
    coll = mongo[f"agg_{new_id('c').lower()}"]
    merchant = new_merchant_id()
    events = [event(f"{topic}.created", merchant, "agg_1"), event(f"{topic}.changed", merchant, "agg_1", 2)]
    coll.insert_one({"_id": "agg_1", "merchant_id": merchant, **outbox.for_insert(*events)})

    with pytest.raises(ConnectionError):
        await OutboxRelay("catalog", js, [_CrashBeforeClear(coll)]).pass_once()
    assert len(coll.find_one({"_id": "agg_1"})[outbox.OUTBOX]) == 2
    assert len(await stored(js, STREAM, f"{topic}.>")) == 2

    # The restarted relay publishes the same events again; JetStream drops them by id.
    assert await OutboxRelay("catalog", js, [coll]).pass_once() == 2
    messages = await stored(js, STREAM, f"{topic}.>")
    assert sorted(m.headers["Nats-Msg-Id"] for m in messages) == sorted(e.event_id for e in events)
    doc = coll.find_one({"_id": "agg_1"})
    assert doc[outbox.OUTBOX] == {} and doc[outbox.PENDING] == 0


class _WriteDuringPublish:
    """Real JetStream; while the relay publishes its first event, a use case commits
    another event to the same document."""

    def __init__(self, js, write):
        self._js = js
        self._write = write

    async def publish(self, *args, **kwargs):
        if self._write is not None:
            write, self._write = self._write, None
            write()
        return await self._js.publish(*args, **kwargs)


async def test_events_added_while_a_pass_runs_stay_pending_for_the_next_pass(mongo, js, topic):
    coll = mongo[f"agg_{new_id('c').lower()}"]
    merchant = new_merchant_id()
    first = event(f"{topic}.created", merchant, "agg_1")
    late = event(f"{topic}.changed", merchant, "agg_1", 2)
    coll.insert_one({"_id": "agg_1", "merchant_id": merchant, "version": 1, **outbox.for_insert(first)})

    def commit_late_event():
        coll.update_one({"_id": "agg_1", "merchant_id": merchant, "version": 1},
                        outbox.add_to_update({"$set": {"version": 2}}, late))

    assert await OutboxRelay("catalog", _WriteDuringPublish(js, commit_late_event), [coll]).pass_once() == 1
    doc = coll.find_one({"_id": "agg_1"})
    assert list(doc[outbox.OUTBOX]) == [late.event_id]
    assert doc[outbox.PENDING] == 1
    assert [m.headers["Nats-Msg-Id"] for m in await stored(js, STREAM, f"{topic}.>")] == [first.event_id]

    assert await OutboxRelay("catalog", js, [coll]).pass_once() == 1
    doc = coll.find_one({"_id": "agg_1"})
    assert doc[outbox.OUTBOX] == {} and doc[outbox.PENDING] == 0
    assert [m.headers["Nats-Msg-Id"] for m in await stored(js, STREAM, f"{topic}.>")] == \
        [first.event_id, late.event_id]


# ---- consumers --------------------------------------------------------------------


class Ledger:
    """An effect made idempotent by event id, as a service's handler makes it."""

    def __init__(self, coll):
        self.coll = coll

    def apply(self, envelope) -> bool:
        try:
            self.coll.insert_one({"_id": envelope.event_id, "merchant_id": envelope.merchant_id})
            return True
        except DuplicateKeyError:
            return False


def start(js, sub: Subscription, max_deliver: int = 3) -> tuple[Consumer, asyncio.Task]:
    consumer = Consumer("kittest", js, sub, max_deliver=max_deliver)
    return consumer, asyncio.create_task(consumer.run())


async def stop(consumer: Consumer, task: asyncio.Task) -> None:
    consumer.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def publish(js, e: outbox.Event) -> None:
    await js.publish(e.subject, e.data, headers={"Nats-Msg-Id": e.event_id})


async def test_consumer_acks_only_after_the_handler_has_finished(mongo, js, topic):
    ledger = Ledger(mongo[f"ledger_{new_id('c').lower()}"])
    release = asyncio.Event()
    seen = []

    async def handler(envelope, payload):
        seen.append((envelope.event_id, payload.value))
        await release.wait()
        ledger.apply(envelope)

    durable = f"kit_ack_{new_id('d')}"
    e = event(f"{topic}.paid", new_merchant_id(), "ord_1", text="hello")
    await publish(js, e)
    consumer, task = start(js, Subscription(durable, f"{topic}.paid", wrappers_pb2.StringValue, handler))
    try:
        await eventually(lambda: seen, message="handler called")
        info = await js.consumer_info(STREAM, durable)
        assert info.num_ack_pending == 1  # delivered, effect not stored yet: not acked
        release.set()

        async def acked():
            i = await js.consumer_info(STREAM, durable)
            return i.num_ack_pending == 0 and i.ack_floor.stream_seq == i.delivered.stream_seq
        await eventually(acked, message="message acked")
    finally:
        await stop(consumer, task)
    assert seen == [(e.event_id, "hello")]
    assert ledger.coll.count_documents({"_id": e.event_id}) == 1


async def test_a_handler_failing_twice_is_retried_with_backoff_and_applied_once(mongo, js, topic):
    ledger = Ledger(mongo[f"ledger_{new_id('c').lower()}"])
    attempts: list[float] = []
    applied = []

    async def handler(envelope, payload):
        attempts.append(time.monotonic())
        if len(attempts) <= 2:
            raise ConnectionError("member service unavailable")
        applied.append(ledger.apply(envelope))

    durable = f"kit_retry_{new_id('d')}"
    e = event(f"{topic}.paid", new_merchant_id(), "ord_1")
    await publish(js, e)
    consumer, task = start(js, Subscription(durable, f"{topic}.paid", wrappers_pb2.StringValue, handler),
                           max_deliver=4)
    try:
        await eventually(lambda: applied, message="effect applied")

        async def settled():
            return (await js.consumer_info(STREAM, durable)).num_ack_pending == 0
        await eventually(settled, message="message acked")
    finally:
        await stop(consumer, task)
    assert len(attempts) == 3
    assert applied == [True]
    assert ledger.coll.count_documents({"_id": e.event_id}) == 1
    # nak(delay=backoff) holds each redelivery back (10% slack for timer granularity).
    assert attempts[1] - attempts[0] >= 0.9 * backoff_s(1)
    assert attempts[2] - attempts[1] >= 0.9 * backoff_s(2)
    assert await stored(js, DLQ_STREAM, f"{DLQ_PREFIX}.kittest.{durable}") == []


async def test_a_handler_that_always_fails_ends_on_the_dead_letter_stream_after_max_deliver(js, topic):
    calls = []

    async def handler(envelope, payload):
        calls.append(envelope.event_id)
        raise ValueError("cannot apply")

    durable = f"kit_dead_{new_id('d')}"
    e = event(f"{topic}.paid", new_merchant_id(), "ord_1")
    await publish(js, e)
    consumer, task = start(js, Subscription(durable, f"{topic}.paid", wrappers_pb2.StringValue, handler),
                           max_deliver=2)
    dlq_subject = f"{DLQ_PREFIX}.kittest.{durable}"
    try:
        letters = await eventually(lambda: stored(js, DLQ_STREAM, dlq_subject), message="dead-lettered")

        async def terminated():
            i = await js.consumer_info(STREAM, durable)
            return i.num_ack_pending == 0 and i.num_pending == 0
        await eventually(terminated, message="message terminated")
    finally:
        await stop(consumer, task)
    assert calls == [e.event_id, e.event_id]
    assert len(letters) == 1
    letter = letters[0]
    assert letter.data == e.data
    assert letter.headers["Siyu-Original-Subject"] == e.subject
    assert letter.headers["Siyu-Durable"] == durable
    assert "failed 2 times" in letter.headers["Siyu-Error"]
    assert "cannot apply" in letter.headers["Siyu-Error"]


async def test_an_unreadable_message_goes_to_the_dead_letter_stream_at_once(js, topic):
    calls = []

    async def handler(envelope, payload):
        calls.append(envelope.event_id)

    durable = f"kit_poison_{new_id('d')}"
    await js.publish(f"{topic}.paid", b"\xff\xfe not an envelope", headers={"Nats-Msg-Id": new_id("evt")})
    # A readable envelope whose payload is not the type this subscription reads.
    wrong = outbox.make_event(f"{topic}.paid", merchant_id=new_merchant_id(), aggregate_id="ord_1",
                              aggregate_version=1, payload=common_pb2.Money(amount=1, currency="CNY"))
    await publish(js, wrong)
    consumer, task = start(js, Subscription(durable, f"{topic}.paid", wrappers_pb2.StringValue, handler),
                           max_deliver=5)
    dlq_subject = f"{DLQ_PREFIX}.kittest.{durable}"
    try:
        letters = await eventually(
            lambda: _at_least(stored(js, DLQ_STREAM, dlq_subject), 2), message="both dead-lettered")
        info = await js.consumer_info(STREAM, durable)
    finally:
        await stop(consumer, task)
    assert calls == []
    assert info.delivered.consumer_seq == 2  # each delivered once, never retried
    assert info.num_ack_pending == 0
    assert [m.headers["Siyu-Error"].split(":")[0] for m in letters] == ["unreadable", "unreadable"]
    assert letters[0].data == b"\xff\xfe not an envelope"
    assert letters[1].data == wrong.data
    assert "siyu.common.v1.Money" in letters[1].headers["Siyu-Error"]


async def test_a_handler_raising_poison_is_dead_lettered_without_retry(js, topic):
    calls = []

    async def handler(envelope, payload):
        calls.append(envelope.event_id)
        raise Poison("merchant is closed")

    durable = f"kit_refuse_{new_id('d')}"
    e = event(f"{topic}.paid", new_merchant_id(), "ord_1")
    await publish(js, e)
    consumer, task = start(js, Subscription(durable, f"{topic}.paid", wrappers_pb2.StringValue, handler),
                           max_deliver=5)
    try:
        letters = await eventually(lambda: stored(js, DLQ_STREAM, f"{DLQ_PREFIX}.kittest.{durable}"),
                                   message="dead-lettered")
    finally:
        await stop(consumer, task)
    assert calls == [e.event_id]
    assert letters[0].headers["Siyu-Error"] == "merchant is closed"


async def _at_least(found, n: int):
    items = await found
    return items if len(items) >= n else None


class _FailingFor:
    """Real JetStream, except that publishing any event of `doomed_ids` fails."""

    def __init__(self, js, doomed_ids):
        self._js = js
        self._doomed = set(doomed_ids)

    async def publish(self, subject, data, headers=None, **kwargs):
        if headers and headers.get("Nats-Msg-Id") in self._doomed:
            raise ConnectionError("publish failed")
        return await self._js.publish(subject, data, headers=headers, **kwargs)


async def test_one_failing_publish_does_not_hold_back_the_other_documents(mongo, js, topic):
    coll = mongo[f"agg_{new_id('c').lower()}"]
    merchant = new_merchant_id()
    events = {f"agg_{i}": event(f"{topic}.created", merchant, f"agg_{i}") for i in range(5)}
    for aggregate_id, e in events.items():
        coll.insert_one({"_id": aggregate_id, "merchant_id": merchant, **outbox.for_insert(e)})

    relay = OutboxRelay("catalog", _FailingFor(js, [events["agg_2"].event_id]), [coll])
    assert await relay.pass_once() == 4
    pending = sorted(d["_id"] for d in coll.find({outbox.PENDING: 1}))
    assert pending == ["agg_2"]
    assert len(await stored(js, STREAM, f"{topic}.>")) == 4

    # The failed one goes out on a later pass.
    assert await OutboxRelay("catalog", js, [coll]).pass_once() == 1
    assert list(coll.find({outbox.PENDING: 1})) == []
    assert len(await stored(js, STREAM, f"{topic}.>")) == 5


async def test_three_replicas_relays_publish_each_event_once(mongo, js, topic):
    """Each replica publishes what it committed; the sweep, in the lease holder alone,
    takes only what a replica left behind (it died between commit and publish)."""
    coll = mongo[f"agg_{new_id('c').lower()}"]
    leases = MongoLeases(mongo[f"leases_{new_id('c').lower()}"])
    merchant = new_merchant_id()
    counted = [CountingPublisher(js) for _ in range(3)]
    # A long grace first: whatever the machine's load, only the committing replica publishes.
    relays = [OutboxRelay("catalog", c, [coll], interval_s=0.05, grace_s=600,
                          sweep_lease=Lease(leases, "relay-sweep", f"replica-{i}", ttl=60))
              for i, c in enumerate(counted)]
    tasks = [asyncio.create_task(r.run()) for r in relays]

    def commit(i: int) -> None:
        e = event(f"{topic}.created", merchant, f"agg_{i}")
        coll.insert_one({"_id": f"agg_{i}", "merchant_id": merchant, **outbox.for_insert(e)})

    try:
        await eventually(lambda: all(r._loop for r in relays), message="relays running")
        for i in range(180):
            await asyncio.to_thread(commit, i)
            if i < 150:  # the last thirty were left by a replica that died after its commit
                relays[i % 3].kick(coll, f"agg_{i}")
        await eventually(lambda: sum(c.published for c in counted) == 150, timeout=30,
                         message="each replica published its commits")
        assert [c.published for c in counted] == [50, 50, 50]
        for r in relays:
            r.grace_s = 0.0
        await eventually(lambda: coll.count_documents({outbox.PENDING: 1}) == 0, timeout=30,
                         message="the sweep took what was left")
    finally:
        for r in relays:
            r.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(c.published for c in counted) == 180
    assert sorted(c.published for c in counted) == [50, 50, 80]  # one replica swept the thirty
    assert len(await stored(js, STREAM, f"{topic}.>")) == 180


async def test_replicas_writing_one_document_publish_only_their_own_events(mongo, js, topic):
    """Two replicas add events to one document before either has published: each
    publishes what it committed, once, and the document ends cleared."""
    coll = mongo[f"agg_{new_id('c').lower()}"]
    merchant = new_merchant_id()
    first, second = event(f"{topic}.created", merchant, "agg_1"), event(f"{topic}.changed", merchant, "agg_1", 2)
    coll.insert_one({"_id": "agg_1", "merchant_id": merchant, "version": 1, **outbox.for_insert(first)})
    coll.update_one({"_id": "agg_1"}, outbox.add_to_update({"$set": {"version": 2}}, second))
    counted = [CountingPublisher(js), CountingPublisher(js)]
    relays = [OutboxRelay("catalog", c, [coll], grace_s=0) for c in counted]
    for relay, e in zip(relays, (first, second)):
        relay._note(coll, "agg_1", {e.event_id})
        assert await relay.publish_due() == 1
    assert [c.published for c in counted] == [1, 1]
    doc = coll.find_one({"_id": "agg_1"})
    assert doc[outbox.OUTBOX] == {}
    # The second saw only its own event left and cleared the mark; the sweep has nothing to do.
    assert doc[outbox.PENDING] == 0
    assert await relays[0].pass_once() == 0
    assert len(await stored(js, STREAM, f"{topic}.>")) == 2
