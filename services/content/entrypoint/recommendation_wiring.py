"""The recommendation part of the content service's wiring: the store, the use cases, the
events that keep the data (order.paid, member profile updates) and the member's part of
the personal data (export and erasure)."""
from __future__ import annotations

from siyu_kit.events.consumer import Subscription

from services.content.adapters import feed_store, recommendation_store
from services.content.adapters.catalog import CatalogClient
from services.content.adapters.repositories import PersonaRepository
from services.content.application.recommendations import ProductContents, Recommendations
from services.content.entrypoint import events


class RecommendationData:
    """The member's purchases as recommendations keep them, and their switch."""
    name = "recommendations"

    def __init__(self, recommendations: Recommendations):
        self.recommendations = recommendations

    async def export(self, merchant_id: str, member_id: str) -> dict:
        return await self.recommendations.export_member(merchant_id, member_id)

    async def erase(self, merchant_id: str, member_id: str) -> None:
        await self.recommendations.forget_member(merchant_id, member_id)


class RecommendationParts:
    def __init__(self, personas: PersonaRepository, catalog: CatalogClient):
        recommendation_store.ensure_indexes()
        self.recommendations = Recommendations(recommendation_store.RecommendationStore(), feed_store.FollowStore(),
                                               personas, catalog)
        self.product_contents = ProductContents(recommendation_store.ProductContentsStore(), personas)
        self.member_data = RecommendationData(self.recommendations)

    def servicer_parts(self) -> dict:
        """What the servicer's RecommendationRpcs reads."""
        return {"recommendations": self.recommendations, "product_contents": self.product_contents}

    def subscriptions(self) -> list[Subscription]:
        return events.recommendation_subscriptions(self.recommendations)
