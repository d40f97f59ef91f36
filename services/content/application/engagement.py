"""Engagement use cases: views, likes, comments and their review, share codes and the
product events front ends report. Views and clicks also feed the funnels, through
FunnelUseCases.record (the funnels' own dedup by event id and day)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from siyu_kit import context, paging, retry
from siyu_kit.errors import (Conflict, FailedPrecondition, FieldViolation, InvalidArgument, NotFound,
                             Violations)
from siyu_kit.ids import is_id, new_id

from services.content.application.clock import Clock, from_ms, now_ms
from services.content.application.engagement_ports import (Audit, AuditEntry, Comments, Counts, Reactions,
                                                           Settings, ShareCodes)
from services.content.application.funnels import FunnelUseCases, Touch
from services.content.application.ports import ContentRepository, PersonaRepository, Products
from services.content.domain import engagement as rules
from services.content.domain import funnels, share_opens
from services.content.domain.contents import Content
from services.content.domain.engagement import (Comment, EngagementSettings, ProductEvent, ShareCode,
                                                ShareTarget, WordFilter)

SETTINGS_TARGET = "engagement-settings"
MAX_KEY = 64


def _invalid(v: Violations) -> None:
    v.raise_if_any()


def _bad(field: str, description: str) -> InvalidArgument:
    return InvalidArgument("the request has invalid fields", reason="INVALID_FIELDS",
                           violations=[FieldViolation(field, description)])


@dataclass(frozen=True)
class ShareCheck:
    """What CheckAttribution answers of a share code."""
    found: bool
    in_window: bool
    code: ShareCode | None = None


class EngagementUseCases:
    def __init__(self, reactions: Reactions, comments: Comments, settings: Settings, audit: Audit,
                 shares: ShareCodes, contents: ContentRepository, personas: PersonaRepository,
                 funnel_cases: FunnelUseCases | None = None, products: Products | None = None,
                 clock: Clock = now_ms, time_zone: str = funnels.DEFAULT_TIME_ZONE):
        self.reactions = reactions
        self.comments = comments
        self.settings_repo = settings
        self.audit = audit
        self.shares = shares
        self.contents = contents
        self.personas = personas
        # Views and product events feed the funnels through their use cases; None: not fed.
        self.funnel_cases = funnel_cases
        self.products = products
        self.clock = clock
        # Business days (unique views, a sharer's code of the day) are the merchant's; the
        # member service does not share merchant settings with this one yet, so every
        # merchant counts days in this zone, as the funnels do.
        self.time_zone = time_zone

    def _day(self, at_ms: int) -> str:
        return funnels.business_day(from_ms(at_ms), self.time_zone)

    async def _published(self, merchant_id: str, content_id: str) -> Content:
        content = await self.contents.get(merchant_id, content_id)
        if content is None or not content.is_public:
            raise NotFound("no such content", violations=[FieldViolation("content_id", "no such content")])
        return content

    # ---- views and likes ----------------------------------------------------------------

    async def view(self, content_id: str) -> tuple[bool, int]:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(is_id(content_id, "cnt"), "content_id", "a content id (cnt_…)")
        _invalid(v)
        content = await self._published(ctx.merchant_id, content_id)
        now = self.clock()
        counted = await self.reactions.add_view(ctx.merchant_id, content_id, member_id, self._day(now), now)
        # Also on a repeat: the funnels count a member once a day by the event id, and a
        # view whose funnel write was cut short is finished by the next.
        await self._feed(ctx.merchant_id, member_id, now, content.fields.persona_id, content_id, "")
        counts = (await self.reactions.counts(ctx.merchant_id, [content_id])).get(content_id, Counts())
        return counted, counts.views

    async def set_like(self, content_id: str, liked: bool) -> tuple[bool, int]:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(is_id(content_id, "cnt"), "content_id", "a content id (cnt_…)")
        _invalid(v)
        await self._published(ctx.merchant_id, content_id)
        changed = await self.reactions.set_like(ctx.merchant_id, content_id, member_id, liked, self.clock())
        counts = (await self.reactions.counts(ctx.merchant_id, [content_id])).get(content_id, Counts())
        return changed, counts.likes

    async def counts(self, content_ids: list[str]) -> dict[str, Counts]:
        merchant_id = context.current().require_merchant()
        return await self.reactions.counts(merchant_id, content_ids)

    async def _feed(self, merchant_id: str, member_id: str, at_ms: int, persona_id: str, content_id: str,
                    live_session_id: str, click_id: str = "") -> int:
        """A view (no click id) or a click, through the funnels' own entry points: a member
        is one viewer per funnel and day, a click counts once by its id."""
        if self.funnel_cases is None:
            return 0
        touch = Touch(merchant_id=merchant_id, viewer_id=member_id, occurred_at=from_ms(at_ms),
                      persona_id=persona_id, content_id=content_id, live_session_id=live_session_id,
                      click_id=click_id)
        if click_id:
            return await self.funnel_cases.record_click(touch)
        return await self.funnel_cases.record_view(touch)

    # ---- comments -----------------------------------------------------------------------

    async def post_comment(self, content_id: str, text: str, idempotency_key: str) -> Comment:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(is_id(content_id, "cnt"), "content_id", "a content id (cnt_…)")
        v.check(1 <= len(text.strip()) <= rules.COMMENT_MAX, "text", f"1 to {rules.COMMENT_MAX} characters")
        v.check(1 <= len(idempotency_key) <= MAX_KEY, "idempotency_key", f"1 to {MAX_KEY} characters")
        _invalid(v)
        existing = await self.comments.by_key(ctx.merchant_id, member_id, idempotency_key)
        if existing is not None:
            return existing
        await self._published(ctx.merchant_id, content_id)
        settings, _ = await self.settings_repo.get(ctx.merchant_id)
        comment = Comment.post(new_id("cmt"), ctx.merchant_id, content_id, member_id, text,
                               WordFilter(settings.sensitive_words), self.clock(), idempotency_key)
        if not await self.comments.add(comment):
            # The same key, posted concurrently: the first insert is the comment.
            return await self.comments.by_key(ctx.merchant_id, member_id, idempotency_key)
        if comment.status == rules.PUBLISHED:
            await self.reactions.bump(ctx.merchant_id, content_id, "comments", 1)
        return comment

    async def list_comments(self, content_id: str, size: int, token: str) -> tuple[list[Comment], str]:
        ctx = context.current()
        merchant_id = ctx.require_merchant()
        member_id = ctx.caller_id if ctx.caller_kind == "member" else ""
        v = Violations()
        v.check(is_id(content_id, "cnt"), "content_id", "a content id (cnt_…)")
        size = paging.page_size(v, size)
        fp = paging.fingerprint(listing="comments", content_id=content_id, member_id=member_id)
        after = paging.decode_cursor(v, token, fp)
        _invalid(v)
        await self._published(merchant_id, content_id)
        rows = await self.comments.visible_page(merchant_id, content_id, member_id, after, size + 1)
        return paging.next_page(rows, size, fp)

    async def report(self, comment_id: str, reason: str) -> tuple[bool, bool]:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(is_id(comment_id, "cmt"), "comment_id", "a comment id (cmt_…)")
        v.check(len(reason) <= 200, "reason", "at most 200 characters")
        _invalid(v)
        comment = await self.comments.get(ctx.merchant_id, comment_id)
        if comment is None or not comment.visible_to(member_id):
            raise NotFound("no such comment", reason="COMMENT_NOT_FOUND",
                           violations=[FieldViolation("comment_id", "no such comment")])
        if comment.member_id == member_id:
            raise FailedPrecondition("members cannot report their own comments", reason="COMMENT_OWN_REPORT")
        reported = await self.comments.add_report(ctx.merchant_id, comment_id, member_id, reason.strip(),
                                                  self.clock())
        settings, _ = await self.settings_repo.get(ctx.merchant_id)
        # Also on a repeat: a report whose hide step was cut short is finished by the next.
        hidden_now = await self.comments.hide_if_reported(ctx.merchant_id, comment_id,
                                                          settings.report_hide_threshold)
        if hidden_now:
            await self.reactions.bump(ctx.merchant_id, comment.content_id, "comments", -1)
        after = await self.comments.get(ctx.merchant_id, comment_id)
        return reported, after is not None and after.status == rules.HIDDEN

    async def review_page(self, status: str, size: int, token: str) -> tuple[list[Comment], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(not status or status in rules.COMMENT_STATUSES, "status", "a comment status")
        size = paging.page_size(v, size)
        statuses = (status,) if status else rules.REVIEW_STATUSES
        fp = paging.fingerprint(listing="comment-review", statuses=statuses)
        after = paging.decode_cursor(v, token, fp)
        _invalid(v)
        rows = await self.comments.review_page(ctx.merchant_id, statuses, after, size + 1)
        return paging.next_page(rows, size, fp)

    async def moderate(self, comment_id: str, action: str, reason: str) -> tuple[Comment, bool]:
        ctx = context.current()
        staff_id = ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(is_id(comment_id, "cmt"), "comment_id", "a comment id (cmt_…)")
        v.check(action in rules.ACTION_TARGET, "action", "APPROVE, REJECT or HIDE")
        v.check(1 <= len(reason.strip()) <= 200, "reason", "1 to 200 characters")
        _invalid(v)

        async def attempt() -> tuple[Comment, bool, str]:
            comment = await self.comments.get(ctx.merchant_id, comment_id)
            if comment is None:
                raise NotFound("no such comment", reason="COMMENT_NOT_FOUND",
                               violations=[FieldViolation("comment_id", "no such comment")])
            before = comment.status
            if not comment.moderate(action, reason, staff_id):
                return comment, False, before
            await self.comments.save(comment)
            return comment, True, before

        comment, changed, before = await retry.on_conflict(
            attempt, gave_up="the comment changed while moderating; try again")
        if changed:
            # After the compare-and-set: exactly one moderator moves the count per move.
            delta = rules.comment_count_change(before, comment.status)
            if delta:
                await self.reactions.bump(ctx.merchant_id, comment.content_id, "comments", delta)
            await self.audit.add(AuditEntry(new_id("aud"), ctx.merchant_id, ctx.caller_kind, staff_id,
                                            f"COMMENT_{action}", comment.id, {"status": before},
                                            {"status": comment.status, "reason": comment.moderation_reason},
                                            self.clock()))
        return comment, changed

    # ---- settings -----------------------------------------------------------------------

    async def get_settings(self) -> tuple[EngagementSettings, int]:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        return await self.settings_repo.get(ctx.merchant_id)

    async def update_settings(self, settings: EngagementSettings,
                              expected_version: int) -> tuple[EngagementSettings, int]:
        ctx = context.current()
        staff_id = ctx.require_staff("OPERATOR")
        v = Violations()
        rules.check_settings(settings, expected_version, v)
        _invalid(v)
        settings = settings.normalized()
        before, version = await self.settings_repo.get(ctx.merchant_id)
        if version != expected_version or not await self.settings_repo.save(
                ctx.merchant_id, settings, expected_version, self.clock()):
            raise Conflict("the engagement settings changed since they were read", reason="VERSION_CONFLICT")
        await self.audit.add(AuditEntry(new_id("aud"), ctx.merchant_id, ctx.caller_kind, staff_id,
                                        "ENGAGEMENT_SETTINGS_UPDATED", SETTINGS_TARGET, before.summary(),
                                        settings.summary(), self.clock()))
        return settings, expected_version + 1

    # ---- share codes --------------------------------------------------------------------

    async def share(self, kind: str, target_id: str, persona_id: str, as_staff: bool) -> tuple[ShareCode, bool]:
        ctx = context.current()
        if as_staff:
            sharer_kind, sharer_id = "staff", ctx.require_staff("OPERATOR", "GUIDE")
        else:
            sharer_kind, sharer_id = "member", ctx.require_member()
        v = Violations()
        prefix = rules.TARGET_PREFIX.get(kind)
        v.check(prefix is not None, "target_kind", "CONTENT, PRODUCT, PERSONA or LIVE_SESSION")
        v.check(prefix is None or is_id(target_id, prefix), "target_id",
                f"a {prefix}_ id" if prefix else "a cnt_, prd_, per_ or liv_ id")
        v.check(not persona_id or is_id(persona_id, "per"), "persona_id", "a persona id (per_…)")
        _invalid(v)
        target = await self._target(ctx.merchant_id, kind, target_id, persona_id)
        now = self.clock()
        share = ShareCode(code="", merchant_id=ctx.merchant_id, target=target, sharer_kind=sharer_kind,
                          sharer_id=sharer_id, created_ms=now, day=self._day(now))
        existing = await self.shares.by_dedup_key(share.dedup_key)
        if existing is not None:
            return existing, False
        for _ in range(5):
            attempt = replace(share, code=rules.new_share_code())
            outcome = await self.shares.add(attempt)
            if outcome == "added":
                if target.kind == rules.CONTENT:
                    await self.reactions.bump(ctx.merchant_id, target.content_id, "shares", 1)
                return attempt, True
            if outcome == "key_taken":
                found = await self.shares.by_dedup_key(share.dedup_key)
                if found is not None:
                    return found, False
        raise Conflict("no free share code was found; try again")

    async def _target(self, merchant_id: str, kind: str, target_id: str, persona_id: str) -> ShareTarget:
        def missing(field: str = "target_id") -> NotFound:
            return NotFound("what is shared does not exist in this merchant", reason="SHARE_TARGET_NOT_FOUND",
                            violations=[FieldViolation(field, "no such one in this merchant")])

        if persona_id and await self.personas.get(merchant_id, persona_id) is None:
            raise missing("persona_id")
        if kind == rules.CONTENT:
            content = await self.contents.get(merchant_id, target_id)
            if content is None or not content.is_public:
                raise missing()
            return ShareTarget(kind, target_id, persona_id=content.fields.persona_id, content_id=target_id)
        if kind == rules.PERSONA:
            if await self.personas.get(merchant_id, target_id) is None:
                raise missing()
            return ShareTarget(kind, target_id, persona_id=target_id)
        if kind == rules.PRODUCT:
            if self.products is not None and await self.products.missing_products([target_id]):
                raise missing()
            return ShareTarget(kind, target_id, persona_id=persona_id, product_id=target_id)
        # Live sessions are not stored by this service yet: the id is taken as given.
        return ShareTarget(kind, target_id, persona_id=persona_id, live_session_id=target_id)

    async def open_share(self, code: str) -> tuple[ShareCode, bool]:
        ctx = context.current()
        merchant_id = ctx.require_merchant()
        v = Violations()
        v.check(rules.is_share_code(code), "code", "a share code")
        _invalid(v)
        share = await self.shares.get(merchant_id, code)
        if share is None:
            raise NotFound("no such share code", reason="SHARE_CODE_NOT_FOUND",
                           violations=[FieldViolation("code", "no such share code")])
        member_id = ctx.caller_id if ctx.caller_kind == "member" else ""
        # Without a member, an opener is told apart by network address only.
        opener = f"member:{member_id}" if member_id else f"address:{ctx.client_address or 'unknown'}"
        now = self.clock()
        # The open's record carries the event that tells the member service (never for an
        # anonymous opener): one write, so an open is told once and never lost.
        counted = await self.shares.record_open(merchant_id, code, opener, member_id, self._day(now), now,
                                                opened=share_opens.opened(share, member_id, now))
        if counted:
            share = replace(share, click_count=share.click_count + 1)
        if member_id and self.funnel_cases is not None:
            # A signed-in opener is a viewer of the code's guides (their performance).
            t = share.target
            await self.funnel_cases.record_guide_view(Touch(
                merchant_id=merchant_id, viewer_id=member_id, occurred_at=from_ms(now), persona_id=t.persona_id,
                content_id=t.content_id, live_session_id=t.live_session_id, share_code=code))
        return share, counted

    async def check_share(self, code: str, member_id: str) -> ShareCheck:
        """For an order being placed (an internal call): the code must be the merchant's; it
        is in the window when the member opened it (or, never opened by them, it was issued)
        at most the merchant's attribution window ago."""
        merchant_id = context.current().require_merchant()
        if not code:
            return ShareCheck(found=True, in_window=False)
        v = Violations()
        v.check(not member_id or is_id(member_id, "mem"), "member_id", "a member id (mem_…)")
        _invalid(v)
        # Anything that is not one of our codes is simply not found: the order drops it.
        share = await self.shares.get(merchant_id, code) if rules.is_share_code(code) else None
        if share is None:
            return ShareCheck(found=False, in_window=False)
        settings, _ = await self.settings_repo.get(merchant_id)
        since = (await self.shares.last_opened_ms(merchant_id, code, member_id) if member_id else 0) or share.created_ms
        return ShareCheck(True, rules.in_window(since, self.clock(), settings.attribution_window_days), share)

    # ---- product events -----------------------------------------------------------------

    async def product_events(self, events: list[ProductEvent]) -> tuple[int, int]:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(1 <= len(events) <= rules.MAX_EVENTS, "events", f"1 to {rules.MAX_EVENTS} events")
        now = self.clock()
        seen: set[str] = set()
        for i, e in enumerate(events[:rules.MAX_EVENTS]):
            at = f"events[{i}]"
            v.check(len(e.client_event_id) >= 8 and len(e.client_event_id) <= 64
                    and e.client_event_id.replace("-", "").replace("_", "").isalnum()
                    and e.client_event_id.isascii(), f"{at}.client_event_id", "8 to 64 of A-Z, a-z, 0-9, _ or -")
            v.check(e.kind in (rules.VIEW, rules.CLICK), f"{at}.kind", "VIEW or CLICK")
            v.check(is_id(e.product_id, "prd"), f"{at}.product_id", "a product id (prd_…)")
            for name, prefix in (("persona_id", "per"), ("content_id", "cnt"), ("live_session_id", "liv")):
                value = getattr(e, name)
                v.check(not value or is_id(value, prefix), f"{at}.{name}", f"a {prefix}_ id")
            v.check(not e.occurred_ms or e.occurred_ms >= now - rules.EVENT_MAX_AGE_MS, f"{at}.occurred_at",
                    "at most a day ago")
            v.check(e.client_event_id not in seen, f"{at}.client_event_id", "listed twice")
            seen.add(e.client_event_id)
        _invalid(v)
        accepted = duplicates = 0
        for e in events:
            fed = await self._feed(ctx.merchant_id, member_id, rules.event_time(e.occurred_ms, now), e.persona_id,
                                   e.content_id, e.live_session_id, rules.click_id(member_id, e))
            if fed:
                accepted += 1
            else:
                duplicates += 1
        return accepted, duplicates

    # ---- personal data ------------------------------------------------------------------

    async def export_member(self, merchant_id: str, member_id: str) -> dict:
        """Everything engagement holds of one member, for their data export."""
        views, likes = await self.reactions.export_member(merchant_id, member_id)
        comments, reports = await self.comments.export_member(merchant_id, member_id)
        codes, opens = await self.shares.export_member(merchant_id, member_id)
        return {"views": views, "likes": likes, "comments": comments, "comment_reports": reports,
                "share_codes": codes, "share_opens": opens}

    async def erase_member(self, merchant_id: str, member_id: str) -> None:
        """Erases a member: their views, likes, reports and share opens are deleted (the
        counts they moved stay, as anonymous totals, except likes, which are taken back);
        their comments lose author and text and leave the thread (REJECTED, "author
        erased"); their share codes keep working for orders but no longer name them.
        Safe to run again."""
        for content_id in await self.reactions.erase_member(merchant_id, member_id):
            await self.reactions.bump(merchant_id, content_id, "likes", -1)
        for content_id, before in await self.comments.erase_member(merchant_id, member_id):
            if before == rules.PUBLISHED:
                await self.reactions.bump(merchant_id, content_id, "comments", -1)
        await self.shares.erase_member(merchant_id, member_id)
