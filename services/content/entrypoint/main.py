"""Wires the content service for siyu_kit.service.run."""
from __future__ import annotations

from siyu.content.v1 import content_pb2, content_pb2_grpc

from siyu_kit import service

from siyu_kit import erasure
from siyu_kit.erasure import ErasureAcknowledgements

from services.content.adapters.catalog import CatalogClient
from services.content.adapters.documents import ensure_indexes
from services.content.adapters.repositories import ContentRepository, PersonaRepository
from services.content.application.contents import ContentUseCases
from services.content.application.personas import PersonaUseCases
from services.content.application.staff_lists import StaffLists
from services.content.entrypoint import engagement_wiring, funnel_wiring
from services.content.entrypoint.servicer import ContentServicer

NAME = "content"


def build(runtime: service.Runtime) -> service.Parts:
    # Once at start-up, before the server takes calls: unique codes depend on these.
    ensure_indexes()
    persona_repo = PersonaRepository()
    personas = PersonaUseCases(persona_repo)
    content_repo = ContentRepository()
    catalog = CatalogClient(runtime.channel("catalog"))
    contents = ContentUseCases(content_repo, persona_repo, catalog)
    funnels, cohorts = funnel_wiring.use_cases(personas, contents)
    engagement = engagement_wiring.use_cases(content_repo, persona_repo, funnels, catalog)
    full_name = content_pb2.DESCRIPTOR.services_by_name["ContentService"].full_name
    return service.Parts(
        servicers=[(content_pb2_grpc.add_ContentServiceServicer_to_server,
                    ContentServicer(personas, contents, funnels, StaffLists(persona_repo, content_repo),
                                    cohorts=cohorts, engagement=engagement), full_name)],
        # The service publishes no events of its own yet, so it has no outbox.
        outbox_collections=[],
        subscriptions=funnel_wiring.subscriptions(funnels, cohorts) + [erasure.subscription(
            "content-member-erased", erasure.acknowledge_only("content", ErasureAcknowledgements(runtime.channel("member"))))],
    )


def main() -> None:
    service.run(NAME, build)

