"""Guide performance: counting orders, viewers and clicks for the guides they belong to
(services/content/domain/guide_performance.py says which), and the guide and store reads.

Counting reuses the funnels: a guide's numbers are the funnel GUIDE/<stf_ id>, a store's
STORE/<store>, counted into the same daily buckets with the same once-per-cause rule."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from siyu_kit import context, paging
from siyu_kit.errors import FieldViolation, NotFound, Violations
from siyu_kit.money import DEFAULT_CURRENCY

from services.content.application.funnels import Touch
from services.content.application.guide_performance_ports import (FunnelTotals, OrderCredits, SessionPersona,
                                                                   ShareCodeLookup)
from services.content.application.ports import ContentRepository, FunnelRepository, PersonaRepository
from services.content.domain import funnels
from services.content.domain import guide_performance as rules
from services.content.domain.funnels import Counters, DailyFunnel
from services.content.domain.guide_performance import OrderCredit

_STORE_POSITION = rules.STORE_RE
STORE_RULE = "1 to 32 characters of A-Z, a-z, 0-9, _ or -, without _stf_"
_GUIDE_POSITION = paging.ID


@dataclass(frozen=True)
class OrderSeen:
    """One order event as guide performance needs it. `cause`: "placed:<order>",
    "paid:<order>" or the refund id; `occurred_at`: the instant whose business day it
    counts on (the order's creation for placed, its payment for paid and refunds)."""
    merchant_id: str
    order_id: str
    cause: str
    occurred_at: datetime
    change: Counters
    currency: str = DEFAULT_CURRENCY
    persona_id: str = ""
    content_id: str = ""
    live_session_id: str = ""
    share_code: str = ""
    referral_guide: str = ""
    store: str = ""


class GuidePerformanceUseCases:
    def __init__(self, repo: FunnelRepository, totals: FunnelTotals, credits: OrderCredits,
                 personas: PersonaRepository, contents: ContentRepository, shares: ShareCodeLookup,
                 session_persona: SessionPersona | None = None, time_zone: str = funnels.DEFAULT_TIME_ZONE):
        self.repo = repo
        self.totals = totals
        self.credits = credits
        self.personas = personas
        self.contents = contents
        self.shares = shares
        self.session_persona = session_persona
        self.time_zone = time_zone

    # ---- who ------------------------------------------------------------------------------

    async def _persona_guides(self, merchant_id: str, persona_id: str, content_id: str,
                              live_session_id: str, share_persona: str = "") -> tuple[str, ...]:
        """The guides of the persona an attribution names: the persona, else the content's,
        else the live session's, else the share code's."""
        if not persona_id and content_id:
            content = await self.contents.get(merchant_id, content_id)
            persona_id = content.fields.persona_id if content else ""
        if not persona_id and live_session_id and self.session_persona is not None:
            persona_id = await self.session_persona(merchant_id, live_session_id)
        persona_id = persona_id or share_persona
        if not persona_id:
            return ()
        persona = await self.personas.get(merchant_id, persona_id)
        return persona.guide_ids if persona else ()

    async def _share(self, merchant_id: str, code: str) -> tuple[str, str]:
        """(staff sharer, persona) of a share code; empty when none."""
        share = await self.shares.get(merchant_id, code) if code else None
        if share is None:
            return "", ""
        return (share.sharer_id if share.sharer_kind == "staff" else ""), share.target.persona_id

    async def _credit(self, seen: OrderSeen) -> OrderCredit:
        stored = await self.credits.get(seen.merchant_id, seen.order_id)
        if stored is not None:
            return stored
        sharer, share_persona = await self._share(seen.merchant_id, seen.share_code)
        persona_guides = await self._persona_guides(seen.merchant_id, seen.persona_id, seen.content_id,
                                                    seen.live_session_id, share_persona)
        return await self.credits.add(seen.merchant_id, rules.credit(seen.order_id, seen.referral_guide,
                                                                     persona_guides, sharer, seen.store))

    # ---- counting -------------------------------------------------------------------------

    async def record_order(self, seen: OrderSeen) -> int:
        """Counts an order event once for each guide (and store) of the order; how many
        counts were added now (0 for a replay)."""
        credit = await self._credit(seen)
        day = funnels.business_day(seen.occurred_at, self.time_zone)
        changed = 0
        for funnel in credit.funnels(seen.merchant_id):
            funnel.count(seen.cause, day, seen.change, seen.currency or DEFAULT_CURRENCY)
            changed += await self.repo.save(funnel)
        return changed

    async def record_touch(self, touch: Touch) -> int:
        """A member viewing (or clicking, with a click id) what guides run: a unique viewer
        of each of those guides once per day, and the click once by its id."""
        sharer, share_persona = await self._share(touch.merchant_id, touch.share_code)
        persona_guides = await self._persona_guides(touch.merchant_id, touch.persona_id, touch.content_id,
                                                    touch.live_session_id, share_persona)
        guides = rules.guides_of("", persona_guides, sharer)
        if not guides or not funnels.valid_cause(touch.viewer_id):
            return 0
        day = funnels.business_day(touch.occurred_at, self.time_zone)
        changed = 0
        for guide_id in guides:
            funnel = funnels.Funnel.of(touch.merchant_id, funnels.GUIDE, guide_id)
            funnel.count(f"v:{touch.viewer_id}", day, funnels.viewed(), DEFAULT_CURRENCY)
            if touch.click_id and funnels.valid_cause(touch.click_id):
                funnel.count(f"c:{touch.click_id}", day, funnels.clicked(), DEFAULT_CURRENCY)
            changed += await self.repo.save(funnel)
        return changed

    # ---- reads ----------------------------------------------------------------------------

    def _range(self, v: Violations, from_day: str, to_day: str):
        start, end = funnels.parse_day(from_day), funnels.parse_day(to_day)
        v.check(start is not None, "from_day", "a date, yyyy-mm-dd")
        v.check(end is not None, "to_day", "a date, yyyy-mm-dd")
        if start is not None and end is not None and v.check(end >= start, "to_day", "on or after from_day"):
            v.check((end - start).days < funnels.MAX_REPORT_DAYS, "to_day",
                    f"at most {funnels.MAX_REPORT_DAYS} days after from_day")
        return start, end

    async def my_performance(self, from_day: str, to_day: str) -> tuple[str, DailyFunnel, str]:
        """The calling guide's numbers by day, with the total."""
        ctx = context.current()
        guide_id = ctx.require_staff("GUIDE")
        v = Violations()
        start, end = self._range(v, from_day, to_day)
        v.raise_if_any()
        buckets, currency = await self.repo.days(ctx.merchant_id, funnels.GUIDE, guide_id, from_day, to_day)
        return guide_id, funnels.daily(start, end, buckets), currency or DEFAULT_CURRENCY

    async def store_performance(self, store: str, from_day: str, to_day: str) -> tuple[DailyFunnel, str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(bool(rules.store_key(store)), "store", STORE_RULE)
        start, end = self._range(v, from_day, to_day)
        v.raise_if_any()
        await self._require_store(ctx.merchant_id, store)
        buckets, currency = await self.repo.days(ctx.merchant_id, funnels.STORE, store, from_day, to_day)
        return funnels.daily(start, end, buckets), currency or DEFAULT_CURRENCY

    async def _require_store(self, merchant_id: str, store: str) -> None:
        if not await self.repo.any_counted(merchant_id, funnels.STORE, store):
            raise NotFound("nothing was counted for this store", reason="FUNNEL_NOT_FOUND",
                           violations=[FieldViolation("store", "nothing counted for it")])

    async def list_guides(self, from_day: str, to_day: str, store: str, size: int,
                          token: str) -> tuple[list[tuple[str, Counters]], str, str]:
        """(guide id, totals) of every guide counted in the range, by guide id; with a
        store, their numbers in that store. Also the next page's token and the currency."""
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(not store or bool(rules.store_key(store)), "store", STORE_RULE)
        self._range(v, from_day, to_day)
        size = _page_size(v, size)
        fp = paging.fingerprint(listing="guide-performance", from_day=from_day, to_day=to_day, store=store)
        after = paging.decode_cursor(v, token, fp, _GUIDE_POSITION)
        v.raise_if_any()
        if not store:
            rows, currency = await self.totals.totals_page(ctx.merchant_id, funnels.GUIDE, from_day, to_day, after,
                                                           size + 1)
        else:
            await self._require_store(ctx.merchant_id, store)
            prefix = rules.guide_store_ref(store, "stf_")
            found, currency = await self.totals.totals_page(
                ctx.merchant_id, funnels.GUIDE_STORE, from_day, to_day,
                rules.guide_store_ref(store, after) if after else "", size + 1, ref_prefix=prefix)
            rows = [(rules.split_guide_store(ref)[1], c) for ref, c in found]
        page, next_token = paging.next_page(rows, size, fp, position=lambda row: row[0])
        return page, next_token, currency or DEFAULT_CURRENCY

    async def list_stores(self, from_day: str, to_day: str, size: int,
                          token: str) -> tuple[list[tuple[str, Counters]], str, str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        self._range(v, from_day, to_day)
        size = _page_size(v, size)
        fp = paging.fingerprint(listing="store-performance", from_day=from_day, to_day=to_day)
        after = paging.decode_cursor(v, token, fp, _STORE_POSITION)
        v.raise_if_any()
        rows, currency = await self.totals.totals_page(ctx.merchant_id, funnels.STORE, from_day, to_day, after,
                                                       size + 1)
        page, next_token = paging.next_page(rows, size, fp, position=lambda row: row[0])
        return page, next_token, currency or DEFAULT_CURRENCY


def _page_size(v: Violations, size: int) -> int:
    v.check(0 <= size <= rules.MAX_PAGE, "page_size", f"1 to {rules.MAX_PAGE}, or 0 for {paging.DEFAULT_PAGE_SIZE}")
    return size or paging.DEFAULT_PAGE_SIZE

