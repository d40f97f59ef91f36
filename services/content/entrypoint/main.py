"""Wires the content service for siyu_kit.service.run."""
from __future__ import annotations

from siyu.content.v1 import content_pb2, content_pb2_grpc

from siyu_kit import service

from siyu_kit import erasure

from services.content.adapters.catalog import CatalogClient
from services.content.adapters.documents import ensure_indexes
from services.content.adapters.repositories import ContentRepository, PersonaRepository
from services.content.application.contents import ContentUseCases
from services.content.application.member_data import EngagementData
from services.content.application.personas import PersonaUseCases
from services.content.application.staff_lists import StaffLists
from services.content.entrypoint import engagement_wiring, funnel_wiring, live_room_wiring
from services.content.entrypoint import guide_performance_wiring
from services.content.entrypoint.feed_wiring import FeedParts
from services.content.entrypoint.recommendation_wiring import RecommendationParts
from services.content.entrypoint.live_wiring import LiveParts
from services.content.entrypoint.servicer import ContentServicer

NAME = "content"


def build(runtime: service.Runtime) -> service.Parts:
    # Once at start-up, before the server takes calls: unique codes depend on these.
    ensure_indexes()
    catalog = CatalogClient(runtime.channel("catalog"))
    persona_repo = PersonaRepository()
    personas = PersonaUseCases(persona_repo, products=catalog)
    content_repo = ContentRepository()
    contents = ContentUseCases(content_repo, persona_repo, catalog)
    funnels, cohorts = funnel_wiring.use_cases(personas, contents)
    engagement = engagement_wiring.use_cases(content_repo, persona_repo, funnels, catalog)
    # ---- personas, follows, content and feed ----
    feed = FeedParts(runtime, persona_repo, content_repo)
    # ---- end of personas, follows, content and feed ----
    # ---- live sessions ----
    live = LiveParts(runtime, persona_repo, viewers=live_room_wiring.viewer_stats())
    funnels.session_personas = live.live.persona_of  # a guide reads their own sessions' funnels
    live.live.viewed = funnels.record_view  # a member opening the room is the session's viewer
    # ---- end of live sessions ----
    # A member's data: follows (the feed's part), engagement, live sessions watched, and the purchase facts.
    feed.member_data_parts.extend([EngagementData(engagement), live_room_wiring.member_data_part()])
    feed.member_data.derived.append(cohorts.forget_member)
    # ---- recommendations and the content featuring a product ----
    recs = RecommendationParts(persona_repo, catalog)
    # A member's purchases and switch are copies of the order and member services' data:
    # erased with the member, exported by those services.
    feed.member_data.derived.append(recs.recommendations.forget_member)
    # ---- end of recommendations ----
    full_name = content_pb2.DESCRIPTOR.services_by_name["ContentService"].full_name
    parts = service.Parts(
        servicers=[(content_pb2_grpc.add_ContentServiceServicer_to_server,
                    ContentServicer(personas, contents, funnels, StaffLists(persona_repo, content_repo),
                                    cohorts=cohorts, engagement=engagement,
                                    feed={**feed.servicer_parts(), **recs.servicer_parts()},
                                    live=live.live), full_name)],
        outbox_collections=feed.outbox_collections() + live.outbox_collections(),
        # member.erased: every part of the member's data (feed.member_data_parts), then the acknowledgement.
        subscriptions=funnel_wiring.subscriptions(funnels, cohorts)
        + [erasure.subscription("content-member-erased", feed.member_data.erase)] + recs.subscriptions(),
        jobs=feed.jobs() + live.jobs(),
    )
    # ---- live room: viewer reports, and purchases told in the room ----
    live_room_wiring.add_to(parts, sessions=live_room_wiring.SessionsOf(live.sessions))
    # ---- guide performance: orders and viewers counted for guides and stores, share-code opens told ----
    guides = guide_performance_wiring.use_cases(funnels, persona_repo, content_repo,
                                                guide_performance_wiring.session_persona(live.sessions))
    guide_performance_wiring.add_to(parts, guides)
    # Funnel buckets (guides' too) name viewers and clickers in their marks: erased with the member.
    feed.member_data.derived.append(funnels.forget_member)
    # ---- end of guide performance ----
    return parts


def main() -> None:
    service.run(NAME, build)

