"""The live-session RPCs of ContentService: proto ⇄ use case. Also the live parts of two
responses other blocks own: CheckAttribution's live prices and the persona page's sessions."""
from __future__ import annotations

from siyu.content.v1 import content_pb2

from services.content.adapters.feed_messages import persona_proto
from services.content.adapters.live_messages import line_up_item_pb, line_up_of, session_pb, state_name
from services.content.application.live_sessions import LiveSessions, Shown
from services.content.domain.live_sessions import SessionFields


def _ms(message, field: str) -> int:
    return getattr(message, field).ToMilliseconds() if message.HasField(field) else 0


def shown_pb(shown: Shown) -> content_pb2.LiveSession:
    return session_pb(shown.session, shown.figures)


class LiveRpcs:
    live: LiveSessions

    async def CreateLiveSession(self, request, context):
        shown = await self.live.create(SessionFields(
            persona_id=request.persona_id, title=request.title, cover_url=request.cover_url,
            scheduled_ms=_ms(request, "scheduled_at"), line_up=line_up_of(request.line_up),
            price_grace_minutes=request.price_grace_minutes), request.idempotency_key)
        return content_pb2.CreateLiveSessionResponse(live_session=shown_pb(shown))

    async def UpdateLiveSession(self, request, context):
        shown = await self.live.update(request.live_session_id, request.expected_version, SessionFields(
            persona_id="", title=request.title, cover_url=request.cover_url,
            scheduled_ms=_ms(request, "scheduled_at"), line_up=line_up_of(request.line_up),
            price_grace_minutes=request.price_grace_minutes))
        return content_pb2.UpdateLiveSessionResponse(live_session=shown_pb(shown))

    async def ChangeLiveSessionState(self, request, context):
        shown, changed = await self.live.change_state(request.live_session_id, state_name(request.state))
        return content_pb2.ChangeLiveSessionStateResponse(live_session=shown_pb(shown), changed=changed)

    async def PinLiveProduct(self, request, context):
        shown, changed = await self.live.pin(request.live_session_id, request.sku_id)
        return content_pb2.PinLiveProductResponse(live_session=shown_pb(shown), changed=changed)

    async def ListLiveSessions(self, request, context):
        rows, token = await self.live.page(request.persona_id, state_name(request.state), request.page_size,
                                           request.page_token)
        return content_pb2.ListLiveSessionsResponse(live_sessions=[shown_pb(s) for s in rows],
                                                    next_page_token=token)

    async def GetLiveRoom(self, request, context):
        room = await self.live.room(request.live_session_id)
        response = content_pb2.GetLiveRoomResponse(live_session=shown_pb(room.shown), products=room.products,
                                                   flash_sales=room.flash_sales,
                                                   live_prices_apply=room.prices_apply)
        if room.persona is not None:
            response.persona.CopyFrom(persona_proto(room.persona))
        return response

    async def LikeLiveSession(self, request, context):
        likes = await self.live.like(request.live_session_id, request.taps, request.idempotency_key)
        return content_pb2.LikeLiveSessionResponse(likes=likes)

    async def ListProductLiveSessions(self, request, context):
        rows = await self.live.of_product(request.product_id)
        return content_pb2.ListProductLiveSessionsResponse(sessions=[
            content_pb2.ProductLiveSession(live_session=shown_pb(s), items=[line_up_item_pb(i) for i in items])
            for s, items in rows])

    # ---- the live parts of other blocks' responses ----

    async def GetPersonaPage(self, request, context):
        """The persona page (feed_servicer.FeedRpcs) with its SCHEDULED and LIVE sessions."""
        response = await super().GetPersonaPage(request, context)
        if self.live is not None:
            response.live_session_ids.extend(await self.live.upcoming_ids(request.persona_id))
        return response

    async def check_live_session(self, request, response: content_pb2.CheckAttributionResponse) -> None:
        """CheckAttribution's live-session part: the session named (else the share code's,
        which check_share_code filled in) and its live prices when they apply now."""
        if self.live is None:
            response.live_session_found = True
            return
        now = await self.live.prices_now(request.live_session_id, response.live_session_id)
        response.live_session_found = now.found
        response.live_prices.extend(line_up_item_pb(i) for i in now.prices)
        response.live_prices_session_id = now.session_id
