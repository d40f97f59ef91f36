"""The engagement part of the content service's wiring: the use cases over the MongoDB
stores, feeding the funnels through their use cases."""
from __future__ import annotations

from services.content.adapters import engagement_store as store
from services.content.application.engagement import EngagementUseCases
from services.content.application.funnels import FunnelUseCases
from services.content.application.ports import ContentRepository, PersonaRepository, Products


def use_cases(contents: ContentRepository, personas: PersonaRepository, funnels: FunnelUseCases,
              products: Products) -> EngagementUseCases:
    store.ensure_indexes()
    return EngagementUseCases(store.MongoReactions(), store.MongoComments(), store.MongoSettings(),
                              store.MongoAudit(), store.MongoShareCodes(), contents, personas,
                              funnel_cases=funnels, products=products, time_zone=funnels.time_zone)
