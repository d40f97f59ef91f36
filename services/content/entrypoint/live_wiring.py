"""The live-session part of the content service's wiring: the use cases over the MongoDB
stores and the catalog, the like announcer (every SIYU_LIVE_LIKES_INTERVAL_S, 1 s by
default; safe on every replica: each announcement is a conditional update on the total
announced before), and the session documents' outbox. The merchants' default price grace
after a session ends is SIYU_LIVE_PRICE_GRACE_MINUTES (30 by default)."""
from __future__ import annotations


from siyu_kit import service
from siyu_kit.config import env_count, env_seconds

from services.content.adapters import live_store
from services.content.adapters.catalog import CatalogClient
from services.content.adapters.live_catalog import LiveCatalog
from services.content.application.live_sessions import LikesAnnouncer, LiveSessions
from services.content.application.live_viewer_ports import LiveViewerStats
from services.content.application.ports import PersonaRepository
from services.content.domain.live_sessions import DEFAULT_GRACE_MINUTES


class LiveParts:
    def __init__(self, runtime: service.Runtime, personas: PersonaRepository,
                 viewers: LiveViewerStats):
        live_store.ensure_indexes()
        catalog = runtime.channel("catalog")
        self.likes = live_store.LiveLikeStore()
        self.sessions = live_store.LiveSessionStore()
        self.live = LiveSessions(self.sessions, personas, LiveCatalog(catalog), CatalogClient(catalog),
                                 viewers, self.likes,
                                 grace_minutes=env_count("LIVE_PRICE_GRACE_MINUTES", DEFAULT_GRACE_MINUTES))
        self.announcer = LikesAnnouncer(self.likes)

    def jobs(self) -> list[service.Job]:
        return [service.Job("content-live-likes", env_seconds("LIVE_LIKES_INTERVAL_S", 1), self.announcer.announce_due)]

    @staticmethod
    def outbox_collections() -> list:
        return live_store.outbox_collections()
