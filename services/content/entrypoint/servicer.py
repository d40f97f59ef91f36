"""ContentService over gRPC: proto ⇄ use case, nothing more."""
from __future__ import annotations

from siyu.content.v1 import content_pb2, content_pb2_grpc


from services.content.adapters.feed_messages import CHANNEL_BY_NUMBER, content_proto, persona_proto
from services.content.application.contents import ContentUseCases
from services.content.application.funnels import FunnelUseCases
from services.content.application.personas import PersonaUseCases
from services.content.application.staff_lists import StaffLists
from services.content.application.cohorts import CohortUseCases
from services.content.entrypoint.funnel_servicer import FunnelRpcs, funnel_pb
from services.content.domain.contents import Content, ContentFields
from services.content.domain.personas import Persona, PersonaFields
from services.content.entrypoint.engagement_servicer import EngagementRpcs
from services.content.entrypoint.feed_servicer import FeedRpcs
from services.content.entrypoint.guide_performance_servicer import GuidePerformanceRpcs
from services.content.entrypoint.recommendation_servicer import RecommendationRpcs
from services.content.entrypoint.live_room_wiring import LiveViewerRpcs
from services.content.entrypoint.live_servicer import LiveRpcs

TYPE_BY_NUMBER = {content_pb2.CONTENT_TYPE_ARTICLE: "ARTICLE", content_pb2.CONTENT_TYPE_SHORT_POST: "SHORT_POST",
                  content_pb2.CONTENT_TYPE_VIDEO: "VIDEO"}
TYPE_NUMBER = {v: k for k, v in TYPE_BY_NUMBER.items()}
STATUS_BY_NUMBER = {content_pb2.CONTENT_STATUS_DRAFT: "DRAFT", content_pb2.CONTENT_STATUS_SCHEDULED: "SCHEDULED",
                    content_pb2.CONTENT_STATUS_PUBLISHED: "PUBLISHED",
                    content_pb2.CONTENT_STATUS_ARCHIVED: "ARCHIVED"}
STATUS_NUMBER = {v: k for k, v in STATUS_BY_NUMBER.items()}


def _enum_name(table: dict[int, str], number: int) -> str:
    # Unspecified is "" (not given); a number the contract does not know stays invalid.
    if number == 0:
        return ""
    return table.get(number, f"#{number}")


def persona_pb(p: Persona) -> content_pb2.Persona:
    return persona_proto(p)


def content_pb(c: Content) -> content_pb2.Content:
    return content_proto(c)


def _channels(numbers) -> tuple[str, ...]:
    # A number the contract does not know stays invalid (the domain names it).
    return tuple(CHANNEL_BY_NUMBER.get(n, f"#{n}") for n in numbers)


def _ms(message, field: str) -> int:
    return getattr(message, field).ToMilliseconds() if message.HasField(field) else 0


class ContentServicer(LiveRpcs, LiveViewerRpcs, RecommendationRpcs, FunnelRpcs, EngagementRpcs, FeedRpcs,
                       GuidePerformanceRpcs, content_pb2_grpc.ContentServiceServicer):
    def __init__(self, personas: PersonaUseCases, contents: ContentUseCases, funnels: FunnelUseCases,
                 lists: StaffLists | None = None, cohorts: CohortUseCases | None = None, engagement=None,
                 feed: dict | None = None, live=None):
        self.live = live  # live sessions (live_servicer.LiveRpcs)
        self.cohorts = cohorts  # repeat purchase and lifetime value (funnel_servicer.FunnelRpcs)
        # personas run by guides, follows, content pages and the feed (feed_servicer.FeedRpcs)
        for name, part in (feed or {}).items():
            setattr(self, name, part)
        self.lists = lists
        self.engagement = engagement
        self.personas = personas
        self.contents = contents
        self.funnels = funnels

    async def UpsertPersona(self, request, context):
        persona, created = await self.personas.upsert(PersonaFields(
            code=request.code, name=request.name, avatar_url=request.avatar_url, expertise=request.expertise,
            bio=request.bio, tone=request.tone, featured_product_ids=tuple(request.featured_product_ids)))
        return content_pb2.UpsertPersonaResponse(persona=persona_pb(persona), created=created)

    async def UpsertContent(self, request, context):
        content, created = await self.contents.upsert(
            ContentFields(code=request.code, persona_id=request.persona_id,
                          type=_enum_name(TYPE_BY_NUMBER, request.type), title=request.title,
                          body=request.body, product_ids=tuple(request.product_ids),
                          media_urls=tuple(request.media_urls), topics=tuple(request.topics),
                          channels=_channels(request.channels), publish_at_ms=_ms(request, "publish_at")),
            _enum_name(STATUS_BY_NUMBER, request.status))
        return content_pb2.UpsertContentResponse(content=content_pb(content), created=created)

    async def GetContent(self, request, context):
        content, persona = await self.contents.get_published(request.content_id)
        response = content_pb2.GetContentResponse(content=content_pb(content))
        await self.fill_counts(response.content)
        if persona is not None:
            response.persona.CopyFrom(persona_pb(persona))
        return response

    async def CheckAttribution(self, request, context):
        persona_found, content_found = await self.contents.attribution_found(request.persona_id, request.content_id)
        response = content_pb2.CheckAttributionResponse(persona_found=persona_found, content_found=content_found)
        await self.check_share_code(request, response)
        await self.check_live_session(request, response)
        return response

    async def GetPersonaFunnel(self, request, context):
        persona, counters, currency = await self.funnels.persona_funnel(request.persona_id)
        return content_pb2.GetPersonaFunnelResponse(persona=persona_pb(persona), funnel=funnel_pb(counters, currency))

    async def GetContentFunnel(self, request, context):
        content, counters, currency = await self.funnels.content_funnel(request.content_id)
        return content_pb2.GetContentFunnelResponse(content=content_pb(content), funnel=funnel_pb(counters, currency))

    # ---- staff lists
    async def ListPersonas(self, request, context):
        personas, token = await self.lists.personas_page(request.page_size, request.page_token)
        return content_pb2.ListPersonasResponse(personas=[persona_pb(p) for p in personas], next_page_token=token)

    async def ListContents(self, request, context):
        contents, token = await self.lists.contents_page(request.persona_id, STATUS_BY_NUMBER.get(request.status, ""),
                                                         request.page_size, request.page_token)
        return content_pb2.ListContentsResponse(contents=[content_pb(c) for c in contents], next_page_token=token)

