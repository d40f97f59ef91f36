"""The recommendation part of the content service's wiring: the store, the use cases and
the events that keep the data (order.paid, member profile updates)."""
from __future__ import annotations

from siyu_kit.events.consumer import Subscription

from services.content.adapters import feed_store, recommendation_store
from services.content.adapters.catalog import CatalogClient
from services.content.adapters.repositories import PersonaRepository
from services.content.application.recommendations import ProductContents, Recommendations
from services.content.entrypoint import events


class RecommendationParts:
    def __init__(self, personas: PersonaRepository, catalog: CatalogClient):
        recommendation_store.ensure_indexes()
        self.recommendations = Recommendations(recommendation_store.RecommendationStore(), feed_store.FollowStore(),
                                               personas, catalog)
        self.product_contents = ProductContents(recommendation_store.ProductContentsStore(), personas)

    def servicer_parts(self) -> dict:
        """What the servicer's RecommendationRpcs reads."""
        return {"recommendations": self.recommendations, "product_contents": self.product_contents}

    def subscriptions(self) -> list[Subscription]:
        return events.recommendation_subscriptions(self.recommendations)
