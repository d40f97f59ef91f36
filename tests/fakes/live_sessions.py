"""In-memory stand-ins for the live-session ports (services.content.application
.live_session_ports) and the viewer figures (live_viewer_ports)."""
from __future__ import annotations

import copy

from services.content.application.live_session_ports import LikesDue
from services.content.application.live_viewer_ports import ViewerFigures
from services.content.domain import live_sessions as rules
from services.content.domain.live_sessions import LiveSession, SkuPrice
from tests.fakes.store import VersionedStore


def _key(s: LiveSession) -> str:
    return f"{s.fields.scheduled_ms:015d}:{s.id}"


class FakeLiveSessions(VersionedStore):
    """Sessions by id; `events` keeps the room events each write stored (as the outbox),
    with the version the write stored."""
    items: dict[str, LiveSession]

    def __init__(self):
        super().__init__()
        self.events: list = []
        # Like counters as the store keeps them beside the session: id → [likes, announced, announced_ms].
        self.likes: dict[str, list[int]] = {}

    def _out(self, item: LiveSession) -> LiveSession:
        copied = copy.deepcopy(item)
        copied.likes = self.likes.get(item.id, [0])[0]
        return copied

    async def get(self, merchant_id: str, session_id: str) -> LiveSession | None:
        item = self.items.get(session_id)
        return self._out(item) if item is not None and item.merchant_id == merchant_id else None

    async def by_key(self, merchant_id: str, idempotency_key: str) -> LiveSession | None:
        return next((self._out(s) for s in self.items.values()
                     if s.merchant_id == merchant_id and s.idempotency_key == idempotency_key), None)

    async def add(self, session: LiveSession) -> bool:
        if await self.by_key(session.merchant_id, session.idempotency_key) is not None:
            return False
        self.events += [(e, session.version) for e in session.pull_events()]
        self.items[session.id] = copy.deepcopy(session)
        return True

    async def save(self, session: LiveSession) -> None:
        events = session.pull_events()
        self._compare_and_set(session)  # raises before anything is stored when it lost
        self.events += [(e, session.version) for e in events]

    def _rows(self, merchant_id: str, match) -> list[LiveSession]:
        return [self._out(s) for s in self.items.values() if s.merchant_id == merchant_id and match(s)]

    async def page(self, merchant_id: str, persona_ids: list[str] | None, state: str, below: str,
                   limit: int) -> list[LiveSession]:
        rows = self._rows(merchant_id, lambda s: (persona_ids is None or s.fields.persona_id in persona_ids)
                          and (not state or s.state == state) and (not below or _key(s) < below))
        return sorted(rows, key=_key, reverse=True)[:limit]

    async def of_persona(self, merchant_id: str, persona_id: str, states: tuple[str, ...],
                         limit: int) -> list[LiveSession]:
        rows = self._rows(merchant_id, lambda s: s.fields.persona_id == persona_id and s.state in states)
        return sorted(rows, key=_key)[:limit]

    async def of_product(self, merchant_id: str, product_id: str, states: tuple[str, ...],
                         limit: int) -> list[LiveSession]:
        rows = self._rows(merchant_id, lambda s: product_id in s.fields.product_ids and s.state in states)
        return sorted(rows, key=_key)[:limit]


class FakeLikes:
    """The like counter beside FakeLiveSessions: keys counted once, one guarded increment;
    announcements a compare-and-set on the total announced. `announced` is what the rooms heard."""

    def __init__(self, sessions: FakeLiveSessions):
        self.sessions = sessions
        self.keys: set[tuple] = set()
        self.announced: list[tuple[str, int]] = []
        # Runs between a read of the due sessions and the announcement (another replica, a like).
        self.meanwhile = None

    async def like(self, merchant_id: str, session_id: str, member_id: str, idempotency_key: str, taps: int,
                   now_ms: int) -> int | None:
        session = self.sessions.items.get(session_id)
        counter = self.sessions.likes.setdefault(session_id, [0, 0, 0])
        key = (merchant_id, session_id, member_id, idempotency_key)
        if key in self.keys:
            return counter[0]
        if session is None or session.merchant_id != merchant_id or session.state != rules.LIVE:
            return None
        self.keys.add(key)
        counter[0] += taps
        return counter[0]

    async def due(self, limit: int) -> list[LikesDue]:
        return [LikesDue(self.sessions.items[i].merchant_id, i, c[0], c[1], c[2])
                for i, c in self.sessions.likes.items() if c[0] != c[1]][:limit]

    async def announce(self, due: LikesDue, now_ms: int) -> bool:
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            await meanwhile()
        counter = self.sessions.likes[due.session_id]
        if (counter[1], counter[2]) != (due.announced, due.announced_ms):
            return False
        counter[1], counter[2] = due.likes, now_ms
        self.announced.append((due.session_id, due.likes))
        return True


class FakeLineUpCatalog:
    """The merchant's SKUs (sku id → SkuPrice) and the flash sales of each session."""

    def __init__(self, *skus: SkuPrice, flash_sales: dict[str, list] | None = None):
        self.skus = {s.sku_id: s for s in skus}
        self.flash = flash_sales or {}
        self.asked = 0

    async def sku_prices(self, sku_ids: list[str]) -> dict[str, SkuPrice]:
        self.asked += 1
        return {s: self.skus[s] for s in sku_ids if s in self.skus}

    async def flash_sales(self, session_id: str) -> list:
        return list(self.flash.get(session_id, []))


class FakeViewerStats:
    """LiveViewerStats: the figures given by session id."""

    def __init__(self, figures: dict[str, ViewerFigures] | None = None):
        self.by_session = figures or {}

    async def figures(self, merchant_id: str, live_session_ids) -> dict[str, ViewerFigures]:
        return {i: self.by_session[i] for i in live_session_ids if i in self.by_session}
