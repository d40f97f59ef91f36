"""The personas, follows, content and feed RPCs of ContentService: proto ⇄ use case."""
from __future__ import annotations

import json

from siyu.content.v1 import content_pb2

from siyu_kit import protos

from services.content.adapters.feed_messages import content_proto, persona_proto
from services.content.application.clock import from_ms
from services.content.application.feed import ContentPages, Feeds, Follows, PersonaGuides
from services.content.application.member_data import MemberData

REASON_NUMBER = {"FOLLOWED": content_pb2.FEED_REASON_FOLLOWED, "RECOMMENDED": content_pb2.FEED_REASON_RECOMMENDED}


class FeedRpcs:
    guides: PersonaGuides
    follows: Follows
    pages: ContentPages
    feeds: Feeds
    member_data: MemberData

    async def AssignPersonaGuides(self, request, context):
        persona = await self.guides.assign(request.persona_id, tuple(request.guide_ids))
        return content_pb2.AssignPersonaGuidesResponse(persona=persona_proto(persona))

    async def FollowPersona(self, request, context):
        changed, count = await self.follows.follow(request.persona_id)
        return content_pb2.FollowPersonaResponse(changed=changed, follower_count=count)

    async def UnfollowPersona(self, request, context):
        changed, count = await self.follows.unfollow(request.persona_id)
        return content_pb2.UnfollowPersonaResponse(changed=changed, follower_count=count)

    async def ListMyFollows(self, request, context):
        rows, token = await self.follows.mine(request.page_size, request.page_token)
        return content_pb2.ListMyFollowsResponse(next_page_token=token, follows=[
            content_pb2.FollowedPersona(persona=persona_proto(p), followed_at=protos.timestamp(from_ms(f.followed_ms)))
            for p, f in rows])

    async def GetPersonaPage(self, request, context):
        persona, following, contents, token, featured = await self.pages.persona_page(
            request.persona_id, request.page_size, request.page_token)
        return content_pb2.GetPersonaPageResponse(
            persona=persona_proto(persona), following=following, contents=[content_proto(c) for c in contents],
            next_page_token=token, featured_products=featured)

    async def GetContentDetail(self, request, context):
        content, persona, products = await self.pages.detail(request.content_id)
        response = content_pb2.GetContentDetailResponse(content=content_proto(content), products=products)
        if persona is not None:
            response.persona.CopyFrom(persona_proto(persona))
        return response

    async def ListMyFeed(self, request, context):
        items, token = await self.feeds.page(request.page_size, request.page_token)
        response = content_pb2.ListMyFeedResponse(next_page_token=token)
        for content, persona, reason in items:
            item = response.items.add(content=content_proto(content), reason=REASON_NUMBER[reason])
            if persona is not None:
                item.persona.CopyFrom(persona_proto(persona))
        return response

    async def ExportMemberData(self, request, context):
        document = await self.member_data.export(request.member_id)
        return content_pb2.ExportMemberDataResponse(document=json.dumps(document, ensure_ascii=False, sort_keys=True))
