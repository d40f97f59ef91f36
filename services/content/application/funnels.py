"""Counting order events, viewers and clicks into funnels, and reading funnels back."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Awaitable, Callable

from siyu_kit import context
from siyu_kit.errors import FieldViolation, NotFound, PermissionDenied, Violations
from siyu_kit.ids import is_id
from siyu_kit.money import DEFAULT_CURRENCY

from services.content.application.contents import ContentUseCases
from services.content.application.personas import PersonaUseCases
from services.content.application.ports import FunnelRepository
from services.content.domain import funnels
from services.content.domain.contents import Content
from services.content.domain.funnels import Counters, DailyFunnel
from services.content.domain.guides import (require_funnel_dimension, require_manage, require_own_performance,
                                            sees_all)
from services.content.domain.personas import Persona

CHANNELS = ("MINI_PROGRAM", "H5", "LIVE")


@dataclass(frozen=True)
class OrderFact:
    """What an order event tells a funnel. `event_id` is the cause the change counts once
    for (the event id, or the refund id of a refund)."""
    event_id: str
    merchant_id: str
    occurred_at: datetime
    persona_id: str
    content_id: str
    live_session_id: str
    change: Counters
    currency: str = DEFAULT_CURRENCY
    channel: str = ""  # MINI_PROGRAM, H5, LIVE
    share_code: str = ""


@dataclass(frozen=True)
class Touch:
    """A member seeing or clicking something a funnel counts: the attribution it came
    with, who (`viewer_id`, a member id) and, for a click, the click's own id."""
    merchant_id: str
    viewer_id: str
    occurred_at: datetime
    persona_id: str = ""
    content_id: str = ""
    live_session_id: str = ""
    channel: str = ""
    share_code: str = ""
    click_id: str = ""


class FunnelUseCases:
    def __init__(self, repo: FunnelRepository, personas: PersonaUseCases, contents: ContentUseCases,
                 time_zone: str = funnels.DEFAULT_TIME_ZONE,
                 session_personas: Callable[[str], Awaitable[str]] | None = None):
        self.repo = repo
        self.personas = personas
        self.contents = contents
        # A live session's persona ("" when the merchant has no such session): how a
        # guide's right to a session's funnel is decided.
        self.session_personas = session_personas
        # The member service shares no merchant settings with us yet, so every merchant
        # counts its business days in the default zone.
        self.time_zone = time_zone
        # Counts a viewer (and click) for the guides of what was seen (guide performance);
        # set by the wiring, None: guides are not counted.
        self.guide_touches: Callable[[Touch], Awaitable[int]] | None = None

    # ---- counting (event consumers and the engagement endpoint) -------------------------

    async def record(self, fact: OrderFact) -> int:
        """Count an order event once per attributed funnel; returns how many buckets it
        changed now (0 for a replay)."""
        day = funnels.business_day(fact.occurred_at, self.time_zone)
        return await self._count(fact.merchant_id, (fact.persona_id, fact.content_id, fact.live_session_id,
                                                    fact.channel, fact.share_code),
                                 fact.event_id, day, fact.change, fact.currency or DEFAULT_CURRENCY)

    async def record_view(self, touch: Touch) -> int:
        """A member viewed: one unique viewer per member, day and funnel however often
        they come back; how many funnels counted them now."""
        day = funnels.business_day(touch.occurred_at, self.time_zone)
        if not funnels.valid_cause(touch.viewer_id):
            raise ValueError(f"viewer {touch.viewer_id!r} cannot name a count")
        changed = await self._count(touch.merchant_id, _refs(touch), f"v:{touch.viewer_id}", day, funnels.viewed(),
                                    DEFAULT_CURRENCY)
        await self.record_guide_view(touch)
        return changed

    async def record_guide_view(self, touch: Touch) -> int:
        """Only the guides' viewer (and click) counts of a touch: a share code's opener is
        its guides' viewer, while the code's own funnel counts clicks on the code."""
        return await self.guide_touches(touch) if self.guide_touches is not None else 0

    async def record_click(self, touch: Touch) -> int:
        """A product click, once per click id (the caller's, stable across retries)."""
        day = funnels.business_day(touch.occurred_at, self.time_zone)
        if not funnels.valid_cause(touch.click_id):
            raise ValueError(f"click {touch.click_id!r} cannot name a count")
        changed = await self._count(touch.merchant_id, _refs(touch), f"c:{touch.click_id}", day, funnels.clicked(),
                                    DEFAULT_CURRENCY)
        await self.record_guide_view(touch)
        return changed

    async def _count(self, merchant_id: str, refs: tuple[str, ...], cause: str, day: str, change: Counters,
                     currency: str) -> int:
        changed = 0
        for funnel in funnels.funnels_of(merchant_id, *refs):
            funnel.count(cause, day, change, currency)
            changed += await self.repo.save(funnel)
        return changed

    async def forget_member(self, merchant_id: str, member_id: str) -> int:
        """Erasure: the funnels (guides' included) keep counting the member's views and
        clicks as numbers, but no longer name them."""
        return await self.repo.forget_member(merchant_id, member_id)

    # ---- staff reads --------------------------------------------------------------------

    async def persona_funnel(self, persona_id: str) -> tuple[Persona, Counters, str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "GUIDE")
        persona = await self.personas.get(persona_id)
        require_manage(persona.guide_ids, ctx.caller_id, ctx.roles, what="persona's funnel")
        return (persona, *await self._total(funnels.PERSONA, persona.id))

    async def content_funnel(self, content_id: str) -> tuple[Content, Counters, str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "GUIDE")
        content = await self.contents.get_any(content_id)
        await self._require_persona_managed(content.fields.persona_id, "content's funnel")
        return (content, *await self._total(funnels.CONTENT, content.id))

    async def _total(self, dimension: str, ref_id: str) -> tuple[Counters, str]:
        """Lifetime counters of one funnel: the sum of its daily buckets."""
        merchant_id = context.current().require_merchant()
        funnel = await self.repo.load(merchant_id, dimension, ref_id)
        return funnel.counters, funnel.currency or DEFAULT_CURRENCY

    async def daily_report(self, dimension: str, ref_id: str, from_day: str, to_day: str) -> tuple[DailyFunnel, str]:
        """One funnel by day over [from_day, to_day] (the merchant's days), with the total."""
        ctx = context.current()
        merchant_id = ctx.require_merchant()
        ctx.require_staff("OPERATOR", "GUIDE")
        v = Violations()
        v.check(dimension in _REF_RULE, "dimension", "a funnel dimension")
        if dimension in _REF_RULE:
            v.check(_ref_ok(dimension, ref_id), "ref_id", _REF_RULE[dimension])
        start, end = funnels.parse_day(from_day), funnels.parse_day(to_day)
        v.check(start is not None, "from_day", "a date, yyyy-mm-dd")
        v.check(end is not None, "to_day", "a date, yyyy-mm-dd")
        if start is not None and end is not None and v.check(end >= start, "to_day", "on or after from_day"):
            v.check((end - start).days < funnels.MAX_REPORT_DAYS, "to_day",
                    f"at most {funnels.MAX_REPORT_DAYS} days after from_day")
        v.raise_if_any()
        await self._require_readable(merchant_id, dimension, ref_id)
        buckets, currency = await self.repo.days(merchant_id, dimension, ref_id, from_day, to_day)
        return funnels.daily(start, end, buckets), currency or DEFAULT_CURRENCY

    async def _require_readable(self, merchant_id: str, dimension: str, ref_id: str) -> None:
        """NotFound unless the funnel's subject is the merchant's; PermissionDenied when a
        guide asks for a funnel that is not of their personas (domain/guides.py)."""
        ctx = context.current()
        require_funnel_dimension(dimension, ctx.roles)
        if dimension == funnels.PERSONA:
            persona = await self.personas.get(ref_id, field="ref_id")
            require_manage(persona.guide_ids, ctx.caller_id, ctx.roles, what="persona's funnel")
        elif dimension == funnels.CONTENT:
            content = await self.contents.get_any(ref_id)
            await self._require_persona_managed(content.fields.persona_id, "content's funnel")
        elif dimension in (funnels.LIVE_SESSION, funnels.SHARE_CODE):
            # Sessions and share codes live elsewhere: a funnel nothing was counted in for
            # this merchant does not exist for it.
            if not await self.repo.any_counted(merchant_id, dimension, ref_id):
                raise NotFound("no such funnel", reason="FUNNEL_NOT_FOUND",
                               violations=[FieldViolation("ref_id", "nothing counted for it")])
            if dimension == funnels.LIVE_SESSION and not sees_all(ctx.roles):
                await self._require_session_managed(ref_id)
        elif dimension == funnels.GUIDE:
            # A guide reads their own numbers (zeros before anything counted); managers
            # read a guide something was counted for.
            require_own_performance(ref_id, ctx.caller_id, ctx.roles)
            if sees_all(ctx.roles) and not await self.repo.any_counted(merchant_id, dimension, ref_id):
                raise NotFound("no such funnel", reason="FUNNEL_NOT_FOUND",
                               violations=[FieldViolation("ref_id", "nothing counted for it")])

    async def _require_persona_managed(self, persona_id: str, what: str) -> None:
        ctx = context.current()
        if sees_all(ctx.roles):
            return
        persona = await self.personas.get(persona_id)
        require_manage(persona.guide_ids, ctx.caller_id, ctx.roles, what=what)

    async def _require_session_managed(self, live_session_id: str) -> None:
        persona_id = await self.session_personas(live_session_id) if self.session_personas else ""
        if not persona_id:
            raise PermissionDenied("this live session's funnel is not assigned to you", reason="PERSONA_NOT_ASSIGNED")
        await self._require_persona_managed(persona_id, "live session's funnel")

def _refs(touch: Touch) -> tuple[str, ...]:
    return (touch.persona_id, touch.content_id, touch.live_session_id, touch.channel, touch.share_code)


_REF_RULE = {funnels.PERSONA: "a persona id (per_…)", funnels.CONTENT: "a content id (cnt_…)",
             funnels.LIVE_SESSION: "a live session id (liv_…)", funnels.CHANNEL: "MINI_PROGRAM, H5 or LIVE",
             funnels.SHARE_CODE: "a share code: 1 to 32 of A-Z, a-z, 0-9, _ or -",
             funnels.GUIDE: "a guide's staff id (stf_…)"}


def _ref_ok(dimension: str, ref_id: str) -> bool:
    if dimension == funnels.PERSONA:
        return is_id(ref_id, "per")
    if dimension == funnels.CONTENT:
        return is_id(ref_id, "cnt")
    if dimension == funnels.LIVE_SESSION:
        return is_id(ref_id, "liv")
    if dimension == funnels.CHANNEL:
        return ref_id in CHANNELS
    if dimension == funnels.GUIDE:
        return is_id(ref_id, "stf")
    return bool(ref_id) and len(ref_id) <= 32 and funnels.attributed("", "", "", "", ref_id) != []
