"""The guide performance part of the content service's wiring: its stores and use cases,
the order events counted for guides, the viewers counted for them through the funnels,
and the share-code open records' outbox (ShareCodeOpened)."""
from __future__ import annotations

from siyu_kit import service

from services.content.adapters import engagement_store, funnel_store, guide_performance_store as store
from services.content.application.funnels import FunnelUseCases
from services.content.application.guide_performance import GuidePerformanceUseCases
from services.content.application.guide_performance_ports import SessionPersona
from services.content.application.ports import ContentRepository, PersonaRepository
from services.content.entrypoint import guide_events
from services.content.entrypoint.guide_performance_servicer import GuidePerformanceRpcs


def use_cases(funnels: FunnelUseCases, personas: PersonaRepository, contents: ContentRepository,
              session_persona: SessionPersona) -> GuidePerformanceUseCases:
    store.ensure_indexes()
    guides = GuidePerformanceUseCases(funnel_store.FunnelRepository(), store.MongoFunnelTotals(),
                                      store.MongoOrderCredits(), personas, contents,
                                      engagement_store.MongoShareCodes(), session_persona=session_persona,
                                      time_zone=funnels.time_zone)
    funnels.guide_touches = guides.record_touch
    return guides


def session_persona(sessions) -> SessionPersona:
    """The persona of a merchant's live session, from the session repository."""
    async def persona_of(merchant_id: str, live_session_id: str) -> str:
        session = await sessions.get(merchant_id, live_session_id)
        return session.fields.persona_id if session else ""
    return persona_of


def add_to(parts: service.Parts, guides: GuidePerformanceUseCases) -> None:
    for _, servicer, _ in parts.servicers:
        if isinstance(servicer, GuidePerformanceRpcs):
            servicer.guide_performance = guides
    parts.subscriptions.extend(guide_events.subscriptions(guides))
    parts.outbox_collections.extend(engagement_store.outbox_collections())
