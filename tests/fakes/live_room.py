"""In-memory live-room stores for unit tests of the use cases (the same rules as
services/content/adapters/live_viewer_store.py: a member once per session, leases per
gateway, the announcement's compare-and-set on when the room last heard)."""
from __future__ import annotations

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
