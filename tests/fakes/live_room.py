"""In-memory live-room stores for unit tests of the use cases (the same rules as
services/content/adapters/live_viewer_store.py: a member once per session, leases per
gateway, the announcement's compare-and-set on when the room last heard), and a room
source for the gateway's hub (gateway/live_source.py's JetStreamRooms in memory)."""
from __future__ import annotations

from gateway.live_hub import RoomEvent
from services.content.application.live_viewer_ports import ViewerFigures
from services.content.domain.live_room import Figures, Lease, Purchase


class FakeViewerReports:
    def __init__(self):
        self.viewers: set[tuple[str, str, str]] = set()
        self.leases_by: dict[tuple[str, str], dict[str, Lease]] = {}
        self.stats: dict[tuple[str, str], dict] = {}
        self.announced: list[tuple[str, Figures, int]] = []  # the viewers_changed events

    async def add_viewers(self, merchant_id, live_session_id, member_ids) -> int:
        new = {(merchant_id, live_session_id, m) for m in member_ids} - self.viewers
        self.viewers |= new
        return len(new)

    async def renew_lease(self, merchant_id, live_session_id, lease: Lease) -> None:
        self.leases_by.setdefault((merchant_id, live_session_id), {})[lease.gateway_id] = lease

    async def leases(self, merchant_id, live_session_id) -> list[Lease]:
        return list(self.leases_by.get((merchant_id, live_session_id), {}).values())

    async def record(self, merchant_id, live_session_id, new_unique, concurrent):
        doc = self.stats.setdefault((merchant_id, live_session_id),
                                    {"now": Figures(), "announced": Figures(), "announced_ms": 0})
        now = doc["now"]
        doc["now"] = Figures(now.unique + new_unique, concurrent, max(now.peak, concurrent))
        return doc["now"], doc["announced"], doc["announced_ms"]

    async def announce(self, merchant_id, live_session_id, figures, announced_ms, now_ms) -> bool:
        doc = self.stats[(merchant_id, live_session_id)]
        if doc["announced_ms"] != announced_ms:
            return False
        doc["announced"], doc["announced_ms"] = figures, now_ms
        self.announced.append((live_session_id, figures, now_ms))
        return True

    async def figures(self, merchant_id, live_session_ids):
        return {s: ViewerFigures(d["now"].unique, d["now"].concurrent, d["now"].peak)
                for (m, s), d in self.stats.items() if m == merchant_id and s in live_session_ids}


class FakeRoomPurchases:
    def __init__(self):
        self.told: dict[tuple[str, str], Purchase] = {}

    async def announce_once(self, purchase: Purchase) -> bool:
        key = (purchase.merchant_id, purchase.order_id)
        if key in self.told:
            return False
        self.told[key] = purchase
        return True


class FakeSessions:
    def __init__(self, *known: tuple[str, str]):
        self.known = set(known)

    async def exists(self, merchant_id, live_session_id) -> bool:
        return (merchant_id, live_session_id) in self.known


class FakeSubscription:
    def __init__(self, source, session_id):
        self.source, self.session_id = source, session_id

    async def stop(self):
        self.source.subscriptions[self.session_id] -= 1


class FakeSource:
    """A stream of room events held in memory: publish() appends with the next sequence
    and delivers to the session's subscribers."""

    def __init__(self):
        self.seq = 0
        self.stored: list[tuple[str, RoomEvent]] = []
        self.listeners: dict[str, list] = {}
        self.subscriptions: dict[str, int] = {}
        self.replays = 0

    def publish(self, session_id: str, kind: str = "stock_left") -> RoomEvent:
        self.seq += 1
        event = RoomEvent(self.seq, kind, f'{{"n":{self.seq}}}')
        self.stored.append((session_id, event))
        for deliver in self.listeners.get(session_id, []):
            deliver(event)
        return event

    async def last_seq(self) -> int:
        return self.seq

    async def subscribe(self, session_id, after_seq, on_event):
        self.subscriptions[session_id] = self.subscriptions.get(session_id, 0) + 1
        self.listeners.setdefault(session_id, []).append(on_event)
        sub = FakeSubscription(self, session_id)
        original = sub.stop

        async def stop():
            self.listeners[session_id].remove(on_event)
            await original()
        sub.stop = stop
        return sub

    async def replay(self, session_id, after_seq, limit):
        self.replays += 1
        return [e for s, e in self.stored if s == session_id and e.seq > after_seq][:limit]
