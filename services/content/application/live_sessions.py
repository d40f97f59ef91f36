"""Live sessions: staff schedule, change, run and pin; viewers open the room and like it;
the product screen and the persona page list upcoming sessions; the order service asks
which live prices an attributed order gets. The like total reaches the room through the
announcer job (LikesAnnouncer), at most once a second per session."""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace
from typing import Any, Sequence

from siyu_kit import context, paging, retry
from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import AlreadyExists, Conflict, FailedPrecondition, FieldViolation, NotFound, PermissionDenied, Violations
from siyu_kit.ids import is_id, new_id

from services.content.application.clock import Clock, now_ms
from services.content.application.feed_ports import ProductCards
from services.content.application.live_session_ports import LikesDue, LineUpCatalog, LiveLikes, LiveSessionRepository
from services.content.application.live_viewer_ports import LiveViewerStats, ViewerFigures
from services.content.application.ports import PersonaRepository
from services.content.domain import live_sessions as rules
from services.content.domain.guides import require_manage, sees_all
from services.content.domain.live_sessions import LineUpItem, LiveSession, SessionFields
from services.content.domain.personas import Persona

MAX_KEY = 64
# A guide's sessions are those of the personas assigned to them (at most this many read).
GUIDE_PERSONAS_READ = 100
# Upcoming sessions shown on a persona page or a product screen.
UPCOMING_SHOWN = 20
_POSITION = re.compile(r"^[0-9]{15}:liv_[0-9A-HJKMNP-TV-Z]{26}$")
NO_FIGURES = ViewerFigures()


def schedule_key(session: LiveSession) -> str:
    """Where a session sits in the staff list: by scheduled time, then id."""
    return f"{session.fields.scheduled_ms:015d}:{session.id}"


def _not_found(field: str = "live_session_id") -> NotFound:
    return NotFound("no such live session", reason="LIVE_SESSION_NOT_FOUND",
                    violations=[FieldViolation(field, "no such live session")])


def _require_session_id(session_id: str, field: str = "live_session_id") -> None:
    v = Violations()
    v.check(is_id(session_id, "liv"), field, "a liv_ id")
    v.raise_if_any()


@dataclass(frozen=True)
class Shown:
    """A session and its viewer figures, as responses show it."""
    session: LiveSession
    figures: ViewerFigures = NO_FIGURES


@dataclass(frozen=True)
class Room:
    shown: Shown
    persona: Persona | None
    products: list[Any]
    flash_sales: list[Any]
    prices_apply: bool


@dataclass(frozen=True)
class LivePricesNow:
    """CheckAttribution's live-session part."""
    found: bool
    prices: tuple[LineUpItem, ...] = ()
    session_id: str = ""


class LiveSessions:
    def __init__(self, sessions: LiveSessionRepository, personas: PersonaRepository, catalog: LineUpCatalog,
                 cards: ProductCards, viewers: LiveViewerStats, likes: LiveLikes, clock: Clock = now_ms,
                 grace_minutes: int = rules.DEFAULT_GRACE_MINUTES):
        self.sessions = sessions
        self.personas = personas
        self.catalog = catalog
        self.cards = cards
        self.viewers = viewers
        self.likes = likes
        self.clock = clock
        # The merchant's default grace after a session ends (a session's 0 means this).
        self.grace_minutes = grace_minutes

    # ---- staff ----------------------------------------------------------------------------

    async def create(self, fields: SessionFields, idempotency_key: str) -> Shown:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "GUIDE")
        merchant_id = ctx.merchant_id
        fields = fields.normalized()
        v = Violations()
        rules.check_fields(fields, v)
        v.check(1 <= len(idempotency_key) <= MAX_KEY, "idempotency_key", f"1 to {MAX_KEY} characters")
        v.raise_if_any()
        persona = await self.personas.get(merchant_id, fields.persona_id)
        if persona is None:
            raise NotFound("no such persona", violations=[FieldViolation("persona_id", "no such persona")])
        require_manage(persona.guide_ids, ctx.caller_id, ctx.roles)
        existing = await self.sessions.by_key(merchant_id, idempotency_key)
        if existing is not None:
            # A replay answers with the session the key made; the key never reaches another persona's.
            if existing.fields.persona_id != fields.persona_id:
                raise AlreadyExists("the idempotency key was used for another persona's session; use a new key",
                                    reason="IDEMPOTENCY_KEY_REUSED")
            return await self._shown(existing)
        fields = replace(fields, line_up=await self._priced(fields.line_up))
        session = LiveSession.schedule(new_id("liv"), merchant_id, fields, idempotency_key, self.clock())
        if not await self.sessions.add(session):
            # The same key won a race: that session is the answer to both.
            session = await self.sessions.by_key(merchant_id, idempotency_key)
        return await self._shown(session)

    async def update(self, session_id: str, expected_version: int, fields: SessionFields) -> Shown:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "GUIDE")
        v = Violations()
        v.check(is_id(session_id, "liv"), "live_session_id", "a liv_ id")
        v.check(expected_version >= 1, "expected_version", "the version the change was made on (1 or more)")
        fields = fields.normalized()
        rules.check_fields(fields, v, with_persona=False)  # the persona never changes
        v.raise_if_any()
        session = await self._managed(session_id)
        if session.version != expected_version:
            raise Conflict(f"the session is at version {session.version}, not {expected_version}",
                           reason="VERSION_CONFLICT")
        fields = replace(fields, persona_id=session.fields.persona_id, line_up=await self._priced(fields.line_up))
        if session.revise(fields, self.clock()):
            await retry_save(self.sessions, session)
        return await self._shown(session)

    async def change_state(self, session_id: str, state: str) -> tuple[Shown, bool]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "GUIDE")
        v = Violations()
        v.check(is_id(session_id, "liv"), "live_session_id", "a liv_ id")
        v.check(state in (rules.LIVE, rules.ENDED, rules.CANCELLED), "state", "LIVE, ENDED or CANCELLED")
        v.raise_if_any()
        await self._managed(session_id)

        async def attempt() -> tuple[LiveSession, bool]:
            session = await self._get(session_id)
            changed = session.change_state(state, self.clock())
            if changed:
                await self.sessions.save(session)
            return session, changed

        session, changed = await retry.on_conflict(attempt, gave_up="the session changed meanwhile; try again",
                                                   reason="VERSION_CONFLICT")
        return await self._shown(session), changed

    async def pin(self, session_id: str, sku_id: str) -> tuple[Shown, bool]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "GUIDE")
        v = Violations()
        v.check(is_id(session_id, "liv"), "live_session_id", "a liv_ id")
        v.check(not sku_id or is_id(sku_id, "sku"), "sku_id", "empty or a sku_ id")
        v.raise_if_any()
        await self._managed(session_id)

        async def attempt() -> tuple[LiveSession, bool]:
            session = await self._get(session_id)
            changed = session.pin(sku_id, self.clock())
            if changed:
                await self.sessions.save(session)
            return session, changed

        session, changed = await retry.on_conflict(attempt, gave_up="the session changed meanwhile; try again",
                                                   reason="VERSION_CONFLICT")
        return await self._shown(session), changed

    async def page(self, persona_id: str, state: str, page_size: int, page_token: str) -> tuple[list[Shown], str]:
        """The merchant's sessions, newest scheduled first; a guide sees only those of the
        personas assigned to them (PERSONA_NOT_ASSIGNED when asking for another's)."""
        ctx = context.current()
        ctx.require_staff("OPERATOR", "GUIDE")
        v = Violations()
        v.check(not persona_id or is_id(persona_id, "per"), "persona_id", "empty or a per_ id")
        v.check(not state or state in rules.STATES, "state", "a live session state")
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="live-sessions", persona_id=persona_id, state=state)
        below = paging.decode_cursor(v, page_token, fp, _POSITION)
        v.raise_if_any()
        persona_ids: list[str] | None = [persona_id] if persona_id else None
        if not sees_all(ctx.roles):
            mine = [p.id for p in await self.personas.page(ctx.merchant_id, "", GUIDE_PERSONAS_READ,
                                                           guide_id=ctx.caller_id)]
            if persona_id and persona_id not in mine:
                raise PermissionDenied("this persona is not assigned to you", reason="PERSONA_NOT_ASSIGNED")
            persona_ids = persona_ids or mine
            if not persona_ids:
                return [], ""
        rows = await self.sessions.page(ctx.merchant_id, persona_ids, state, below, size + 1)
        rows, token = paging.next_page(rows, size, fp, position=schedule_key)
        return await self._shown_all(rows), token

    # ---- viewers ---------------------------------------------------------------------------

    async def room(self, session_id: str) -> Room:
        """The room as a viewer opens it: the session, its persona, the line-up's products
        with the caller's price, and the flash sales bound to it."""
        ctx = context.current()
        ctx.require_merchant()
        _require_session_id(session_id)
        session = await self._get(session_id)
        persona, products, flash_sales, shown = await asyncio.gather(
            self.personas.get(ctx.merchant_id, session.fields.persona_id),
            self.cards.shown(list(session.fields.product_ids)) if session.fields.line_up else _nothing(),
            self.catalog.flash_sales(session.id), self._shown(session))
        return Room(shown, persona, products, flash_sales,
                    session.prices_apply(self.clock(), self.grace_minutes))

    async def like(self, session_id: str, taps: int, idempotency_key: str) -> int:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(is_id(session_id, "liv"), "live_session_id", "a liv_ id")
        v.check(1 <= taps <= rules.MAX_TAPS, "taps", f"1 to {rules.MAX_TAPS}")
        v.check(1 <= len(idempotency_key) <= MAX_KEY, "idempotency_key", f"1 to {MAX_KEY} characters")
        v.raise_if_any()
        session = await self._get(session_id)
        rules.require_likeable(session.state)
        likes = await self.likes.like(ctx.merchant_id, session_id, member_id, idempotency_key, taps, self.clock())
        if likes is None:  # it ended between the read and the count
            raise FailedPrecondition("likes count only while a session is LIVE", reason="LIVE_SESSION_STATE")
        return likes

    async def of_product(self, product_id: str) -> list[tuple[Shown, tuple[LineUpItem, ...]]]:
        """LIVE and SCHEDULED sessions whose line-up has the product, soonest first, each
        with the product's SKUs in it."""
        ctx = context.current()
        ctx.require_merchant()
        v = Violations()
        v.check(is_id(product_id, "prd"), "product_id", "a prd_ id")
        v.raise_if_any()
        sessions = await self.sessions.of_product(ctx.merchant_id, product_id, rules.UPCOMING, UPCOMING_SHOWN)
        shown = await self._shown_all(sessions)
        return [(s, s.session.items_of_product(product_id)) for s in shown]

    async def upcoming_ids(self, persona_id: str) -> list[str]:
        """The persona page's sessions: SCHEDULED and LIVE, soonest first."""
        merchant_id = context.current().require_merchant()
        if not is_id(persona_id, "per"):
            return []
        return [s.id for s in await self.sessions.of_persona(merchant_id, persona_id, rules.UPCOMING,
                                                             UPCOMING_SHOWN)]

    # ---- the order service ---------------------------------------------------------------

    async def prices_now(self, named_id: str, carried_id: str = "") -> LivePricesNow:
        """The live prices an order attributed to a session gets now: the session it names
        (found false when that is not the merchant's), else the one its share code carries."""
        merchant_id = context.current().require_merchant()
        if named_id:
            _require_session_id(named_id)
        session_id = named_id or carried_id
        session = await self.sessions.get(merchant_id, session_id) if is_id(session_id, "liv") else None
        found = session is not None or not named_id
        if session is None:
            return LivePricesNow(found)
        prices = session.live_prices(self.clock(), self.grace_minutes)
        return LivePricesNow(found, prices, session.id if prices else "")

    # ---- helpers ----------------------------------------------------------------------------

    async def _get(self, session_id: str) -> LiveSession:
        session = await self.sessions.get(context.current().merchant_id, session_id)
        if session is None:
            raise _not_found()
        return session

    async def _managed(self, session_id: str) -> LiveSession:
        """The session, when the caller may run it: OPERATOR any, a GUIDE their personas'."""
        ctx = context.current()
        session = await self._get(session_id)
        persona = await self.personas.get(ctx.merchant_id, session.fields.persona_id)
        require_manage(persona.guide_ids if persona else (), ctx.caller_id, ctx.roles)
        return session

    async def _priced(self, line_up: tuple[LineUpItem, ...]) -> tuple[LineUpItem, ...]:
        if not line_up:
            return ()
        v = Violations()
        priced = rules.priced_line_up(line_up, await self.catalog.sku_prices([i.sku_id for i in line_up]), v)
        v.raise_if_any("the line-up has invalid items")
        return priced

    async def _shown(self, session: LiveSession) -> Shown:
        return (await self._shown_all([session]))[0]

    async def _shown_all(self, sessions: Sequence[LiveSession]) -> list[Shown]:
        if not sessions:
            return []
        figures = await self.viewers.figures(sessions[0].merchant_id, [s.id for s in sessions])
        return [Shown(s, figures.get(s.id, NO_FIGURES)) for s in sessions]


async def _nothing() -> list:
    return []


async def retry_save(sessions: LiveSessionRepository, session: LiveSession) -> None:
    """A staff edit on the version staff saw: a lost race is the caller's conflict (they
    reload and decide again), never a silent overwrite."""
    try:
        await sessions.save(session)
    except StaleVersion as lost:
        raise Conflict("the session changed meanwhile; reload it", reason="VERSION_CONFLICT") from lost


class LikesAnnouncer:
    """The job that tells each room its like total: at most once a second per session and
    never lost. Safe with every replica running it: each announcement is one conditional
    update on the total announced before (LiveLikes.announce); the loser skips."""

    def __init__(self, likes: LiveLikes, clock: Clock = now_ms, batch: int = 200):
        self.likes = likes
        self.clock = clock
        self.batch = batch

    async def announce_due(self) -> int:
        now = self.clock()
        count = 0
        due: list[LikesDue] = await self.likes.due(self.batch)
        for d in due:
            if rules.likes_to_announce(d.likes, d.announced, d.announced_ms, now) and await self.likes.announce(d, now):
                count += 1
        return count
