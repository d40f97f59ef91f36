"""Coupons: templates (OPERATOR), issuing (self-claim, staff grants, rewards), the member's
coupons at checkout, and the moves an order makes (lock, use, release, restore), plus
the expiry and claim-recovery jobs.

Issuing is exact under any concurrency because of the storage contract described in
services.member.application.coupon_ports: a unique slot per (template, member, n) for the
per-member limit and one conditional atomic update of the template's counter for the
total; nothing here counts and then inserts."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Callable, Sequence

from siyu_kit import context, paging, retry
from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import Conflict, FailedPrecondition, FieldViolation, InvalidArgument, NotFound, Violations
from siyu_kit.ids import new_id
from siyu_kit.protos import utcnow

from services.member.application.farm_guard import NewMemberGuard
from services.member.application.ports import AuditLog, MemberRepository
from services.member.application.coupon_ports import (CouponSettings, CouponTemplateRepository, GrantAudience,
                                                      GrantJobRepository, Inserted, MemberCouponRepository)

from services.member.domain import admin as audit_rules
from services.member.domain import coupons as rules
from services.member.domain.admin import AuditEntry
from services.member.domain.coupons import (CouponConfig, CouponLine, CouponState, CouponTemplate, Discount, GrantJob,
                                            GrantState, MemberCoupon, TemplateDraft, TemplateState, TemplateStats)

# A CLAIMING coupon or a claiming entry older than this is left over by a crash.
CLAIM_GRACE = timedelta(minutes=1)
MAX_GRANT_MEMBERS = 10_000
GRANT_CHUNK = 500
MAX_KEY = 128
MAX_CREATE_KEY = 64
MAX_PAGE = 100
# A lock outlives its order's payment deadline by this much before the sweep ends it, so
# a payment at the last second still finds the coupon locked.
LOCK_GRACE = timedelta(minutes=2)
MAX_LOCK = timedelta(days=1)
# After a claim finds a template sold out, this process answers its next claims SOLD_OUT
# for this long without reading the template (a grab's thousands of late presses then
# cost one read each, for their key). Its own staff changes and unit give-backs forget it
# at once; another replica's raise of the total is seen within this time.
SOLD_OUT_MEMO_S = 1.0


@dataclass(frozen=True)
class Issued:
    """The outcome of issuing one coupon: the coupon, or the reason word it was refused
    with; `repeated` when the same key had issued it before."""
    coupon: MemberCoupon | None
    refused: str = ""
    repeated: bool = False


@dataclass(frozen=True)
class CouponOption:
    """A coupon of the member as a cart sees it."""
    coupon: MemberCoupon
    discount: Discount

    @property
    def usable(self) -> bool:
        return self.discount.applies


@dataclass(frozen=True)
class Locked:
    coupon: MemberCoupon
    discount: Discount


@dataclass(frozen=True)
class Claimable:
    """A template the member may claim from now: what is left of it (None: unlimited)
    and how many more of its coupons this member may hold (0: they hold the most)."""
    template: CouponTemplate
    left: int | None
    member_left: int


class ListAudience:
    """A grant job's explicit list of member ids; the cursor is a position in it."""

    async def page(self, job: GrantJob, cursor: str, limit: int) -> tuple[list[str], str, bool]:
        start = int(cursor or 0)
        end = min(start + limit, len(job.member_ids))
        return list(job.member_ids[start:end]), str(end), end >= len(job.member_ids)


def _key(v: Violations, key: str, name: str = "idempotency_key") -> None:
    v.check(1 <= len(key) <= MAX_KEY, name, f"1..{MAX_KEY} characters")


class CouponUseCases:
    # The farm guard of new-member rewards (application/farm_guard.py), shared with the
    # referral's invitee coupon; set by the wiring, None where nobody keeps one.
    farm_guard: NewMemberGuard | None = None

    def __init__(self, templates: CouponTemplateRepository, coupons: MemberCouponRepository,
                 grants: GrantJobRepository, settings: CouponSettings,
                 members: MemberRepository | None = None, audiences: dict[str, GrantAudience] | None = None,
                 clock: Callable[[], datetime] = utcnow, audit: AuditLog | None = None):
        self.templates = templates
        self.coupons = coupons
        self.grants = grants
        self.settings = settings
        self.members = members
        self.audiences: dict[str, GrantAudience] = {"LIST": ListAudience(), **(audiences or {})}
        self.clock = clock
        self.audit = audit
        self._sold_out: dict[tuple[str, str], float] = {}  # (merchant, template) -> until (monotonic)

    # ---- the staff audit trail ----------------------------------------------------------------
    async def _audit(self, action: str, target_id: str, before: dict | None = None, after: dict | None = None) -> None:
        """Every staff change of templates, grants and settings, beside the other staff actions."""
        if self.audit is None:
            return
        ctx = context.current()
        await self.audit.add(AuditEntry(new_id("aud"), ctx.merchant_id, ctx.caller_kind, ctx.caller_id, action,
                                        target_id, {k: str(v) for k, v in (before or {}).items()},
                                        {k: str(v) for k, v in (after or {}).items()}, self.clock()))

    # ---- templates (OPERATOR) ------------------------------------------------------------------
    async def create_template(self, draft: TemplateDraft, idempotency_key: str) -> CouponTemplate:
        """A new DRAFT template; the same key again answers the same template, the same key
        with another design is IDEMPOTENCY_KEY_REUSED."""
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        problems = draft.problems()
        if not 1 <= len(idempotency_key) <= MAX_CREATE_KEY:
            problems.append(FieldViolation("idempotency_key", f"1..{MAX_CREATE_KEY} characters"))
        if problems:
            raise InvalidArgument("the request has invalid fields", reason="INVALID_FIELDS", violations=problems)
        existing = await self.templates.by_creation_key(ctx.merchant_id, idempotency_key)
        if existing is not None:
            return existing.replay(draft)
        template = CouponTemplate.create(new_id("cpt"), ctx.merchant_id, draft, self.clock(), idempotency_key)
        if not await self.templates.add(template):
            # A concurrent request with the same key stored its template first.
            existing = await self.templates.by_creation_key(ctx.merchant_id, idempotency_key)
            if existing is None:
                raise Conflict("the template is being created; try again", reason="CONCURRENT_UPDATE")
            return existing.replay(draft)
        await self._audit(audit_rules.COUPON_TEMPLATE_CREATED, template.id, after=_template_summary(template))
        return template

    async def get_template(self, template_id: str) -> CouponTemplate:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        return await self._template(ctx.merchant_id, template_id)

    async def list_templates(self, state: TemplateState | None, page_size: int,
                             page_token: str) -> tuple[list[CouponTemplate], str]:
        """Newest first; the token of the next page, empty on the last."""
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="coupon_templates", state=state.value if state else "")
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        return _paged(await self.templates.page(ctx.merchant_id, state, after, size + 1), size, fp)

    async def template_stats(self, template_id: str) -> TemplateStats:
        """Issued (the template's counter), locked, used, expired, discount given and the
        GMV of the paid orders that used it."""
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        template = await self._template(ctx.merchant_id, template_id)
        counted = await self.coupons.stats(ctx.merchant_id, template_id)
        return replace(counted, issued=template.issued)

    async def edit_template(self, template_id: str, draft: TemplateDraft) -> CouponTemplate:
        context.current().require_staff("OPERATOR")
        _raise_problems(draft)
        return await self._change(template_id, lambda t, now: t.edit(draft, now), audit_rules.COUPON_TEMPLATE_UPDATED,
                                  _template_summary)

    async def change_total(self, template_id: str, total: int | None) -> CouponTemplate:
        context.current().require_staff("OPERATOR")
        v = Violations()
        v.check(total is None or 1 <= total <= rules.MAX_TOTAL, "total", f"1..{rules.MAX_TOTAL}, or unlimited")
        v.raise_if_any()
        return await self._change(template_id, lambda t, now: t.change_total(total, now),
                                  audit_rules.COUPON_TEMPLATE_TOTAL_CHANGED, lambda t: {"total": t.total or 0})

    async def activate(self, template_id: str) -> CouponTemplate:
        return await self._move(template_id, TemplateState.ACTIVE)

    async def pause(self, template_id: str) -> CouponTemplate:
        return await self._move(template_id, TemplateState.PAUSED)

    async def end(self, template_id: str) -> CouponTemplate:
        return await self._move(template_id, TemplateState.ENDED)

    async def _move(self, template_id: str, target: TemplateState) -> CouponTemplate:
        return await self._change(template_id, lambda t, now: t.move(target, now),
                                  audit_rules.COUPON_TEMPLATE_STATE_CHANGED, lambda t: {"state": t.state.value})

    async def _change(self, template_id: str, change, action: str, summary) -> CouponTemplate:
        """One staff change of a template, retried on a lost race, and its audit entry when
        it changed anything."""
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        before: dict = {}

        async def attempt() -> tuple[CouponTemplate, bool]:
            template = await self._template(ctx.merchant_id, template_id)
            before.clear()
            before.update(summary(template))
            if change(template, self.clock()) is False:
                return template, False
            await self.templates.save(template)
            self._sold_out.pop((ctx.merchant_id, template_id), None)
            return template, True

        template, changed = await retry.on_conflict(attempt, gave_up="the coupon template changed meanwhile; try again")
        if changed:
            await self._audit(action, template_id, before, summary(template))
        return template

    async def _template(self, merchant_id: str, template_id: str) -> CouponTemplate:
        template = await self.templates.get(merchant_id, template_id)
        if template is None:
            raise NotFound(f"coupon template {template_id} not found")
        return template

    # ---- issuing ---------------------------------------------------------------------------------
    async def claim(self, template_id: str, idempotency_key: str) -> MemberCoupon:
        """The member claims one coupon; the same key again answers the same coupon."""
        return (await self.claim_once(template_id, idempotency_key))[0]

    async def claim_once(self, template_id: str, idempotency_key: str) -> tuple[MemberCoupon, bool]:
        """The claim, and whether the key had made it before."""
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        _key(v, idempotency_key)
        v.raise_if_any()
        key = f"claim:{template_id}:{member_id}:{idempotency_key}"
        issued = await self.issue(ctx.merchant_id, template_id, member_id, key, rules.CLAIM, "")
        if issued.coupon is None:
            raise FailedPrecondition(_REFUSALS.get(issued.refused, "the coupon cannot be claimed"),
                                     reason=issued.refused)
        return issued.coupon, issued.repeated

    async def issue(self, merchant_id: str, template_id: str, member_id: str, claim_key: str, source: str,
                    source_id: str) -> Issued:
        """Issues one coupon to a member, whoever asks: a claim, a grant, a reward (new
        member, referral, birthday: their handlers call this with a key of their cause).
        Exact under races (see coupon_ports); idempotent by `claim_key`."""
        existing = await self.coupons.by_claim_key(merchant_id, claim_key)
        if existing is not None:
            return _repeated(existing)
        if self._sold_out.get((merchant_id, template_id), 0.0) > time.monotonic():
            return Issued(None, rules.SOLD_OUT)
        template = await self.templates.get(merchant_id, template_id)
        if template is None:
            raise NotFound(f"coupon template {template_id} not found")
        now = self.clock()
        try:
            template.claimable(now, by_staff=source != rules.CLAIM)
        except FailedPrecondition as refused:
            if refused.reason == rules.SOLD_OUT:
                self._remember_sold_out(merchant_id, template_id)
            return Issued(None, refused.reason)
        coupon = await self._hold_slot(template, member_id, claim_key, source, source_id, now)
        if coupon is None:
            return Issued(None, rules.LIMIT_REACHED)
        if isinstance(coupon, _Found):
            return _repeated(coupon.coupon)
        if not await self.templates.take_unit(merchant_id, template.id, coupon.id, now):
            await self.coupons.drop_claiming(merchant_id, coupon.id)
            self._remember_sold_out(merchant_id, template.id)
            return Issued(None, rules.SOLD_OUT)
        confirmed = await self._confirm(merchant_id, coupon.id)
        if confirmed is None:
            # The recovery job took the slot back while this claim was slow: the unit goes back too.
            await self.templates.give_back_unit(merchant_id, template.id, coupon.id)
            self._sold_out.pop((merchant_id, template.id), None)
            raise Conflict("the claim was interrupted; try again", reason="CONCURRENT_UPDATE")
        await self.templates.settle_unit(merchant_id, template.id, coupon.id)
        return Issued(confirmed)

    def _remember_sold_out(self, merchant_id: str, template_id: str) -> None:
        self._sold_out[(merchant_id, template_id)] = time.monotonic() + SOLD_OUT_MEMO_S
        if len(self._sold_out) > 10_000:
            now = time.monotonic()
            self._sold_out = {k: until for k, until in self._sold_out.items() if until > now}

    async def _hold_slot(self, template: CouponTemplate, member_id: str, claim_key: str, source: str,
                         source_id: str, now: datetime) -> "MemberCoupon | _Found | None":
        """Inserts a CLAIMING coupon into the member's first free slot; None when every
        slot is held, _Found when a coupon with the key exists (a concurrent request with
        the same key). The unique key, not the read, decides who gets a slot."""
        taken = await self.coupons.slots_taken(template.merchant_id, template.id, member_id)
        for slot in range(1, template.per_member_limit + 1):
            if slot in taken:
                continue
            coupon = MemberCoupon.claiming(new_id("cpn"), template, member_id, slot, claim_key, source, source_id,
                                           now)
            inserted = await self.coupons.insert(coupon)
            if inserted == Inserted.OK:
                return coupon
            if inserted == Inserted.KEY_USED:
                found = await self.coupons.by_claim_key(template.merchant_id, claim_key)
                if found is not None:
                    return _Found(found)
        return None

    async def _confirm(self, merchant_id: str, coupon_id: str) -> MemberCoupon | None:
        async def attempt() -> MemberCoupon | None:
            coupon = await self.coupons.get(merchant_id, coupon_id)
            if coupon is None:
                return None
            if coupon.confirm(self.clock()):
                await self.coupons.save(coupon)
            return coupon

        return await retry.on_conflict(attempt, gave_up="the coupon changed while it was issued; try again")

    # ---- staff grants: a resumable, idempotent batch job ---------------------------------------------
    async def start_grant(self, template_id: str, member_ids: Sequence[str], idempotency_key: str,
                          segment_id: str = "") -> GrantJob:
        """An OPERATOR gives a template's coupons to members, or to a segment's members.
        The same key answers the same job; the job runs in chunks (run_grant) and can stop
        and resume anywhere."""
        ctx = context.current()
        staff_id = ctx.require_staff("OPERATOR")
        v = Violations()
        _key(v, idempotency_key)
        if segment_id:
            v.check(not member_ids, "member_ids", "member_ids or segment_id, not both")
        else:
            v.check(1 <= len(member_ids) <= MAX_GRANT_MEMBERS, "member_ids", f"1..{MAX_GRANT_MEMBERS} members")
        v.check(all(isinstance(m, str) and m.startswith("mem_") for m in member_ids), "member_ids", "mem_ ids")
        v.raise_if_any()
        wanted = tuple(dict.fromkeys(member_ids))  # once each, in the order given
        existing = await self.grants.by_key(ctx.merchant_id, idempotency_key)
        if existing is not None:
            return _same_grant(existing, template_id, wanted, segment_id)
        template = await self._template(ctx.merchant_id, template_id)
        if template.state not in (TemplateState.ACTIVE, TemplateState.PAUSED):
            raise FailedPrecondition(f"the template is {template.state.value}", reason=rules.NOT_CLAIMABLE)
        audience = "LIST"
        # ---- segments: the segment's audience, consenting members only for a marketing template ----
        if segment_id:
            segments = self.audiences.get(rules.SEGMENT_AUDIENCE)
            if segments is None or not await segments.exists(ctx.merchant_id, segment_id):
                raise NotFound(f"segment {segment_id} not found")
            audience = rules.segment_audience(segment_id, template.marketing)
        # ---- end of segments ----
        now = self.clock()
        job = GrantJob(id=new_id("cgj"), merchant_id=ctx.merchant_id, version=1, template_id=template_id,
                       key=idempotency_key, audience=audience, member_ids=wanted, created_by=staff_id,
                       created_at=now, updated_at=now)
        if not await self.grants.add(job):
            existing = await self.grants.by_key(ctx.merchant_id, idempotency_key)
            assert existing is not None
            return _same_grant(existing, template_id, wanted, segment_id)
        await self._audit(audit_rules.COUPON_GRANT_STARTED, job.id,
                          after={"template_id": template_id, "members": len(wanted)})
        return job

    async def grant_progress(self, job_id: str) -> GrantJob:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        job = await self.grants.get(ctx.merchant_id, job_id)
        if job is None:
            raise NotFound(f"grant {job_id} not found")
        return job

    async def run_grant(self, merchant_id: str, job_id: str, chunk: int = GRANT_CHUNK) -> GrantJob:
        """One chunk of a job (the job runner calls it until DONE). A chunk run twice, or
        by two runners at once, issues every coupon once: each member's key is the job's;
        the loser of the progress save leaves the cursor to the winner."""
        job = await self.grants.get(merchant_id, job_id)
        if job is None:
            raise NotFound(f"grant {job_id} not found")
        if job.state == GrantState.DONE:
            return job
        template = await self.templates.get(merchant_id, job.template_id)
        if template is not None and template.state == TemplateState.PAUSED:
            return job  # waits for the template to be resumed; an ended one skips the rest
        members, cursor, finished = await self.audiences[rules.audience_kind(job.audience)].page(job, job.cursor,
                                                                                                  chunk)
        granted, skipped = await self._grant_chunk(job, list(dict.fromkeys(members)))
        job.progress(cursor, granted, skipped, finished, self.clock())
        await self.grants.save(job)  # StaleVersion: another runner did this chunk; it resumes from the store
        return job

    async def _grant_chunk(self, job: GrantJob, member_ids: list[str]) -> tuple[int, dict[str, int]]:
        """Issues a chunk of a grant in a few writes, exact as `issue` one at a time is: the
        members' coupons of the template read at once; the new ones inserted CLAIMING in one
        unordered insert (each under the grant's key for the member, unique, so a chunk run
        again after a crash inserts nobody twice); the units of all of them taken by ONE
        conditional update of the counter (one at a time only when the total cannot take
        them all); confirmed and settled in one write each. Coupons a crash left CLAIMING
        under the grant's keys are finished the same way. Every member is counted once:
        granted (holds the grant's coupon now) or skipped by reason."""
        merchant_id = job.merchant_id
        skipped: dict[str, int] = {}

        def skip(word: str) -> None:
            skipped[word] = skipped.get(word, 0) + 1

        if self.members is not None and member_ids:
            known = await self.members.subjects(merchant_id, member_ids)
            for member_id in member_ids:
                if member_id not in known:
                    skip("NOT_FOUND")
            member_ids = [m for m in member_ids if m in known]
        if not member_ids:
            return 0, skipped
        template = await self._template(merchant_id, job.template_id)
        now = self.clock()
        held = await self.coupons.of_members(merchant_id, template.id, member_ids)
        granted, pending, new, issued_before = 0, [], [], []
        for member_id in member_ids:
            coupons = held.get(member_id, [])
            mine = next((c for c in coupons if c.claim_key == job.claim_key(member_id)), None)
            if mine is not None:
                if mine.state == CouponState.CLAIMING:
                    pending.append(mine)      # a crash left it half way: finished below
                else:
                    granted += 1
                    issued_before.append(mine.id)
                continue
            slots = {c.slot for c in coupons}
            slot = next((n for n in range(1, template.per_member_limit + 1) if n not in slots), None)
            if slot is None:
                skip(rules.LIMIT_REACHED)
                continue
            new.append(MemberCoupon.claiming(new_id("cpn"), template, member_id, slot, job.claim_key(member_id),
                                             rules.GRANT, job.id, now))
        if new:
            try:
                template.claimable(now, by_staff=True)
            except FailedPrecondition as refused:
                for _ in new:
                    skip(refused.reason)
                new = []
        if new:
            inserted = await self.coupons.insert_many(new)
            pending += [c for c in new if c.id in inserted]
            raced = len(inserted) < len(new)  # a claim took a slot meanwhile: the chunk runs again
        else:
            raced = False
        if issued_before and not pending:   # a crash before their units were settled
            entries = await self.templates.claiming_ids(merchant_id, template.id)
            await self.templates.settle_units(merchant_id, template.id, [c for c in issued_before if c in entries])
        if pending:
            entries = await self.templates.claiming_ids(merchant_id, template.id)
            untaken = [c for c in pending if c.id not in entries]
            if untaken and not await self.templates.take_units(merchant_id, template.id, [c.id for c in untaken], now):
                for coupon in untaken:     # the total cannot take them all: as many as it can
                    if not await self.templates.take_unit(merchant_id, template.id, coupon.id, now):
                        await self.coupons.drop_claiming(merchant_id, coupon.id)
                        pending.remove(coupon)
                        skip(rules.SOLD_OUT)
            for coupon in pending:
                coupon.confirm(now)
            confirmed = await self.coupons.confirm_many(pending)
            lost = [c for c in pending if c.id not in confirmed]
            for coupon in lost:             # the recovery job dropped it meanwhile: the unit goes back too
                await self.templates.give_back_unit(merchant_id, template.id, coupon.id)
            await self.templates.settle_units(merchant_id, template.id, [c.id for c in pending if c.id in confirmed]
                                              + [c for c in issued_before if c in entries])
            granted += len(confirmed)
            raced = raced or bool(lost)
        if raced:
            raise Conflict("the grant's chunk met a concurrent claim; it runs again", reason="CONCURRENT_UPDATE")
        return granted, skipped

    async def resume_grants(self, limit: int = 10, chunk: int = GRANT_CHUNK) -> int:
        """The job runner's pass: one chunk of each running job. Returns the chunks run."""
        runs = 0
        for job in await self.grants.running(limit):
            try:
                await self.run_grant(job.merchant_id, job.id, chunk)
                runs += 1
            except (StaleVersion, Conflict):
                continue  # another runner saved this chunk, or a claim is mid-way: next pass
        return runs

    # ---- the member's coupons ---------------------------------------------------------------------------
    async def my_coupons(self, states: tuple[CouponState, ...], page_size: int,
                         page_token: str) -> tuple[list[MemberCoupon], str]:
        """The member's coupons in those states (all they can see when none), newest first."""
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(all(s in rules.VISIBLE for s in states), "states", "AVAILABLE, LOCKED, USED, EXPIRED or REVOKED")
        size = paging.page_size(v, page_size)
        wanted = tuple(s for s in rules.VISIBLE if s in states or not states)
        fp = paging.fingerprint(kind="my_coupons", states=[s.value for s in wanted])
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        rows = await self.coupons.of_member(ctx.merchant_id, member_id, wanted, after, size + 1)
        return _paged(rows, size, fp)

    async def claimable(self, page_size: int, page_token: str) -> tuple[list[Claimable], str]:
        """The member's coupon centre: ACTIVE self-claim templates whose validity has not
        ended and that have coupons left, newest first, each with what is left and how many
        more this member may claim (0 once they hold as many as one member may)."""
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="claimable_coupons", member=member_id)
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        now = self.clock()
        shown: list[CouponTemplate] = []
        more = False
        # Templates out of their window or sold out are skipped, so a page may take several reads.
        while True:
            page = await self.templates.claimable_page(ctx.merchant_id, after, size + 1)
            for template in page:
                if template.in_claim_window(now):
                    if len(shown) == size:
                        more = True
                        break
                    shown.append(template)
            if more or len(page) < size + 1:
                break
            after = page[-1].id
        held = await self.coupons.held_counts(ctx.merchant_id, member_id, [t.id for t in shown])
        rows = [Claimable(t, t.left, max(t.per_member_limit - held.get(t.id, 0), 0)) for t in shown]
        return rows, paging.encode_cursor(fp, shown[-1].id) if more else ""

    async def for_cart(self, lines: Sequence[CouponLine], order_kind: str) -> list[CouponOption]:
        """Every AVAILABLE coupon of the member with what it would save on these lines, or
        the reason it does not apply; usable ones first, the best first."""
        ctx = context.current()
        member_id = ctx.require_member()
        _check_lines(lines, order_kind)
        now = self.clock()
        options: list[CouponOption] = []
        after = ""
        while True:
            page = await self.coupons.of_member(ctx.merchant_id, member_id, (CouponState.AVAILABLE,), after, MAX_PAGE)
            options += [CouponOption(c, c.applicability(lines, order_kind, now)) for c in page]
            if len(page) < MAX_PAGE:
                break
            after = page[-1].id
        return sorted(options, key=lambda o: (not o.usable, -o.discount.amount, o.coupon.valid_until, o.coupon.id))

    async def quote(self, member_id: str, coupon_id: str, lines: Sequence[CouponLine],
                    order_kind: str) -> Locked | None:
        """For the order's quote (a service call): what the chosen coupon does to these
        lines, refused with its reason when it does not apply; with no coupon id, the
        member's best coupon, or None when none applies. Nothing is locked."""
        ctx = context.current()
        merchant_id = ctx.require_merchant()
        _check_lines(lines, order_kind)
        now = self.clock()
        if coupon_id:
            coupon = await self._member_coupon(merchant_id, coupon_id, member_id)
            if coupon.state != CouponState.AVAILABLE:
                raise FailedPrecondition(f"the coupon is {coupon.state.value}", reason=rules.NOT_AVAILABLE)
            discount = coupon.applicability(lines, order_kind, now)
            if not discount.applies:
                raise FailedPrecondition("the coupon does not apply to this order",
                                         reason=discount.reason or rules.OUT_OF_SCOPE)
            return Locked(coupon, discount)
        candidates: list[tuple[MemberCoupon, Discount]] = []
        after = ""
        while True:
            page = await self.coupons.of_member(merchant_id, member_id, (CouponState.AVAILABLE,), after, MAX_PAGE)
            candidates += [(c, c.applicability(lines, order_kind, now)) for c in page]
            if len(page) < MAX_PAGE:
                break
            after = page[-1].id
        chosen = rules.best(candidates)
        return Locked(*chosen) if chosen else None

    async def reward(self, merchant_id: str, member_id: str, template_id: str, source: str, cause_id: str) -> Issued:
        """A coupon given for a cause: a new member's registration (NEW_MEMBER, the member
        id), a referral (REFERRAL, the referral id) or a birthday (BIRTHDAY, the year).
        Once per cause and template, whatever the replays of the event behind it."""
        if source not in (rules.NEW_MEMBER, rules.REFERRAL, rules.BIRTHDAY) or not cause_id:
            raise InvalidArgument("a reward names its source and cause", reason="INVALID_FIELDS")
        return await self.issue(merchant_id, template_id, member_id, f"{source.lower()}:{cause_id}:{template_id}:{member_id}",
                                source, cause_id)

    async def revoke(self, merchant_id: str, member_id: str, coupon_id: str) -> str:
        """Takes back a reward coupon while it is AVAILABLE: its state after ("REVOKED", or
        LOCKED / USED / EXPIRED as it stays), "" when the member has no such coupon. A
        repeat finds it REVOKED."""
        now = self.clock()

        async def attempt() -> str:
            coupon = await self.coupons.get(merchant_id, coupon_id)
            if coupon is None or coupon.member_id != member_id or coupon.state == CouponState.CLAIMING:
                return ""
            if coupon.revoke(now):
                await self.coupons.save(coupon)
            return coupon.state.value

        return await retry.on_conflict(attempt, gave_up="the coupon changed while revoking it; try again")

    async def new_member_gift(self, merchant_id: str, member_id: str) -> Issued | None:
        """A new member's registration: the coupon of the merchant's new-member template,
        once, whatever the replays of the registration event. None when the merchant
        gives none (or the template is gone), or when the farm guard knows the member's
        unionid or phone from another member (an erased one: re-registering earns no
        second gift); a refusal (sold out, paused) is the answer."""
        config = await self.settings.get(merchant_id)
        if not config.new_member_template_id:
            return None
        hashes = await self.farm_guard.hashes(merchant_id, member_id) if self.farm_guard is not None else []
        if self.farm_guard is not None and await self.farm_guard.farmed(merchant_id, member_id, hashes):
            return None
        try:
            issued = await self.reward(merchant_id, member_id, config.new_member_template_id, rules.NEW_MEMBER,
                                       member_id)
        except NotFound:
            return None
        if issued.coupon is not None and self.farm_guard is not None:
            await self.farm_guard.keep(merchant_id, hashes, member_id)
        return issued

    # ---- settings (OPERATOR) -----------------------------------------------------------------------
    async def get_settings(self) -> CouponConfig:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        return await self.settings.get(ctx.merchant_id)

    async def update_settings(self, config: CouponConfig) -> CouponConfig:
        """Replaces the merchant's settings; the new-member template must be the merchant's."""
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        if config.new_member_template_id and await self.templates.get(
                ctx.merchant_id, config.new_member_template_id) is None:
            raise InvalidArgument("the request has invalid fields", reason="INVALID_FIELDS", violations=[
                FieldViolation("settings.new_member_template_id", "no coupon template of the merchant")])
        before = await self.settings.get(ctx.merchant_id)
        await self.settings.put(ctx.merchant_id, config)
        await self._audit(audit_rules.COUPON_SETTINGS_UPDATED, audit_rules.COUPON_SETTINGS_TARGET,
                          _settings_summary(before), _settings_summary(config))
        return config

    # ---- what an order does with a coupon (the order service calls these) ------------------------------
    async def lock(self, coupon_id: str, member_id: str, order_id: str, lines: Sequence[CouponLine],
                   order_kind: str, pay_by: datetime) -> Locked:
        """Placing an order locks its coupon until the order's payment deadline `pay_by`
        (the sweep releases it a little after); the same order again answers the same
        lock. Two orders racing for one coupon: the version compare-and-set lets one win."""
        ctx = context.current()
        merchant_id = ctx.require_merchant()
        _check_lines(lines, order_kind)
        v = Violations()
        v.check(bool(order_id), "order_id", "required")
        v.check(self.clock() < pay_by <= self.clock() + MAX_LOCK, "pay_by", "a deadline within a day")
        v.raise_if_any()

        async def attempt() -> Locked:
            coupon = await self._member_coupon(merchant_id, coupon_id, member_id)
            now = self.clock()
            discount = coupon.applicability(lines, order_kind, now)
            if coupon.lock(order_id, discount, now, pay_by + LOCK_GRACE):
                await self.coupons.save(coupon)
            return Locked(coupon, discount)

        return await retry.on_conflict(attempt, gave_up="the coupon changed meanwhile; try again")

    async def use(self, coupon_id: str, order_id: str, order_amount: int | None = None) -> MemberCoupon:
        """The order was paid: its coupon is USED, with the order's amount for the
        template's GMV when given. An order whose lock the sweep ended still uses the
        coupon if nobody took it and it is valid; COUPON_IN_USE when another order holds
        or used it (the order service then settles the order without the coupon's backing)."""
        v = Violations()
        v.check(order_amount is None or 0 <= order_amount <= rules.MAX_AMOUNT, "order_amount",
                f"0..{rules.MAX_AMOUNT} fen")
        v.raise_if_any()
        return await self._order_move(coupon_id, order_id, lambda c, now: c.use(order_id, now, order_amount))

    async def release(self, coupon_id: str, order_id: str) -> MemberCoupon:
        """The unpaid order was cancelled or expired; for an order that does not hold the
        coupon, only a note that refuses its lock should it arrive later."""
        return await self._order_move(coupon_id, order_id, lambda c, now: c.release(order_id, now))

    async def restore(self, coupon_id: str, order_id: str) -> MemberCoupon:
        """The paid, unshipped order was refunded in full: the coupon comes back if the
        merchant's switch allows it and it is still valid."""
        ctx = context.current()
        allowed = await self.settings.return_on_refund(ctx.require_merchant())
        return await self._order_move(coupon_id, order_id, lambda c, now: allowed and c.restore(order_id, now))

    async def _order_move(self, coupon_id: str, order_id: str, move) -> MemberCoupon:
        ctx = context.current()
        merchant_id = ctx.require_merchant()
        v = Violations()
        v.check(bool(order_id), "order_id", "required")
        v.raise_if_any()

        async def attempt() -> MemberCoupon:
            coupon = await self._member_coupon(merchant_id, coupon_id)
            if move(coupon, self.clock()):
                await self.coupons.save(coupon)
            return coupon

        return await retry.on_conflict(attempt, gave_up="the coupon changed meanwhile; try again")

    async def _member_coupon(self, merchant_id: str, coupon_id: str, member_id: str = "") -> MemberCoupon:
        coupon = await self.coupons.get(merchant_id, coupon_id)
        if coupon is None or coupon.state == CouponState.CLAIMING or (member_id and coupon.member_id != member_id):
            raise NotFound(f"coupon {coupon_id} not found")
        return coupon

    # ---- jobs ----------------------------------------------------------------------------------------------
    async def expire_due(self, limit: int = 500) -> int:
        """The expiry job: AVAILABLE coupons past their validity become EXPIRED."""
        now = self.clock()
        expired = 0
        for coupon in await self.coupons.due_to_expire(now, "", limit):
            if coupon.expire(now):
                try:
                    await self.coupons.save(coupon)
                except StaleVersion:
                    continue  # locked by an order meanwhile: the next pass sees it again if due
                expired += 1
        return expired

    async def release_overdue_locks(self, limit: int = 500) -> int:
        """The lock sweep: coupons held past their order's payment deadline (the order was
        never stored after the lock, or its cancellation never arrived) come back."""
        now = self.clock()
        released = 0
        for coupon in await self.coupons.overdue_locks(now, limit):
            if coupon.release_overdue(now):
                try:
                    await self.coupons.save(coupon)
                except StaleVersion:
                    continue  # used or released meanwhile
                released += 1
        return released

    async def recover_claims(self, limit: int = 500) -> int:
        """Finishes or undoes claims a crash left half way (see coupon_ports). Returns
        how many it repaired."""
        before = self.clock() - CLAIM_GRACE
        repaired = 0
        for entry in await self.templates.claiming(before, limit):
            coupon = await self.coupons.get(entry.merchant_id, entry.coupon_id)
            if coupon is None:
                repaired += await self.templates.give_back_unit(entry.merchant_id, entry.template_id, entry.coupon_id)
                self._sold_out.pop((entry.merchant_id, entry.template_id), None)
                continue
            if await self._confirm(entry.merchant_id, coupon.id) is not None:
                await self.templates.settle_unit(entry.merchant_id, entry.template_id, entry.coupon_id)
                repaired += 1
        for coupon in await self.coupons.stale_claiming(before, limit):
            # Free its slot. Had a unit been taken for it meanwhile, its claiming entry finds
            # the coupon gone and gives the unit back (here on a later pass, or its claimer).
            repaired += await self.coupons.drop_claiming(coupon.merchant_id, coupon.id)
        return repaired


@dataclass(frozen=True)
class _Found:
    coupon: MemberCoupon


def _repeated(coupon: MemberCoupon) -> Issued:
    """A coupon issued before with the same key; one still CLAIMING is being issued by
    another request (or was left by a crash, which the recovery job finishes or undoes):
    only the request that inserted a coupon takes a unit for it, so this one waits."""
    if coupon.state == CouponState.CLAIMING:
        raise Conflict("this coupon is being issued; try again shortly", reason="CONCURRENT_UPDATE")
    return Issued(coupon, repeated=True)


_REFUSALS = {
    rules.SOLD_OUT: "every coupon has been claimed",
    rules.LIMIT_REACHED: "you hold as many of these coupons as one member may",
    rules.NOT_CLAIMABLE: "the coupon cannot be claimed now",
}


def _paged(rows: list, size: int, fp: str) -> tuple[list, str]:
    if len(rows) > size:
        rows = rows[:size]
        return rows, paging.encode_cursor(fp, rows[-1].id)
    return rows, ""


def _template_summary(t: CouponTemplate) -> dict:
    return {"name": t.name, "kind": t.rule.kind.value, "total": t.total or 0, "per_member_limit": t.per_member_limit,
            "state": t.state.value}


def _settings_summary(config: CouponConfig) -> dict:
    return {"return_on_refund": config.return_on_refund, "new_member_template_id": config.new_member_template_id}


def _raise_problems(draft: TemplateDraft) -> None:
    problems = draft.problems()
    if problems:
        raise InvalidArgument("the request has invalid fields", reason="INVALID_FIELDS", violations=problems)


def _same_grant(job: GrantJob, template_id: str, member_ids: tuple[str, ...], segment_id: str = "") -> GrantJob:
    if job.template_id != template_id or job.member_ids != member_ids \
            or rules.audience_segment(job.audience) != segment_id:
        raise FailedPrecondition("the key was used for another grant", reason=rules.GRANT_KEY_REUSED)
    return job


def _check_lines(lines: Sequence[CouponLine], order_kind: str) -> None:
    v = Violations()
    v.check(1 <= len(lines) <= 50, "lines", "1..50 lines")
    v.check(order_kind in rules.ORDER_KINDS, "order_kind", "one of " + ", ".join(rules.ORDER_KINDS))
    for i, line in enumerate(lines):
        v.check(1 <= line.quantity <= 9_999, f"lines[{i}].quantity", "1..9999")
        v.check(0 <= line.unit_price <= rules.MAX_AMOUNT, f"lines[{i}].unit_price", f"0..{rules.MAX_AMOUNT}")
        v.check(line.amount is None or 0 <= line.amount <= line.unit_price * line.quantity, f"lines[{i}].amount",
                "0..unit_price × quantity")
    v.raise_if_any()
