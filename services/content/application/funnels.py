"""Recording order events into funnels and reading funnels back."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from siyu_kit import context
from siyu_kit.money import DEFAULT_CURRENCY

from services.content.application.contents import ContentUseCases
from services.content.application.personas import PersonaUseCases
from services.content.application.ports import FunnelRepository
from services.content.domain import funnels
from services.content.domain.contents import Content
from services.content.domain.funnels import Counters
from services.content.domain.personas import Persona


@dataclass(frozen=True)
class OrderFact:
    """What an order event tells a funnel."""
    event_id: str
    merchant_id: str
    occurred_at: datetime
    persona_id: str
    content_id: str
    live_session_id: str
    change: Counters
    currency: str = DEFAULT_CURRENCY


class FunnelUseCases:
    def __init__(self, repo: FunnelRepository, personas: PersonaUseCases, contents: ContentUseCases,
                 time_zone: str = funnels.DEFAULT_TIME_ZONE):
        self.repo = repo
        self.personas = personas
        self.contents = contents
        # The member service shares no merchant settings with us yet, so every merchant
        # counts its business days in the default zone.
        self.time_zone = time_zone

    async def record(self, fact: OrderFact) -> int:
        """Count an order event once per attributed funnel; returns how many buckets it
        changed now (0 for a replay)."""
        day = funnels.business_day(fact.occurred_at, self.time_zone)
        changed = 0
        for funnel in funnels.funnels_of(fact.merchant_id, fact.persona_id, fact.content_id, fact.live_session_id):
            funnel.count(fact.event_id, day, fact.change, fact.currency or DEFAULT_CURRENCY)
            changed += await self.repo.save(funnel)
        return changed

    async def persona_funnel(self, persona_id: str) -> tuple[Persona, Counters, str]:
        context.current().require_staff("OPERATOR", "GUIDE")
        persona = await self.personas.get(persona_id)
        return (persona, *await self._total(funnels.PERSONA, persona.id))

    async def content_funnel(self, content_id: str) -> tuple[Content, Counters, str]:
        context.current().require_staff("OPERATOR", "GUIDE")
        content = await self.contents.get_any(content_id)
        return (content, *await self._total(funnels.CONTENT, content.id))

    async def _total(self, dimension: str, ref_id: str) -> tuple[Counters, str]:
        """Lifetime counters of one funnel: the sum of its daily buckets."""
        merchant_id = context.current().require_merchant()
        funnel = await self.repo.load(merchant_id, dimension, ref_id)
        return funnel.counters, funnel.currency or DEFAULT_CURRENCY
