"""Live-room events from JetStream: the room stream's messages on
`siyu.live.room.<live_session_id>`, decoded once per gateway process into what viewers are
sent. The stream sequence is each event's id."""
from __future__ import annotations

import asyncio
import json

import nats
from google.protobuf import json_format
from nats.js import api
from siyu.common.v1 import live_pb2

from siyu_kit import logging as slog
from siyu_kit.events.outbox import decode
from siyu_kit.events.streams import LIVE_STREAM_TOPIC, stream_name
from siyu_kit.events.subjects import subject_of

from gateway.live_hub import OnEvent, RoomEvent

log = slog.get("siyu.gateway.live")
STREAM = stream_name(LIVE_STREAM_TOPIC)
ROOM_SUBJECT = subject_of(live_pb2.LiveRoomEvent)
FETCH_TIMEOUT_S = 2.0


def room_subject(live_session_id: str) -> str:
    return f"{ROOM_SUBJECT}.{live_session_id}"


def room_event(seq: int, data: bytes) -> RoomEvent | None:
    """A stored message as viewers get it; None for one that is not a room event."""
    try:
        envelope = decode(data)
        event = live_pb2.LiveRoomEvent()
        if not envelope.payload.Unpack(event):
            return None
    except Exception:  # noqa: BLE001 - a malformed message is skipped, never fatal
        log.warning("live.undecodable", seq=seq)
        return None
    kind = event.WhichOneof("kind")
    if not kind:
        return None
    body = json_format.MessageToDict(event, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
    at = event.at.seconds + event.at.nanos / 1e9 if event.HasField("at") else 0.0
    return RoomEvent(seq, kind, json.dumps(body, ensure_ascii=False, separators=(",", ":")), at)


class _Subscription:
    def __init__(self, sub):
        self.sub = sub

    async def stop(self) -> None:
        try:
            await self.sub.unsubscribe()
        except Exception:  # noqa: BLE001 - gone already (connection closed)
            pass


class JetStreamRooms:
    """A RoomSource over one NATS connection, made on first use. While NATS cannot be
    reached, `connected()` says so and callers answer 503; the rest of the gateway is
    untouched."""

    def __init__(self, url: str, connect_timeout_s: float = 2.0, retry_after_s: float = 2.0):
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self.retry_after_s = retry_after_s
        self.nc = None
        self.js = None
        self._lock = asyncio.Lock()
        self._failed_at = 0.0

    async def connected(self) -> bool:
        if self.nc is not None:
            return self.nc.is_connected
        loop = asyncio.get_running_loop()
        async with self._lock:
            if self.nc is not None:
                return self.nc.is_connected
            if self._failed_at and loop.time() - self._failed_at < self.retry_after_s:
                return False
            try:
                # Reconnects for ever once connected; the first connection is given one try.
                # The URL may list every node of a cluster, comma-separated.
                servers = [u.strip() for u in self.url.split(",") if u.strip()]
                self.nc = await asyncio.wait_for(nats.connect(
                    servers, connect_timeout=self.connect_timeout_s, max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5, allow_reconnect=True), timeout=self.connect_timeout_s * 2)
                self.js = self.nc.jetstream()
            except Exception as error:  # noqa: BLE001 - unreachable: answer 503 for now
                self._failed_at = loop.time()
                log.warning("live.nats_unreachable", error=repr(error))
                return False
        return True

    async def last_seq(self) -> int:
        info = await self.js.stream_info(STREAM)
        return int(info.state.last_seq)

    async def subscribe(self, live_session_id: str, after_seq: int, on_event: OnEvent):
        async def deliver(msg) -> None:
            event = room_event(msg.metadata.sequence.stream, msg.data)
            if event is not None:
                on_event(event)

        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1)
        sub = await self.js.subscribe(room_subject(live_session_id), stream=STREAM, cb=deliver,
                                      ordered_consumer=True, config=config)
        return _Subscription(sub)

    async def replay(self, live_session_id: str, after_seq: int, limit: int) -> list[RoomEvent]:
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1,
                                    ack_policy=api.AckPolicy.NONE, inactive_threshold=30.0)
        psub = await self.js.pull_subscribe(room_subject(live_session_id), stream=STREAM, config=config)
        events: list[RoomEvent] = []
        name = ""
        try:
            info = await psub.consumer_info()
            name, pending = info.name, info.num_pending
            seen = 0
            while pending and seen < limit:
                batch = await psub.fetch(min(pending, limit - seen, 256), timeout=FETCH_TIMEOUT_S)
                for msg in batch:
                    seen += 1
                    pending = msg.metadata.num_pending
                    event = room_event(msg.metadata.sequence.stream, msg.data)
                    if event is not None:
                        events.append(event)
        finally:
            await _Subscription(psub).stop()
            if name:
                try:
                    await self.js.delete_consumer(STREAM, name)
                except Exception:  # noqa: BLE001 - it expires on its own (inactive_threshold)
                    pass
        return events

    async def close(self) -> None:
        if self.nc is not None:
            try:
                await self.nc.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
