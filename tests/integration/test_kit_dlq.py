"""The dead-letter CLI against a real nats-server: list, show, replay and purge what
consumers dead-lettered."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from google.protobuf import wrappers_pb2
from nats.js.errors import NotFoundError

from siyu_kit.devstack import ROOT
from siyu_kit.events import dlq, outbox
from siyu_kit.events.consumer import Consumer, Poison, Subscription
from siyu_kit.events.streams import stream_name
from siyu_kit.ids import new_id
from tests.support import new_merchant_id, eventually







class Refusing:
    """A consumer whose handler refuses every event until it is fixed, then records it."""

    def __init__(self, js, subject: str):
        self.durable = f"kit_dlq_{new_id('d')}"
        self.fixed = False
        self.handled: list[tuple[str, int]] = []
        self.consumer = Consumer("kittest", js, Subscription(self.durable, subject, wrappers_pb2.StringValue,
                                                             self.handle), max_deliver=3)
        self.task = asyncio.create_task(self.consumer.run())

    async def handle(self, envelope, payload):
        if not self.fixed:
            raise Poison(f"refused {payload.value}")
        self.handled.append((envelope.event_id, envelope.aggregate_version))

    async def stop(self):
        self.consumer.stop()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def _dead_letter_events(js, n: int):
    """Publish `n` events that a refusing consumer dead-letters; return both."""
    subject = f"siyu.order.kit{new_id('t').lower().replace('_', '')}.paid"
    merchant = new_merchant_id()
    events = [outbox.make_event(subject, merchant_id=merchant, aggregate_id=f"ord_{i}", aggregate_version=i + 1,
                                payload=wrappers_pb2.StringValue(value=f"v{i}")) for i in range(n)]
    for e in events:
        await js.publish(e.subject, e.data, headers={"Nats-Msg-Id": e.event_id})
    consumer = Refusing(js, subject)

    async def ours():
        found = [d for d in await dlq.list_dead_letters(js) if d.durable == consumer.durable]
        return found if len(found) == n else None
    letters = await eventually(ours, message="dead letters")
    return consumer, events, letters, merchant


async def test_list_and_show_decode_each_dead_letter(js):
    consumer, events, letters, merchant = await _dead_letter_events(js, 2)
    await consumer.stop()
    assert [d.event_id for d in letters] == [e.event_id for e in events]
    for d, e in zip(letters, events):
        assert d.original_subject == e.subject
        assert d.durable == consumer.durable
        assert d.service == "kittest"
        assert d.event_type == e.subject
        assert d.merchant_id == merchant
        assert d.payload_type == "google.protobuf.StringValue"
        assert d.error.startswith("refused v")
        assert d.data == e.data
        assert d.stored_at is not None
        shown = await dlq.get_dead_letter(js, d.seq)
        assert shown == d
        text = dlq.format_show(shown)
        assert e.event_id in text and consumer.durable in text and e.subject in text
    listing = dlq.format_list(letters)
    assert all(str(d.seq) in listing and d.event_id in listing for d in letters)
    assert len(await dlq.list_dead_letters(js, limit=1)) == 1


async def test_replay_republishes_to_the_original_subject_and_removes_the_dead_letter(js):
    consumer, events, letters, _ = await _dead_letter_events(js, 1)
    try:
        letter = letters[0]
        consumer.fixed = True
        replayed = await dlq.replay(js, letter.seq)
        assert replayed.event_id == events[0].event_id
        # The same consumer receives the original event again, by its event id.
        await eventually(lambda: consumer.handled, message="replayed event handled")
        assert consumer.handled == [(events[0].event_id, 1)]
    finally:
        await consumer.stop()
    with pytest.raises(dlq.DeadLetterError):
        await dlq.get_dead_letter(js, letter.seq)
    with pytest.raises(dlq.DeadLetterError):
        await dlq.replay(js, letter.seq)  # already gone: nothing is published twice
    copies = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(stream_name("order"), seq, subject=events[0].subject, next=True)
        except NotFoundError:
            break
        copies.append(msg)
        seq = msg.seq + 1
    assert [m.headers["Nats-Msg-Id"] for m in copies] == [events[0].event_id, f"{events[0].event_id}:replay:{letter.seq}"]
    assert copies[1].data == events[0].data


async def test_purge_removes_one_dead_letter_without_publishing_it(js):
    consumer, events, letters, _ = await _dead_letter_events(js, 2)
    await consumer.stop()
    before = (await js.stream_info(stream_name("order"))).state.last_seq
    purged = await dlq.purge(js, letters[0].seq)
    assert purged.event_id == events[0].event_id
    remaining = [d.seq for d in await dlq.list_dead_letters(js) if d.durable == consumer.durable]
    assert remaining == [letters[1].seq]
    assert (await js.stream_info(stream_name("order"))).state.last_seq == before
    with pytest.raises(dlq.DeadLetterError):
        await dlq.purge(js, letters[0].seq)


async def test_an_unreadable_dead_letter_is_listed_but_not_replayed(js):
    subject = f"siyu.dlq.kittest.kit_raw_{new_id('d')}"
    ack = await js.publish(subject, b"\xff\xfe junk", headers={
        "Siyu-Original-Subject": "siyu.order.order.paid", "Siyu-Error": "unreadable: corrupt", "Siyu-Durable": "x"})
    letter = await dlq.get_dead_letter(js, ack.seq)
    assert not letter.readable and letter.event_id == ""
    assert "(unreadable" in dlq.format_show(letter)
    with pytest.raises(dlq.DeadLetterError):
        await dlq.replay(js, ack.seq)
    assert (await dlq.get_dead_letter(js, ack.seq)).data == b"\xff\xfe junk"  # still there
    await dlq.purge(js, ack.seq)


async def test_the_cli_lists_shows_and_reports_a_missing_seq(js, infra):
    consumer, events, letters, _ = await _dead_letter_events(js, 1)
    await consumer.stop()
    env = {**os.environ, "SIYU_NATS_URL": infra.nats_url}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "siyu_kit.events.dlq", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)

    listing = await asyncio.to_thread(run, "list")
    assert listing.returncode == 0, listing.stderr
    line = next(row for row in listing.stdout.splitlines() if events[0].event_id in row)
    assert line.split()[0] == str(letters[0].seq)
    assert events[0].subject in line and consumer.durable in line

    missing = await asyncio.to_thread(run, "--nats", infra.nats_url, "show", "999999999")
    assert missing.returncode == 1
    assert "no dead letter with seq 999999999" in missing.stderr

    purged = await asyncio.to_thread(run, "purge", str(letters[0].seq))
    assert purged.returncode == 0, purged.stderr
    with pytest.raises(dlq.DeadLetterError):
        await dlq.get_dead_letter(js, letters[0].seq)

