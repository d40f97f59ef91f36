"""The recommendation RPCs of ContentService: proto ⇄ use case."""
from __future__ import annotations

from siyu.catalog.v1 import catalog_pb2
from siyu.content.v1 import content_pb2

from services.content.adapters.feed_messages import content_proto, persona_proto
from services.content.application.recommendations import ProductContents, Recommendations
from services.content.domain import recommendations as rules

REASON_NUMBER = {rules.BOUGHT_WITH: content_pb2.RECOMMENDATION_REASON_BOUGHT_WITH,
                 rules.CATEGORY_AFFINITY: content_pb2.RECOMMENDATION_REASON_CATEGORY_AFFINITY,
                 rules.TAG_AFFINITY: content_pb2.RECOMMENDATION_REASON_TAG_AFFINITY,
                 rules.FOLLOWED_PERSONA: content_pb2.RECOMMENDATION_REASON_FOLLOWED_PERSONA,
                 rules.POPULAR: content_pb2.RECOMMENDATION_REASON_POPULAR}


class RecommendationRpcs:
    recommendations: Recommendations
    product_contents: ProductContents

    async def ListMyRecommendations(self, request, context):
        rows, personalised = await self.recommendations.mine(request.page_size)
        response = content_pb2.ListMyRecommendationsResponse(personalised=personalised)
        for product, pick, text in rows:
            response.recommendations.add(
                # Without the catalog the product is known by its id alone.
                product=product if product is not None else catalog_pb2.Product(product_id=pick.product_id),
                reason=REASON_NUMBER[pick.reason], reason_text=text, related_product_id=pick.related_product_id,
                persona_id=pick.persona_id)
        return response

    async def ListProductContents(self, request, context):
        contents, personas, token = await self.product_contents.page(request.product_id, request.page_size,
                                                                     request.page_token)
        return content_pb2.ListProductContentsResponse(contents=[content_proto(c) for c in contents],
                                                       personas=[persona_proto(p) for p in personas],
                                                       next_page_token=token)
