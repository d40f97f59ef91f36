"""The engagement RPCs of ContentService: proto in, use case, proto out."""
from __future__ import annotations

from siyu.content.v1 import content_pb2

from siyu_kit import context, protos

from services.content.application.clock import from_ms
from services.content.application.engagement import EngagementUseCases
from services.content.domain import engagement as rules
from services.content.domain.engagement import Comment, EngagementSettings, ProductEvent, ShareCode

COMMENT_STATUS = {rules.PUBLISHED: content_pb2.COMMENT_STATUS_PUBLISHED, rules.HELD: content_pb2.COMMENT_STATUS_HELD,
                  rules.HIDDEN: content_pb2.COMMENT_STATUS_HIDDEN, rules.REJECTED: content_pb2.COMMENT_STATUS_REJECTED}
COMMENT_STATUS_NAME = {v: k for k, v in COMMENT_STATUS.items()}
TARGET_KIND = {rules.CONTENT: content_pb2.SHARE_TARGET_KIND_CONTENT, rules.PRODUCT: content_pb2.SHARE_TARGET_KIND_PRODUCT,
               rules.PERSONA: content_pb2.SHARE_TARGET_KIND_PERSONA,
               rules.LIVE_SESSION: content_pb2.SHARE_TARGET_KIND_LIVE_SESSION}
TARGET_KIND_NAME = {v: k for k, v in TARGET_KIND.items()}
ACTION_NAME = {content_pb2.MODERATION_ACTION_APPROVE: rules.APPROVE, content_pb2.MODERATION_ACTION_REJECT: rules.REJECT,
               content_pb2.MODERATION_ACTION_HIDE: rules.HIDE}
EVENT_KIND_NAME = {content_pb2.PRODUCT_EVENT_KIND_VIEW: rules.VIEW, content_pb2.PRODUCT_EVENT_KIND_CLICK: rules.CLICK}


def _name(table: dict, number: int) -> str:
    return table.get(number, "" if number == 0 else f"#{number}")


def comment_pb(c: Comment, staff: bool = False) -> content_pb2.Comment:
    ctx = context.current()
    mine = ctx.caller_kind == "member" and bool(c.member_id) and ctx.caller_id == c.member_id
    message = content_pb2.Comment(comment_id=c.id, content_id=c.content_id, member_id=c.member_id, text=c.text,
                                  status=COMMENT_STATUS[c.status], report_count=c.report_count,
                                  created_at=protos.timestamp(from_ms(c.created_ms)), mine=mine)
    if staff:
        message.matched_words.extend(c.matched_words)
        message.moderation_reason = c.moderation_reason
    return message


def share_pb(s: ShareCode) -> content_pb2.ShareCode:
    t = s.target
    return content_pb2.ShareCode(code=s.code, target_kind=TARGET_KIND[t.kind], target_id=t.target_id,
                                 persona_id=t.persona_id, content_id=t.content_id, product_id=t.product_id,
                                 live_session_id=t.live_session_id, sharer_kind=s.sharer_kind,
                                 sharer_id=s.sharer_id, created_at=protos.timestamp(from_ms(s.created_ms)),
                                 click_count=s.click_count)


def settings_pb(s: EngagementSettings) -> content_pb2.EngagementSettings:
    return content_pb2.EngagementSettings(sensitive_words=list(s.sensitive_words),
                                          report_hide_threshold=s.report_hide_threshold,
                                          attribution_window_days=s.attribution_window_days)


def _ms(timestamp) -> int:
    return timestamp.seconds * 1000 + timestamp.nanos // 1_000_000


class EngagementRpcs:
    engagement: EngagementUseCases

    async def fill_counts(self, *contents: content_pb2.Content) -> None:
        """The engagement counters of content messages, read in one query."""
        if self.engagement is None:
            return
        counts = await self.engagement.counts([c.content_id for c in contents])
        for message in contents:
            found = counts.get(message.content_id)
            if found is not None:
                message.view_count, message.like_count = found.views, found.likes
                message.comment_count, message.share_count = found.comments, found.shares

    async def RecordContentView(self, request, context):
        counted, views = await self.engagement.view(request.content_id)
        return content_pb2.RecordContentViewResponse(counted=counted, view_count=views)

    async def SetContentLike(self, request, context):
        changed, likes = await self.engagement.set_like(request.content_id, request.liked)
        return content_pb2.SetContentLikeResponse(liked=request.liked, changed=changed, like_count=likes)

    async def PostComment(self, request, context):
        comment = await self.engagement.post_comment(request.content_id, request.text, request.idempotency_key)
        return content_pb2.PostCommentResponse(comment=comment_pb(comment))

    async def ListComments(self, request, context):
        comments, token = await self.engagement.list_comments(request.content_id, request.page_size,
                                                              request.page_token)
        return content_pb2.ListCommentsResponse(comments=[comment_pb(c) for c in comments], next_page_token=token)

    async def ReportComment(self, request, context):
        reported, hidden = await self.engagement.report(request.comment_id, request.reason)
        return content_pb2.ReportCommentResponse(reported=reported, hidden=hidden)

    async def CreateShareCode(self, request, context):
        share, created = await self.engagement.share(_name(TARGET_KIND_NAME, request.target_kind), request.target_id,
                                                     request.persona_id, as_staff=False)
        return content_pb2.CreateShareCodeResponse(share_code=share_pb(share), created=created)

    async def CreateStaffShareCode(self, request, context):
        share, created = await self.engagement.share(_name(TARGET_KIND_NAME, request.target_kind), request.target_id,
                                                     request.persona_id, as_staff=True)
        return content_pb2.CreateStaffShareCodeResponse(share_code=share_pb(share), created=created)

    async def OpenShareCode(self, request, context):
        share, counted = await self.engagement.open_share(request.code)
        return content_pb2.OpenShareCodeResponse(share_code=share_pb(share), counted=counted)

    async def ReportProductEvents(self, request, context):
        events = [ProductEvent(client_event_id=e.client_event_id, kind=_name(EVENT_KIND_NAME, e.kind),
                               product_id=e.product_id, persona_id=e.persona_id, content_id=e.content_id,
                               live_session_id=e.live_session_id,
                               occurred_ms=_ms(e.occurred_at) if e.HasField("occurred_at") else 0)
                  for e in request.events]
        accepted, duplicates = await self.engagement.product_events(events)
        return content_pb2.ReportProductEventsResponse(accepted=accepted, duplicates=duplicates)

    async def GetEngagementSettings(self, request, context):
        settings, version = await self.engagement.get_settings()
        return content_pb2.GetEngagementSettingsResponse(settings=settings_pb(settings), version=version)

    async def UpdateEngagementSettings(self, request, context):
        s = request.settings
        settings, version = await self.engagement.update_settings(
            EngagementSettings(tuple(s.sensitive_words), s.report_hide_threshold, s.attribution_window_days),
            request.expected_version)
        return content_pb2.UpdateEngagementSettingsResponse(settings=settings_pb(settings), version=version)

    async def ListCommentsForReview(self, request, context):
        comments, token = await self.engagement.review_page(_name(COMMENT_STATUS_NAME, request.status),
                                                            request.page_size, request.page_token)
        return content_pb2.ListCommentsForReviewResponse(comments=[comment_pb(c, staff=True) for c in comments],
                                                         next_page_token=token)

    async def ModerateComment(self, request, context):
        comment, changed = await self.engagement.moderate(request.comment_id, _name(ACTION_NAME, request.action),
                                                          request.reason)
        return content_pb2.ModerateCommentResponse(comment=comment_pb(comment, staff=True), changed=changed)

    async def check_share_code(self, request, response: content_pb2.CheckAttributionResponse) -> None:
        """CheckAttribution's share-code part."""
        if self.engagement is None or not request.share_code:
            response.share_code_found = True
            return
        check = await self.engagement.check_share(request.share_code, request.member_id)
        response.share_code_found = check.found
        response.share_code_in_window = check.in_window
        if check.in_window and check.code is not None:
            t = check.code.target
            response.persona_id, response.content_id = t.persona_id, t.content_id
            response.live_session_id = t.live_session_id
            # The order's distributor or guide binding starts from the sharer.
            response.share_code_sharer_id = check.code.sharer_id
