"""The staff's member views of MemberService (search and 360°): proto in, use case, proto out."""
from __future__ import annotations

from siyu.member.v1 import member_pb2

from services.member.adapters import member_view_messages as out
from services.member.application.member_views import MemberViews


class MemberViewRpcs:
    member_views: MemberViews

    async def SearchMembers(self, request, context):
        cards, token = await self.member_views.search(out.query_of(request))
        return member_pb2.SearchMembersResponse(members=[out.card_proto(c) for c in cards], next_page_token=token)

    async def GetMember360(self, request, context):
        view = await self.member_views.member_360(request.member_id)
        return member_pb2.GetMember360Response(member=out.member_360_proto(view))
