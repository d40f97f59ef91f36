"""Supervised consumers against a real nats-server: a consumer whose subscription fails
comes back by itself, a durable created with old settings is brought up to date, a slow
handler keeps its message, and lag and redeliveries are measured."""
from __future__ import annotations

import asyncio

from google.protobuf import wrappers_pb2
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError
from prometheus_client import REGISTRY

from siyu_kit.events import outbox
from siyu_kit.events.consumer import Consumer, Subscription
from siyu_kit.ids import new_id
from tests.support import eventually, new_merchant_id


def _topic() -> tuple[str, str]:
    """A service name of this test alone: its subjects and the stream they would live in."""
    service = f"kitsup{new_id('t').lower().replace('_', '')}"
    return f"siyu.{service}.thing.done", f"SIYU_{service.upper()}"


async def _publish(js, subject: str, text: str) -> outbox.Event:
    e = outbox.make_event(subject, merchant_id=new_merchant_id(), aggregate_id="agg_1", aggregate_version=1,
                          payload=wrappers_pb2.StringValue(value=text))
    await js.publish(e.subject, e.data, headers={"Nats-Msg-Id": e.event_id})
    return e


class Recorder:
    def __init__(self, fail_first: int = 0, work_s: float = 0.0):
        self.seen: list[str] = []
        self.fail_first = fail_first
        self.work_s = work_s

    async def __call__(self, envelope, payload):
        self.seen.append(payload.value)
        if len(self.seen) <= self.fail_first:
            raise ConnectionError("a dependency is away")
        if self.work_s:
            await asyncio.sleep(self.work_s)  # a slow effect, not a wait for a condition


async def _run(consumer: Consumer) -> asyncio.Task:
    return asyncio.create_task(consumer.run())


async def _stop(consumer: Consumer, task: asyncio.Task) -> None:
    consumer.stop()
    task.cancel()  # a slow handler would otherwise finish its event first
    await asyncio.gather(task, return_exceptions=True)


async def _drop_stream(js, stream: str) -> None:
    try:
        await js.delete_stream(stream)
    except NotFoundError:
        pass


async def test_a_consumer_whose_stream_is_missing_waits_for_it_and_recreates_a_lost_durable(js):
    subject, stream = _topic()
    durable = f"kit_sup_{new_id('d')}"
    handled = Recorder()
    consumer = Consumer("kittest", js, Subscription(durable, subject, wrappers_pb2.StringValue, handled))
    task = await _run(consumer)
    try:
        # Subscribing fails (no stream): the consumer is down but keeps trying.
        await eventually(lambda: consumer.down_for() > 1.0, timeout=10, message="reported down")
        assert not task.done()

        await js.add_stream(StreamConfig(name=stream, subjects=[f"{subject.rsplit('.', 2)[0]}.>"]))
        await _publish(js, subject, "first")
        await eventually(lambda: "first" in handled.seen, timeout=15, message="first event handled")
        assert consumer.down_for() == 0.0

        # The durable is lost on the server (deleted, or a cluster lost it): fetching
        # fails, and the consumer subscribes again, creating it anew.
        await js.delete_consumer(stream, durable)
        await _publish(js, subject, "second")
        await eventually(lambda: "second" in handled.seen, timeout=15, message="event after the durable was lost")
        assert (await js.consumer_info(stream, durable)).config.durable_name == durable
        assert not task.done()
    finally:
        await _stop(consumer, task)
        await _drop_stream(js, stream)


async def test_a_durable_made_with_old_settings_is_updated_and_redeliveries_are_counted(js):
    subject, stream = _topic()
    durable = f"kit_cfg_{new_id('d')}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{subject.rsplit('.', 2)[0]}.>"]))
    try:
        old = Consumer("kittest", js, Subscription(durable, subject, wrappers_pb2.StringValue, Recorder()),
                       max_deliver=2, ack_wait_s=30.0)
        task = await _run(old)
        await eventually(lambda: old.down_for() == 0.0, message="old consumer subscribed")
        await _stop(old, task)
        info = await js.consumer_info(stream, durable)
        assert (info.config.max_deliver, info.config.ack_wait) == (3, 30.0)

        # A process started with SIYU_MAX_DELIVER=4 and another ack wait.
        handled = Recorder(fail_first=1)
        new = Consumer("kittest", js, Subscription(durable, subject, wrappers_pb2.StringValue, handled),
                       max_deliver=4, ack_wait_s=12.0)
        task = await _run(new)
        try:
            await eventually(lambda: new.down_for() == 0.0, message="new consumer subscribed")
            info = await js.consumer_info(stream, durable)
            assert (info.config.max_deliver, info.config.ack_wait) == (5, 12.0)

            labels = {"service": "kittest", "consumer": durable}
            await _publish(js, subject, "retried")
            await eventually(lambda: handled.seen == ["retried", "retried"], timeout=10, message="retried once")
            await eventually(lambda: REGISTRY.get_sample_value("siyu_event_redeliveries_total", labels) == 1.0,
                             message="redelivery counted")
        finally:
            await _stop(new, task)
    finally:
        await _drop_stream(js, stream)


async def test_slow_handlers_keep_their_messages_from_other_replicas(js):
    subject, stream = _topic()
    durable = f"kit_slow_{new_id('d')}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{subject.rsplit('.', 2)[0]}.>"]))
    for text in ("a", "b"):
        await _publish(js, subject, text)
    # Two replicas share the durable; each event takes over twice the ack wait. Without
    # in-progress acks the server hands a message being worked on to the other replica.
    handled = Recorder(work_s=3.5)
    replicas = [Consumer("kittest", js, Subscription(durable, subject, wrappers_pb2.StringValue, handled),
                         ack_wait_s=1.5) for _ in range(2)]
    tasks = [await _run(c) for c in replicas]
    try:
        await eventually(lambda: all(c.down_for() == 0.0 for c in replicas), message="replicas subscribed")

        async def all_acked():
            info = await js.consumer_info(stream, durable)
            return info.num_ack_pending == 0 and info.ack_floor.stream_seq == 2
        await eventually(all_acked, timeout=20, message="both slow events acked")
        info = await js.consumer_info(stream, durable)
    finally:
        for consumer, task in zip(replicas, tasks):
            await _stop(consumer, task)
        await _drop_stream(js, stream)
    assert sorted(handled.seen) == ["a", "b"]
    assert info.num_redelivered == 0


async def test_lag_is_measured_from_the_server(js):
    subject, stream = _topic()
    durable = f"kit_lag_{new_id('d')}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{subject.rsplit('.', 2)[0]}.>"]))
    for text in ("a", "b", "c"):
        await _publish(js, subject, text)
    gate = asyncio.Event()

    async def blocked(envelope, payload):
        await gate.wait()
    consumer = Consumer("kittest", js, Subscription(durable, subject, wrappers_pb2.StringValue, blocked))
    labels = {"service": "kittest", "consumer": durable}
    task = await _run(consumer)
    try:
        # Read right after subscribing, before the first fetch: all three wait.
        await eventually(lambda: REGISTRY.get_sample_value("siyu_consumer_pending", labels) == 3.0,
                         message="lag measured")
    finally:
        gate.set()
        await _stop(consumer, task)
        await _drop_stream(js, stream)


async def test_a_cancelled_consumer_leaves_no_fetch_polling_behind_it(js):
    """A caught-up consumer long-polls; when a service cancels it on the way down, the
    poll goes with it rather than living on for its five seconds."""
    subject, stream = _topic()
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{subject.rsplit('.', 2)[0]}.>"]))
    consumer = Consumer("kittest", js, Subscription(f"kit_cancel_{new_id('d')}", subject,
                                                    wrappers_pb2.StringValue, Recorder()))
    before = asyncio.all_tasks()

    def its_tasks() -> list[asyncio.Task]:
        return [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]

    task = await _run(consumer)
    try:
        await eventually(lambda: any("fetch" in repr(t.get_coro()) for t in its_tasks()),
                         message="the consumer long-polls")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await eventually(lambda: not its_tasks(), timeout=3, message="nothing of the consumer left running")
    finally:
        await _stop(consumer, task)
        await _drop_stream(js, stream)
