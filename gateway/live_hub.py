"""The live-room hub of one gateway process: one subscription per session, fanned out to
every viewer of that session connected here.

A room (one per session with viewers here) holds the subscription, a bounded ring of its
recent events and its viewers. Each viewer has a bounded queue: the hub never waits for
a viewer, and a viewer whose queue is full is dropped (its stream ends; the client
reconnects with Last-Event-ID and catches up). A viewer is registered before anything is
replayed to it, and skips every id it has already been sent, so a resume has no gap and
no duplicate. When the last viewer leaves, the room lingers a moment (a reload comes
straight back) and then unsubscribes.

Everything here runs on the gateway's event loop; the NATS side is behind `RoomSource`
(gateway/live_source.py), so the hub is tested with an in-memory source.
"""
from __future__ import annotations

import asyncio
import collections
import functools
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol

from prometheus_client import Counter, Gauge

VIEWERS = Gauge("siyu_live_viewers", "live-room viewers connected to this gateway process")
ROOMS = Gauge("siyu_live_rooms", "live sessions this gateway process follows (one subscription each)")
DELIVERED = Counter("siyu_live_events_delivered_total", "live-room events written to viewers")
DROPPED = Counter("siyu_live_viewers_dropped_total", "viewers disconnected because they fell behind")

# A resume from further back than the ring reaches reads at most this many events.
REPLAY_MAX = 1000


@dataclass(frozen=True, eq=False)
class RoomEvent:
    seq: int  # the stream sequence: the SSE id
    kind: str  # the oneof kind: state_changed, product_pinned …
    data: str  # the event as JSON (one line)
    at: float = 0.0  # when it happened (epoch seconds), for delivery latency

    @functools.cached_property
    def wire(self) -> bytes:
        """The event as written to every viewer, encoded once for all of them."""
        return f"id: {self.seq}\r\nevent: {self.kind}\r\ndata: {self.data}\r\n\r\n".encode()


OnEvent = Callable[[RoomEvent], None]


class Subscription(Protocol):
    async def stop(self) -> None: ...


class RoomSource(Protocol):
    """Where a room's events come from (JetStream in production)."""

    async def last_seq(self) -> int:
        """The stream's last sequence now: a room started here misses nothing after it."""
        ...

    async def subscribe(self, live_session_id: str, after_seq: int, on_event: OnEvent) -> Subscription:
        """Delivers the session's events after `after_seq`, in order, to `on_event`."""
        ...

    async def replay(self, live_session_id: str, after_seq: int, limit: int) -> list[RoomEvent]:
        """The session's stored events after `after_seq`, oldest first, at most `limit`."""
        ...


class Viewer:
    """One connected client of a room."""

    def __init__(self, room: "Room", member_id: str, queue_size: int):
        self.room = room
        self.member_id = member_id
        self.queue: asyncio.Queue[RoomEvent | None] = asyncio.Queue(maxsize=queue_size)
        self.backlog: collections.deque[RoomEvent] = collections.deque()
        self.sent_seq = 0  # the highest id written to this viewer
        self.dropped = False
        self.closed = False

    def offer(self, event: RoomEvent) -> None:
        """From the hub: never waits. A full queue drops the viewer."""
        if self.closed or self.dropped:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.drop()

    def drop(self) -> None:
        self.dropped = True
        DROPPED.inc()
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)  # wakes the stream, which then ends

    async def next(self) -> RoomEvent | None:
        """The next event not yet sent, or None once this viewer was dropped."""
        while True:
            if self.dropped:
                return None
            if self.backlog:
                event = self.backlog.popleft()
            else:
                event = await self.queue.get()
                if event is None or self.dropped:
                    return None
            if event.seq <= self.sent_seq:
                continue  # replayed already
            self.sent_seq = event.seq
            DELIVERED.inc()
            return event

    async def batch(self, limit: int = 64) -> list[RoomEvent] | None:
        """The next event and those already waiting behind it (up to `limit`), written in
        one go: a burst costs a viewer one write, not one per event. None once dropped."""
        first = await self.next()
        if first is None:
            return None
        events = [first]
        while len(events) < limit and (self.backlog or not self.queue.empty()):
            event = self.backlog.popleft() if self.backlog else self.queue.get_nowait()
            if event is None or self.dropped:
                break  # the stream ends after this write
            if event.seq > self.sent_seq:
                self.sent_seq = event.seq
                DELIVERED.inc()
                events.append(event)
        return events


@dataclass
class Room:
    live_session_id: str
    ring_size: int
    # The ring holds every event of the session after `floor` (up to its size).
    floor: int = 0
    last_seq: int = 0
    merchant_id: str = ""  # set once a viewer's merchant was found to own the session
    viewers: set[Viewer] = field(default_factory=set)
    ring: collections.deque = field(default_factory=collections.deque)
    joined: set[str] = field(default_factory=set)  # members who joined since the last report
    subscription: Subscription | None = None
    ready: asyncio.Future | None = None
    linger: asyncio.TimerHandle | None = None

    def receive(self, event: RoomEvent) -> None:
        if event.seq <= self.last_seq:
            return  # a redelivery the ordered consumer already gave
        self.last_seq = event.seq
        if len(self.ring) >= self.ring_size:
            self.floor = self.ring.popleft().seq
        self.ring.append(event)
        for viewer in list(self.viewers):
            viewer.offer(event)

    def after(self, seq: int) -> list[RoomEvent] | None:
        """Ring events after `seq`, or None when the ring does not reach back that far."""
        if seq < self.floor:
            return None
        return [e for e in self.ring if e.seq > seq]


class LiveHub:
    def __init__(self, source: RoomSource, *, queue_size: int = 256, ring_size: int = 512,
                 linger_s: float = 10.0, replay_max: int = REPLAY_MAX):
        self.source = source
        self.queue_size = queue_size
        self.ring_size = ring_size
        self.linger_s = linger_s
        self.replay_max = replay_max
        self.rooms: dict[str, Room] = {}
        # Sessions whose last viewer here left since the last report: they report 0 once.
        self.closed: dict[str, str] = {}

    async def join(self, live_session_id: str, member_id: str = "", last_event_id: int | None = None) -> Viewer:
        """Registers a viewer (subscribing the room if it is the first), then queues what it
        missed after `last_event_id`. Raises whatever the source raises (NATS away)."""
        room = await self._room(live_session_id)
        viewer = Viewer(room, member_id, self.queue_size)
        # Everything from here on reaches the viewer through its queue.
        room.viewers.add(viewer)
        VIEWERS.inc()
        if last_event_id is None:
            viewer.sent_seq = room.last_seq
            return viewer
        viewer.sent_seq = last_event_id
        try:
            missed = room.after(last_event_id)
            if missed is None:
                stored = await self.source.replay(live_session_id, last_event_id, self.replay_max)
                upto = stored[-1].seq if stored else last_event_id
                missed = stored + [e for e in room.after(upto) or list(room.ring) if e.seq > upto]
            viewer.backlog.extend(missed)
        except BaseException:
            self.leave(viewer)
            raise
        return viewer

    def admit(self, viewer: Viewer, merchant_id: str) -> None:
        """The viewer's merchant owns the session: it counts as a viewer from now on."""
        room = viewer.room
        room.merchant_id = room.merchant_id or merchant_id
        if viewer.member_id:
            room.joined.add(viewer.member_id)

    def leave(self, viewer: Viewer) -> None:
        if viewer.closed:
            return
        viewer.closed = True
        room = viewer.room
        room.viewers.discard(viewer)
        VIEWERS.dec()
        if not room.viewers and self.rooms.get(room.live_session_id) is room and room.linger is None:
            loop = asyncio.get_running_loop()
            room.linger = loop.call_later(self.linger_s, lambda: loop.create_task(self._close_if_empty(room)))

    async def _room(self, live_session_id: str) -> Room:
        room = self.rooms.get(live_session_id)
        if room is not None:
            if room.linger is not None:
                room.linger.cancel()
                room.linger = None
            if room.ready is not None and not room.ready.done():
                await asyncio.shield(room.ready)  # another viewer is subscribing it
            if self.rooms.get(live_session_id) is room:
                return room
            return await self._room(live_session_id)
        room = Room(live_session_id, self.ring_size)
        room.ready = asyncio.get_running_loop().create_future()
        self.rooms[live_session_id] = room
        try:
            start = await self.source.last_seq()
            room.floor = room.last_seq = start
            room.subscription = await self.source.subscribe(live_session_id, start, room.receive)
        except BaseException as error:
            self.rooms.pop(live_session_id, None)
            room.ready.set_exception(error)
            room.ready.exception()  # retrieved: nobody else may be waiting
            raise
        room.ready.set_result(None)
        ROOMS.inc()
        return room

    async def _close_if_empty(self, room: Room) -> None:
        room.linger = None
        if room.viewers or self.rooms.get(room.live_session_id) is not room:
            return
        del self.rooms[room.live_session_id]
        ROOMS.dec()
        if room.merchant_id:
            self.closed[room.live_session_id] = room.merchant_id
        if room.subscription is not None:
            await room.subscription.stop()

    def presence(self) -> list[tuple[str, str, int, list[str]]]:
        """Per session followed here (and those closed since the last call, with 0):
        (session, merchant, viewers connected now, members who joined since the last call)."""
        out = []
        for session_id, room in self.rooms.items():
            if not room.merchant_id:
                continue
            joined, room.joined = sorted(room.joined), set()
            out.append((session_id, room.merchant_id, len(room.viewers), joined))
        for session_id, merchant_id in self.closed.items():
            if session_id not in self.rooms:
                out.append((session_id, merchant_id, 0, []))
        self.closed.clear()
        return out

    def rejoin(self, live_session_id: str, member_ids: list[str]) -> None:
        """Members of a report that failed go into the next one."""
        room = self.rooms.get(live_session_id)
        if room is not None:
            room.joined.update(member_ids)

    async def close(self) -> None:
        for room in list(self.rooms.values()):
            for viewer in list(room.viewers):
                viewer.drop()
            if room.subscription is not None:
                await room.subscription.stop()
        self.rooms.clear()


Report = Callable[[str, str, int, list[str]], Awaitable[None]]


async def report_presence(hub: LiveHub, report: Report, every_s: float, stop: asyncio.Event,
                          on_error: Callable[[Exception], None] = lambda e: None) -> None:
    """Every `every_s`, each session's viewers here to the content service (`report`)."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=every_s)
            return
        except asyncio.TimeoutError:
            pass
        for session_id, merchant_id, count, joined in hub.presence():
            try:
                await report(session_id, merchant_id, count, joined)
            except Exception as error:  # noqa: BLE001 - the next report tries again
                hub.rejoin(session_id, joined)
                on_error(error)
