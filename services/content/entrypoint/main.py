"""Wires the content service for siyu_kit.service.run."""
from __future__ import annotations

from siyu.content.v1 import content_pb2, content_pb2_grpc

from siyu_kit import service

from services.content.adapters.catalog import CatalogClient
from services.content.adapters.documents import ensure_indexes
from services.content.adapters.repositories import ContentRepository, FunnelRepository, PersonaRepository
from services.content.application.contents import ContentUseCases
from services.content.application.funnels import FunnelUseCases
from services.content.application.personas import PersonaUseCases
from services.content.application.staff_lists import StaffLists
from services.content.entrypoint.events import subscriptions
from services.content.entrypoint.servicer import ContentServicer

NAME = "content"


def build(runtime: service.Runtime) -> service.Parts:
    # Once at start-up, before the server takes calls: unique codes depend on these.
    ensure_indexes()
    persona_repo = PersonaRepository()
    personas = PersonaUseCases(persona_repo)
    content_repo = ContentRepository()
    contents = ContentUseCases(content_repo, persona_repo, CatalogClient(runtime.channel("catalog")))
    funnels = FunnelUseCases(FunnelRepository(), personas, contents)
    full_name = content_pb2.DESCRIPTOR.services_by_name["ContentService"].full_name
    return service.Parts(
        servicers=[(content_pb2_grpc.add_ContentServiceServicer_to_server,
                    ContentServicer(personas, contents, funnels, StaffLists(persona_repo, content_repo)), full_name)],
        # The service publishes no events of its own yet, so it has no outbox.
        outbox_collections=[],
        subscriptions=subscriptions(funnels) + personal_data_subscriptions(runtime),
    )


def main() -> None:
    service.run(NAME, build)


# ---- personal data ----
def personal_data_subscriptions(runtime: service.Runtime) -> list:
    """member.erased: nothing kept about the member here; acknowledged to the member service."""
    from siyu.member.v1 import events_pb2 as member_events

    from services.content.adapters.member_erasure import MemberErasureClient
    from services.content.application.personal_data import MemberErasure
    from siyu_kit.events.consumer import Poison, Subscription

    erasure = MemberErasure(MemberErasureClient(runtime.channel("member")))

    async def on_member_erased(envelope, erased) -> None:
        if not (envelope.merchant_id and erased.member_id):
            raise Poison("a MemberErased needs a merchant and a member")
        await erasure.on_member_erased(envelope.merchant_id, erased.member_id)

    return [Subscription.to("content-member-erased", member_events.MemberErased, on_member_erased)]
# ---- end of personal data ----
