"""The live-room hub over real NATS JetStream: a room's events come from the room
stream on the session's own subject with their stream sequence as id, a resume from
before the gateway's ring is read back from the stream (bounded), and live events after
it arrive with no gap and no duplicate."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from siyu.common.v1 import live_pb2

from siyu_kit.events.outbox import room_event_for
from siyu_kit.ids import new_id
from siyu_kit.protos import timestamp

from gateway.live_hub import LiveHub
from gateway.live_source import JetStreamRooms


async def publish(js, session_id: str, units: int) -> int:
    event = live_pb2.LiveRoomEvent(live_session_id=session_id, at=timestamp(datetime.now(timezone.utc)),
                                   stock_left=live_pb2.LiveStockLeft(flash_sale_id=new_id("fls"),
                                                                     available_units=units))
    made = room_event_for(event, merchant_id=new_id("mch"), aggregate_id=session_id, aggregate_version=0)
    ack = await js.publish(made.subject, made.data, headers={"Nats-Msg-Id": made.event_id})
    return ack.seq


async def next_seqs(viewer, n: int) -> list[int]:
    return [(await asyncio.wait_for(viewer.next(), 5)).seq for _ in range(n)]


async def test_a_room_follows_its_own_subject_and_a_resume_reads_the_stream(js, infra):
    source = JetStreamRooms(infra.nats_url)
    assert await source.connected()
    hub = LiveHub(source, ring_size=2, linger_s=0.1)
    session, other = new_id("liv"), new_id("liv")
    try:
        before = [await publish(js, session, u) for u in (9, 8, 7)]  # before the gateway followed the room
        watcher = await hub.join(session)
        live = [await publish(js, session, u) for u in (6, 5, 4)]
        await publish(js, other, 1)  # another room: not this one's
        assert await next_seqs(watcher, 3) == live
        event = hub.rooms[session].ring[-1]
        assert event.kind == "stock_left" and '"available_units":"4"' in event.data and event.at > 0

        # From before the ring (which holds the last two) and before the room was followed here.
        resumed = await hub.join(session, last_event_id=before[0])
        later = await publish(js, session, 3)
        assert await next_seqs(resumed, 6) == before[1:] + live + [later]
        assert resumed.queue.empty() and not resumed.backlog

        bounded = await source.replay(session, 0, 2)
        assert [e.seq for e in bounded] == before[:2]
        assert await source.replay(session, later, 10) == []
    finally:
        await hub.close()
        await source.close()


async def test_an_unreachable_nats_is_reported_not_raised():
    source = JetStreamRooms("nats://127.0.0.1:1", connect_timeout_s=0.5)
    assert not await source.connected()
    assert not await source.connected()  # within the retry pause: no new attempt
