"""The live-room hub of a gateway process, over an in-memory room source: one
subscription per room fanned out to every viewer, the ring and the stored replay on
resume, a slow viewer dropped without holding anyone up, no duplicate after a resume."""
from __future__ import annotations

import asyncio

import pytest

from gateway.live_hub import DROPPED, LiveHub, report_presence
from tests.fakes.live_room import FakeSource


async def drain(viewer, n: int) -> list[int]:
    return [(await asyncio.wait_for(viewer.next(), 1)).seq for _ in range(n)]


async def test_one_subscription_per_session_feeds_every_viewer():
    source = FakeSource()
    hub = LiveHub(source)
    viewers = [await hub.join("liv_a", f"mem_{i}") for i in range(5)]
    other = await hub.join("liv_b", "mem_x")
    assert source.subscriptions == {"liv_a": 1, "liv_b": 1}
    sent = [source.publish("liv_a").seq for _ in range(3)]
    source.publish("liv_b")
    for viewer in viewers:
        assert await drain(viewer, 3) == sent
    assert other.queue.qsize() == 1


async def test_the_room_unsubscribes_after_its_last_viewer_left_and_the_linger():
    source = FakeSource()
    hub = LiveHub(source, linger_s=0.01)
    first, second = await hub.join("liv_a"), await hub.join("liv_a")
    hub.leave(first)
    hub.leave(second)
    assert "liv_a" in hub.rooms  # lingers: a reload comes straight back
    for _ in range(100):
        if "liv_a" not in hub.rooms:
            break
        await asyncio.sleep(0.01)
    assert "liv_a" not in hub.rooms and source.subscriptions["liv_a"] == 0


async def test_a_viewer_back_within_the_linger_keeps_the_subscription():
    source = FakeSource()
    hub = LiveHub(source, linger_s=0.05)
    hub.leave(await hub.join("liv_a"))
    again = await hub.join("liv_a")
    await asyncio.sleep(0.1)
    assert source.subscriptions["liv_a"] == 1 and hub.rooms["liv_a"].viewers == {again}


async def test_a_slow_viewer_is_dropped_and_the_others_get_everything():
    source = FakeSource()
    hub = LiveHub(source, queue_size=4)
    slow, fast = await hub.join("liv_a"), await hub.join("liv_a")
    dropped_before = DROPPED._value.get()
    got = []
    for _ in range(10):
        source.publish("liv_a")
        got.append((await fast.next()).seq)  # the fast one keeps up; the slow one reads nothing
    assert got == list(range(1, 11))
    assert slow.dropped and await slow.next() is None
    assert DROPPED._value.get() == dropped_before + 1
    # the hub went on delivering to the fast viewer while the slow one was full
    source.publish("liv_a")
    assert (await fast.next()).seq == 11


async def test_resume_from_the_ring_sends_what_was_missed_once():
    source = FakeSource()
    hub = LiveHub(source)
    watcher = await hub.join("liv_a")  # keeps the room
    for _ in range(5):
        source.publish("liv_a")
    resumed = await hub.join("liv_a", last_event_id=2)
    source.publish("liv_a")
    assert await drain(resumed, 4) == [3, 4, 5, 6]
    assert source.replays == 0
    assert resumed.queue.empty() and not resumed.backlog
    assert await drain(watcher, 6) == [1, 2, 3, 4, 5, 6]


async def test_resume_from_before_the_ring_reads_the_stream_then_the_ring_without_duplicates():
    source = FakeSource()
    for _ in range(3):
        source.publish("liv_a")  # before this process followed the room
    hub = LiveHub(source, ring_size=2)
    watcher = await hub.join("liv_a")
    for _ in range(4):
        source.publish("liv_a")  # 4..7; the ring keeps 6 and 7
    resumed = await hub.join("liv_a", last_event_id=1)
    source.publish("liv_a")  # 8, live, also in the queue
    assert await drain(resumed, 7) == [2, 3, 4, 5, 6, 7, 8]
    assert source.replays == 1
    assert resumed.queue.empty() and not resumed.backlog
    assert watcher.sent_seq == 3


async def test_an_event_both_replayed_and_queued_is_sent_once():
    source = FakeSource()
    hub = LiveHub(source, ring_size=1)
    await hub.join("liv_a")
    for _ in range(3):
        source.publish("liv_a")
    viewer = await hub.join("liv_a", last_event_id=0)
    # Arrives live while the replay is held: in the backlog (from the stream) and the queue.
    viewer.backlog.append(source.publish("liv_a"))
    assert await drain(viewer, 4) == [1, 2, 3, 4]
    source.publish("liv_a")
    assert (await viewer.next()).seq == 5


async def test_a_resume_is_bounded_by_the_replay_limit():
    source = FakeSource()
    for _ in range(10):
        source.publish("liv_a")
    hub = LiveHub(source, replay_max=3)
    viewer = await hub.join("liv_a", last_event_id=0)
    assert [e.seq for e in viewer.backlog] == [1, 2, 3]


async def test_presence_reports_counts_and_joined_members_once_then_zero_after_close():
    source = FakeSource()
    hub = LiveHub(source, linger_s=0.01)
    a, b = await hub.join("liv_a", "mem_1"), await hub.join("liv_a", "mem_1")
    hub.admit(a, "mch_1")
    hub.admit(b, "mch_1")
    unchecked = await hub.join("liv_a", "mem_2")  # not admitted: its merchant was not checked yet
    assert hub.presence() == [("liv_a", "mch_1", 3, ["mem_1"])]
    hub.leave(unchecked)
    assert hub.presence() == [("liv_a", "mch_1", 2, [])]
    hub.leave(a)
    hub.leave(b)
    for _ in range(100):
        if "liv_a" not in hub.rooms:
            break
        await asyncio.sleep(0.01)
    assert hub.presence() == [("liv_a", "mch_1", 0, [])]
    assert hub.presence() == []


async def test_a_failed_report_keeps_its_members_for_the_next():
    source = FakeSource()
    hub = LiveHub(source)
    hub.admit(await hub.join("liv_a", "mem_1"), "mch_1")
    calls, stop = [], asyncio.Event()

    async def report(session_id, merchant_id, count, joined):
        calls.append(joined)
        if len(calls) == 1:
            raise RuntimeError("content away")
        stop.set()

    await asyncio.wait_for(report_presence(hub, report, 0.01, stop), 2)
    assert calls == [["mem_1"], ["mem_1"]]


async def test_a_source_that_fails_leaves_no_room_behind():
    source = FakeSource()

    async def broken(*args):
        raise ConnectionError("nats away")
    source.subscribe = broken
    hub = LiveHub(source)
    with pytest.raises(ConnectionError):
        await hub.join("liv_a")
    assert hub.rooms == {}


async def test_a_burst_goes_out_in_one_write_and_a_dropped_viewer_ends_after_it():
    source = FakeSource()
    hub = LiveHub(source, queue_size=3)
    viewer = await hub.join("liv_a")
    for _ in range(3):
        source.publish("liv_a")
    batch = await asyncio.wait_for(viewer.batch(), 1)
    assert [e.seq for e in batch] == [1, 2, 3]
    assert batch[0].wire == b'id: 1\r\nevent: stock_left\r\ndata: {"n":1}\r\n\r\n'
    for _ in range(4):
        source.publish("liv_a")  # the fourth does not fit: dropped
    assert viewer.dropped and await asyncio.wait_for(viewer.batch(), 1) is None
