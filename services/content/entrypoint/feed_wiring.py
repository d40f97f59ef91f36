"""The personas, follows, content pages and feed part of the content service's wiring:
the use cases, the publishing job (every SIYU_CONTENT_PUBLISH_INTERVAL_S, 5 s by default,
safe on every replica: each item is published by a compare-and-set on its version), the
outbox collections, and the member's data (export and erasure on member.erased)."""
from __future__ import annotations

from siyu_kit import service
from siyu_kit.config import env_seconds
from siyu_kit.erasure import ErasureAcknowledgements

from services.content.adapters import feed_store
from services.content.adapters.catalog import CatalogClient
from services.content.adapters.repositories import ContentRepository, PersonaRepository
from services.content.application.feed import ContentPages, Feeds, Follows, PersonaGuides, Publishing
from services.content.application.feed_ports import MemberDataPart
from services.content.application.member_data import FollowsData, MemberData


class FeedParts:
    def __init__(self, runtime: service.Runtime, personas: PersonaRepository, contents: ContentRepository):
        follows, counts, published = feed_store.FollowStore(), feed_store.FollowerCountStore(), feed_store.PublishedStore()
        self.guides = PersonaGuides(personas)
        self.follows = Follows(personas, follows, counts)
        self.pages = ContentPages(personas, contents, published, follows, CatalogClient(runtime.channel("catalog")))
        self.feeds = Feeds(personas, follows, published)
        self.publishing = Publishing(contents, published)
        acks = ErasureAcknowledgements(runtime.channel("member"))
        # Other kinds of member data add their part to this list.
        self.member_data_parts: list[MemberDataPart] = [FollowsData(follows, counts, personas)]
        self.member_data = MemberData(self.member_data_parts, acks.acknowledge)

    def servicer_parts(self) -> dict:
        """What the servicer's FeedRpcs reads."""
        return {"guides": self.guides, "follows": self.follows, "pages": self.pages, "feeds": self.feeds,
                "member_data": self.member_data}

    def jobs(self) -> list[service.Job]:
        return [service.Job("content-scheduled-publishing", env_seconds("CONTENT_PUBLISH_INTERVAL_S", 5),
                            self.publishing.publish_due)]

    @staticmethod
    def outbox_collections() -> list:
        return feed_store.outbox_collections()
