"""The points economy: earning from paid orders, unfreezing after the after-sales window,
holds for checkout, refunds, expiry, staff adjustments and the member centre's reads.

Every movement is decided by the account (domain/points_account.py) from the account as
read, and written by the ledger port as one conditional update; a lost guard means
another movement came first, so the account is read and the movement decided again.
Each movement's cause is applied once: a replay (a second delivery, a retried call)
finds its cause in the account and answers what the first did.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Callable

from services.member.application.ports import AuditLog, FactsMarks, MemberRepository, MerchantRepository, PointsLedger
from services.member.domain import tiers
from services.member.domain import points_settings as terms_rules
from services.member.domain import admin as audit_rules
from services.member.domain.admin import AuditEntry
from services.member.domain.config import DEFAULT_TIME_ZONE, MerchantConfig
from services.member.domain.points import PointsEntry, earn_for_payment, frozen_until
from services.member.domain.points_account import (ADJUST, EARN, HOLD, RELEASE, REVERSE, SPEND, UNFREEZE,
                                                   Cause, Expiring, Movement, PointsBook, Refused, entry_for,
                                                   expiring, growth_to_reverse, ledger_problems, lot_expired, lot_expires_at, lot_key,
                                                   unfreeze_at)
from services.member.domain.points_settings import PointsSettings
from siyu_kit import context, paging
from siyu_kit.aggregate import StaleVersion
from siyu_kit import logging as slog
from siyu_kit.errors import Conflict, FailedPrecondition, NotFound, Unavailable, Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.protos import epoch_ms, utcnow

log = slog.get("siyu.member.points")

# A movement that keeps losing its guards to concurrent movements of the same member is
# decided again this many times before the caller is told to try again (ABORTED).
ATTEMPTS = 8
# A due time far in the future: nothing is due.
NOTHING_DUE_MS = 2**62
# Accounts one pass of a job takes at most.
JOB_BATCH = 100
HISTORY_SHOWN = 100
POINTS_SETTINGS_UPDATED = audit_rules.POINTS_SETTINGS_UPDATED
# A changed points setting reaches holds and quotes of other processes at most this late.
CONFIG_TTL_S = 5.0


@dataclass(frozen=True)
class PaidOrder:
    """What a paid order tells the points ledger."""
    event_id: str
    merchant_id: str
    order_id: str
    member_id: str
    payable: int  # minor units
    paid_at: datetime
    channel: str = ""


@dataclass(frozen=True)
class CompletedOrder:
    """An order whose receipt was confirmed: its after-sales window starts."""
    merchant_id: str
    order_id: str
    member_id: str
    completed_at: datetime


class UnknownMember(Exception):
    """The paid order names a member this merchant does not have."""


class NotEarnedYet(Exception):
    """The order completed before its payment's points were written: try again later."""


@dataclass(frozen=True)
class Terms:
    config: MerchantConfig
    time_zone: str

    @property
    def settings(self) -> PointsSettings:
        return self.config.points


@dataclass(frozen=True)
class Applied:
    """A movement's outcome: the entry written now, or None with applied=False when the
    cause had been applied (or there was nothing to do)."""
    entry: PointsEntry | None
    applied: bool
    book: PointsBook


@dataclass(frozen=True)
class PointsSummary:
    member_id: str
    balance: int
    available: int
    frozen: int
    held: int
    owed: int
    expiring: list[Expiring]


@dataclass(frozen=True)
class PointsTerms:
    settings: PointsSettings
    available: int
    max_usable: int
    max_discount: int


def _refused(error: Refused) -> FailedPrecondition:
    return FailedPrecondition(error.message, reason=error.reason)


class PointsMoves:
    """What every points use case shares: the merchant's terms and the move loop."""

    # Where a movement that changed growth marks the member's segment facts (their tier
    # follows growth); set by the wiring, None where nothing keeps facts.
    facts: FactsMarks | None = None

    def __init__(self, merchants: MerchantRepository, ledger: PointsLedger, clock: Callable[[], datetime] = utcnow,
                 config_ttl_s: float = CONFIG_TTL_S):
        self.merchants = merchants
        self.ledger = ledger
        self.clock = clock
        self._ttl_s = config_ttl_s
        self._terms: dict[str, tuple[float, Terms]] = {}

    async def terms(self, merchant_id: str) -> Terms:
        """The merchant's terms, kept a few seconds: every hold and movement needs them."""
        hit = self._terms.get(merchant_id)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        merchant = await self.merchants.get(merchant_id)
        if merchant is None:
            terms = Terms(MerchantConfig(), DEFAULT_TIME_ZONE)
        else:
            terms = Terms(merchant.config, merchant.time_zone or DEFAULT_TIME_ZONE)
        self._terms[merchant_id] = (time.monotonic() + self._ttl_s, terms)
        return terms

    async def read(self, merchant_id: str, member_id: str, terms: Terms) -> tuple[PointsBook, bool]:
        """The account, and whether it is new (not stored yet)."""
        book = await self.ledger.book(merchant_id, member_id)
        if book is not None:
            return book, False
        return await self.ledger.opening(merchant_id, member_id, terms.time_zone, terms.settings.expiry_years), True

    def _with_due(self, m: Movement, time_zone: str, opening: PointsBook | None = None) -> Movement:
        """Lots the movement adds (and, for an account opened now, the lots it opens with)
        bring the account's next expiry forward."""
        keys = [k for k, d in m.lots.items() if d > 0] + [k for k, n in (opening.lots if opening else {}).items()
                                                            if n > 0]
        times = [lot_expires_at(k, time_zone) for k in keys]
        due = min((epoch_ms(t) for t in times if t is not None), default=0)
        return replace(m, due_ms=due) if due else m

    async def apply(self, merchant_id: str, member_id: str, cause: Cause | None,
                    decide: Callable[[PointsBook], Movement | None], terms: Terms, channel: str = "",
                    frozen_until_at: datetime | None = None) -> Applied:
        """Decides and writes one movement; `cause` None when the movement names its own
        (an expiry's cause depends on the account it was decided on)."""
        for _ in range(ATTEMPTS):
            book, new = await self.read(merchant_id, member_id, terms)
            if cause is not None and book.applied(cause):
                return Applied(None, False, book)
            try:
                movement = decide(book)
            except Refused as error:
                raise _refused(error) from error
            if movement is None:
                return Applied(None, False, book)
            movement = self._with_due(movement, terms.time_zone, book if new else None)
            entry = entry_for(movement, new_id("pte"), self.clock(), frozen_until_at)
            if await self.ledger.move(merchant_id, movement, entry, channel, book if new else None):
                book.apply(movement)
                log.info("points.moved", kind=movement.cause.kind, source_id=movement.cause.source_id,
                         member_id=member_id, points=movement.points)
                if movement.growth and self.facts is not None:
                    await self.facts.mark(merchant_id, member_id)
                return Applied(entry, True, book)
        raise Conflict("the member's points changed too often while moving them; try again",
                       reason="CONCURRENT_UPDATE")


class OrderPoints(PointsMoves):
    """Points from paid orders (order.paid) and their unfreezing (order.completed)."""

    def __init__(self, members: MemberRepository, merchants: MerchantRepository, ledger: PointsLedger,
                 clock: Callable[[], datetime] = utcnow):
        # Earning uses the tier multipliers as they are now (the tests change them at will).
        super().__init__(merchants, ledger, clock, config_ttl_s=0)
        self.members = members

    async def on_order_paid(self, order: PaidOrder) -> PointsEntry | None:
        """Earns the order's points once: the entry written now, None when the order had
        been applied already (a replay or a second delivery)."""
        if await self.members.get(order.merchant_id, order.member_id) is None:
            raise UnknownMember(f"no member {order.member_id} in this merchant")
        terms = await self.terms(order.merchant_id)
        config = terms.config
        # The tier the growth so far reaches (earning itself adds growth).
        growth = (await self.ledger.account(order.merchant_id, order.member_id)).growth
        earning = earn_for_payment(order.payable, tiers.multiplier_bp(growth, config))
        key = lot_key(order.paid_at, terms.time_zone, terms.settings.expiry_years)
        done = await self.apply(order.merchant_id, order.member_id, Cause("ORDER", order.order_id, EARN),
                                lambda book: book.earn(order.order_id, earning.points, earning.growth, key), terms,
                                order.channel, frozen_until(order.paid_at, config.points_frozen_days))
        if not done.applied:
            log.info("points.already_applied", order_id=order.order_id, event_id=order.event_id)
            return None
        return done.entry

    async def on_order_completed(self, order: CompletedOrder) -> bool:
        """Sets when the order's frozen points unfreeze; False when none are frozen (none
        were earned, or a refund took them back). Raises NotEarnedYet when the payment's
        points have not been written yet."""
        terms = await self.terms(order.merchant_id)
        at_ms = epoch_ms(unfreeze_at(order.completed_at, terms.config.points_frozen_days))
        if await self.ledger.set_unfreeze(order.merchant_id, order.member_id, order.order_id, at_ms):
            return True
        book, new = await self.read(order.merchant_id, order.member_id, terms)
        if not book.applied(Cause("ORDER", order.order_id, EARN)):
            if await self.members.get(order.merchant_id, order.member_id) is None:
                return False  # its payment earned nothing either (an unknown member)
            raise NotEarnedYet(f"order {order.order_id} has no points yet")
        if new and order.order_id in book.frozen_lots:
            # Earned before accounts existed: the account is stored, then the time set.
            await self.ledger.open(book)
            return await self.ledger.set_unfreeze(order.merchant_id, order.member_id, order.order_id, at_ms)
        return False


class PointsEconomy(PointsMoves):
    """Checkout holds, refunds, jobs, staff adjustments and reads."""

    def __init__(self, members: MemberRepository, merchants: MerchantRepository, ledger: PointsLedger,
                 audit: AuditLog | None = None, clock: Callable[[], datetime] = utcnow):
        super().__init__(merchants, ledger, clock)
        self.members = members
        self.audit = audit

    # ---- checkout (internal: the order service) -------------------------------------------
    async def points_terms(self, member_id: str, payable: int) -> PointsTerms:
        merchant_id = context.current().require_merchant()
        v = Violations()
        v.check(is_id(member_id, "mem"), "member_id", "a mem_ id")
        v.check(payable >= 0, "payable", "at least 0")
        v.raise_if_any()
        terms = await self.terms(merchant_id)
        book, _ = await self.read(merchant_id, member_id, terms)
        available = book.spendable(terms.time_zone, self.clock())
        usable = terms_rules.max_usable(terms.settings, available, payable)
        return PointsTerms(terms.settings, available, usable, terms_rules.value_fen(terms.settings, usable))

    def _order_args(self, v: Violations, member_id: str, order_id: str) -> None:
        v.check(is_id(member_id, "mem"), "member_id", "a mem_ id")
        v.check(is_id(order_id, "ord"), "order_id", "an ord_ id")

    async def hold(self, member_id: str, order_id: str, points: int, payable: int,
                   as_price: bool = False) -> tuple[int, int, bool]:
        """(points held, their value in fen, applied now). `as_price`: the points are the
        order's price (points mall), not a discount: no floor, step or cap, value 0."""
        merchant_id = context.current().require_merchant()
        v = Violations()
        self._order_args(v, member_id, order_id)
        v.check(points >= 1, "points", "at least 1")
        v.check(as_price or payable >= 1, "payable", "at least 1")
        v.raise_if_any()
        terms = await self.terms(merchant_id)
        now = self.clock()

        def decide(book: PointsBook) -> Movement:
            if book.applied(Cause("ORDER", order_id, RELEASE)) or book.applied(Cause("ORDER", order_id, SPEND)):
                raise Refused("POINTS_HOLD_ENDED", f"order {order_id} released or spent its points already")
            if as_price:  # never more than available: book.hold refuses POINTS_INSUFFICIENT
                return book.hold(order_id, points, terms.time_zone, now)
            why = terms_rules.refusal(terms.settings, points, book.spendable(terms.time_zone, now), payable)
            if why:
                raise Refused(why, {"POINTS_STEP": f"points must be at least {terms.settings.min_points} in steps "
                                                   f"of {terms.settings.step}",
                                    "POINTS_OVER_LIMIT": "more points than this order may use",
                                    "POINTS_INSUFFICIENT": "not enough available points"}[why])
            return book.hold(order_id, points, terms.time_zone, now)

        cause = Cause("ORDER", order_id, HOLD)
        done = await self.apply(merchant_id, member_id, cause, decide, terms)
        if not done.applied:
            if done.book.applied(Cause("ORDER", order_id, RELEASE)):
                raise FailedPrecondition(f"order {order_id} released its points already", reason="POINTS_HOLD_ENDED")
            entry = await self.ledger.entry(merchant_id, cause)
            held = entry.held if entry else done.book.holds.get(order_id, None) and done.book.holds[order_id].points
            if held and held != points:
                raise FailedPrecondition(f"order {order_id} holds {held} points", reason="POINTS_HOLD_EXISTS")
            held = held or points
            return held, 0 if as_price else terms_rules.value_fen(terms.settings, held), False
        return points, 0 if as_price else terms_rules.value_fen(terms.settings, points), True

    async def spend(self, member_id: str, order_id: str) -> tuple[int, bool]:
        merchant_id = context.current().require_merchant()
        v = Violations()
        self._order_args(v, member_id, order_id)
        v.raise_if_any()
        terms = await self.terms(merchant_id)
        cause = Cause("ORDER", order_id, SPEND)
        done = await self.apply(merchant_id, member_id, cause, lambda book: book.spend(order_id), terms)
        if done.applied:
            return -done.entry.points, True
        entry = await self.ledger.entry(merchant_id, cause)
        return (-entry.points if entry else 0), False

    async def release(self, member_id: str, order_id: str) -> tuple[int, bool]:
        merchant_id = context.current().require_merchant()
        v = Violations()
        self._order_args(v, member_id, order_id)
        v.raise_if_any()
        terms = await self.terms(merchant_id)

        def decide(book: PointsBook) -> Movement:
            if book.applied(Cause("ORDER", order_id, SPEND)):
                raise Refused("POINTS_SPENT", f"order {order_id} was paid with its points")
            return book.release(order_id)

        cause = Cause("ORDER", order_id, RELEASE)
        done = await self.apply(merchant_id, member_id, cause, decide, terms)
        if done.applied:
            return done.entry.available, True
        entry = await self.ledger.entry(merchant_id, cause)
        return (entry.available if entry else 0), False

    async def reverse(self, member_id: str, order_id: str, refund_id: str, take_back: int, give_back: int,
                      refunded: int = 0, paid: int = 0) -> tuple[PointsEntry | None, bool]:
        """Earned points taken back (`take_back`, or in proportion: `refunded` of `paid`)
        and spent points returned, once per refund; the growth the order earned leaves the
        member's growth in the same proportion (so growth follows the net amount paid and
        the tier follows growth, down as well as up)."""
        merchant_id = context.current().require_merchant()
        v = Violations()
        self._order_args(v, member_id, order_id)
        v.check(is_id(refund_id, "rfd"), "refund_id", "a rfd_ id")
        v.check(take_back >= 0, "earned_points_to_take_back", "at least 0")
        v.check(give_back >= 0, "spent_points_to_return", "at least 0")
        v.check(refunded >= 0, "refunded_amount", "at least 0")
        if refunded:
            v.check(not take_back, "earned_points_to_take_back", "not with refunded_amount")
            v.check(paid >= refunded, "paid_amount", "at least refunded_amount")
        v.raise_if_any()
        terms = await self.terms(merchant_id)
        cause = Cause("REFUND", refund_id, REVERSE)
        first = await self.ledger.entry(merchant_id, cause)
        if first is not None:
            return first, False
        # The order's refunds together never take back more than it earned nor return more
        # than it spent.
        history = await self.ledger.entries_of_order(merchant_id, member_id, order_id)
        if refunded and not any(e.kind == EARN or (not e.kind and e.source == "ORDER") for e in history):
            # Taking back a share of nothing would lose the take-back once the payment's
            # points arrive: the caller retries until they have.
            book, _ = await self.read(merchant_id, member_id, terms)
            if not book.applied(Cause("ORDER", order_id, EARN)):
                raise Unavailable(f"order {order_id} has not earned its points yet",
                                  reason="POINTS_NOT_EARNED_YET")
        earned = sum(e.gross for e in history if e.kind == EARN) + sum(
            e.points for e in history if not e.kind and e.source == "ORDER")
        spent = -sum(e.points for e in history if e.kind == SPEND)
        taken = sum(e.gross for e in history if e.kind == REVERSE)
        returned = sum(e.returned for e in history if e.kind == REVERSE)
        growth_earned = sum(e.growth for e in history if e.kind == EARN or (not e.kind and e.source == "ORDER"))
        growth_taken = -sum(e.growth for e in history if e.kind == REVERSE)
        if refunded:
            # In proportion over all the order's refunds: the last one takes the remainder.
            so_far = sum(e.refunded for e in history if e.kind == REVERSE)
            take_back = max(0, earned * min(so_far + refunded, paid) // paid - taken)
            share_after, share_whole = so_far + refunded, paid
        else:
            # Points named by the caller: growth in proportion to the points taken back.
            share_after, share_whole = taken + take_back, earned
        if taken + take_back > earned or returned + give_back > spent:
            raise FailedPrecondition(
                f"order {order_id} earned {earned} (taken back {taken}) and spent {spent} (returned {returned})",
                reason="POINTS_REVERSAL_TOO_LARGE")
        growth_back = 0
        if growth_earned > growth_taken:
            member_growth = (await self.ledger.account(merchant_id, member_id)).growth
            growth_back = growth_to_reverse(growth_earned, growth_taken, share_after, share_whole, member_growth)
        now = self.clock()
        key_now = lot_key(now, terms.time_zone, terms.settings.expiry_years)
        done = await self.apply(merchant_id, member_id, cause,
                                lambda book: book.reverse(refund_id, order_id, take_back, give_back, key_now,
                                                          terms.time_zone, now, refunded, growth_back), terms)
        if done.applied:
            return done.entry, True
        return await self.ledger.entry(merchant_id, cause), False

    # ---- jobs ----------------------------------------------------------------------------
    async def unfreeze_due(self) -> int:
        """Unfreezes the points whose after-sales window has closed; how many movements."""
        return await self._each_due("unfreeze_due_ms", self._unfreeze_account)

    async def expire_due(self) -> int:
        """Expires the lots whose last day has ended; how many movements."""
        return await self._each_due("due_ms", self._expire_account)

    async def repair(self) -> int:
        """Stores ledger entries a crash left owing."""
        return await self.ledger.repair(epoch_ms(self.clock()))

    async def _each_due(self, due_field: str, work) -> int:
        moved = 0
        for _ in range(JOB_BATCH):
            claimed = await self.ledger.claim(due_field, epoch_ms(self.clock()))
            if claimed is None:
                break
            merchant_id, member_id = claimed
            token = context.use(context.RequestContext(request_id=new_id("req"), merchant_id=merchant_id))
            try:
                moved += await work(merchant_id, member_id, due_field)
            finally:
                context.reset(token)
        return moved

    async def _unfreeze_account(self, merchant_id: str, member_id: str, due_field: str) -> int:
        terms = await self.terms(merchant_id)
        seen = (await self.ledger.due_of(merchant_id, member_id)).get(due_field)
        now_ms = epoch_ms(self.clock())
        book, _ = await self.read(merchant_id, member_id, terms)
        moved = 0
        for order_id, lot in sorted(book.frozen_lots.items()):
            if 0 < lot.unfreeze_ms <= now_ms:
                done = await self.apply(merchant_id, member_id, Cause("ORDER", order_id, UNFREEZE),
                                        lambda b, o=order_id: b.unfreeze(o, now_ms), terms)
                moved += done.applied
                book = done.book
        later = [lot.unfreeze_ms for lot in book.frozen_lots.values() if lot.unfreeze_ms > now_ms]
        await self.ledger.set_due(merchant_id, member_id, due_field, seen, min(later, default=NOTHING_DUE_MS))
        return moved

    async def _expire_account(self, merchant_id: str, member_id: str, due_field: str) -> int:
        terms = await self.terms(merchant_id)
        seen = (await self.ledger.due_of(merchant_id, member_id)).get(due_field)
        now = self.clock()
        book, _ = await self.read(merchant_id, member_id, terms)
        moved = 0
        for key in sorted(book.lots):
            if book.lots.get(key, 0) > 0 and lot_expired(key, terms.time_zone, now):
                done = await self.apply(merchant_id, member_id, None, lambda b, k=key: b.expire(k), terms)
                moved += done.applied
                book = done.book
        later = [lot_expires_at(k, terms.time_zone) for k, n in book.lots.items() if n > 0]
        nxt = min((epoch_ms(t) for t in later if t is not None), default=NOTHING_DUE_MS)
        await self.ledger.set_due(merchant_id, member_id, due_field, seen, nxt)
        return moved

    # ---- staff -----------------------------------------------------------------------------
    async def adjust(self, member_id: str, points: int, reason: str, key: str) -> tuple[PointsEntry | None, bool,
                                                                                          PointsSummary]:
        ctx = context.current()
        actor = ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(is_id(member_id, "mem"), "member_id", "a mem_ id")
        v.check(points != 0, "points", "not 0")
        v.check(bool(reason.strip()) and len(reason) <= 200, "reason", "1 to 200 characters")
        v.check(bool(key) and len(key) <= 64, "idempotency_key", "1 to 64 characters")
        v.raise_if_any()
        if await self.members.get(ctx.merchant_id, member_id) is None:
            raise NotFound("no such member")
        terms = await self.terms(ctx.merchant_id)
        now = self.clock()
        key_now = lot_key(now, terms.time_zone, terms.settings.expiry_years)
        cause = Cause("ADJUSTMENT", f"{member_id}:{key}", ADJUST)
        done = await self.apply(ctx.merchant_id, member_id, cause,
                                lambda book: book.adjust(key, points, reason.strip(), actor, key_now, terms.time_zone,
                                                         now), terms)
        entry = done.entry if done.applied else await self.ledger.entry(ctx.merchant_id, cause)
        if done.applied and self.audit is not None:
            await self.audit.add(AuditEntry(
                new_id("aud"), ctx.merchant_id, ctx.caller_kind, ctx.caller_id, audit_rules.POINTS_ADJUSTED, member_id,
                {}, {"points": str(points), "reason": reason.strip(), "idempotency_key": key}, self.clock()))
        return entry, done.applied, self._summary(done.book, terms)

    async def member_points(self, member_id: str) -> tuple[PointsSummary, list[str], int]:
        """Staff's view: the account, the audit's problems (none: consistent) and the
        number of ledger entries."""
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        v = Violations()
        v.check(is_id(member_id, "mem"), "member_id", "a mem_ id")
        v.raise_if_any()
        if await self.members.get(ctx.merchant_id, member_id) is None:
            raise NotFound("no such member")
        terms = await self.terms(ctx.merchant_id)
        book, _ = await self.read(ctx.merchant_id, member_id, terms)
        entries = await self.ledger.entries(ctx.merchant_id, member_id)
        return self._summary(book, terms), ledger_problems(book, entries), len(entries)

    async def member_history(self, member_id: str, page_size: int, page_token: str) -> tuple[list[PointsEntry], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        v = Violations()
        v.check(is_id(member_id, "mem"), "member_id", "a mem_ id")
        v.raise_if_any()
        if await self.members.get(ctx.merchant_id, member_id) is None:
            raise NotFound("no such member")
        return await self._history(ctx.merchant_id, member_id, page_size, page_token)

    async def settings(self) -> tuple[PointsSettings, int, int]:
        """(points terms, after-sales days, version)."""
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        merchant = await self.merchants.get(ctx.merchant_id)
        if merchant is None:
            raise NotFound("no such merchant")
        return merchant.config.points, merchant.config.points_frozen_days, merchant.version

    async def update_settings(self, settings: PointsSettings, after_sales_days: int,
                              expected_version: int) -> tuple[PointsSettings, int, int]:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        terms_rules.check(v, settings)
        v.check(0 <= after_sales_days <= 30, "settings.after_sales_days", "0..30")
        v.check(expected_version >= 1, "expected_version", "the version read with GetPointsSettings")
        v.raise_if_any()
        merchant = await self.merchants.get(ctx.merchant_id)
        if merchant is None:
            raise NotFound("no such merchant")
        if merchant.version != expected_version:
            raise Conflict("the points settings changed since they were read; read them again",
                           reason="VERSION_CONFLICT")
        before = merchant.config
        merchant.reconfigure(replace(before, points=settings, points_frozen_days=after_sales_days), self.clock())
        try:
            await self.merchants.save(merchant)
        except StaleVersion as error:
            raise Conflict("the points settings changed since they were read; read them again",
                           reason="VERSION_CONFLICT") from error
        self._terms.pop(ctx.merchant_id, None)
        if self.audit is not None:
            await self.audit.add(AuditEntry(
                new_id("aud"), ctx.merchant_id, ctx.caller_kind, ctx.caller_id, POINTS_SETTINGS_UPDATED,
                audit_rules.POINTS_SETTINGS_TARGET,
                {**{k: str(v) for k, v in before.points.to_doc().items()},
                 "after_sales_days": str(before.points_frozen_days)},
                {**{k: str(v) for k, v in settings.to_doc().items()}, "after_sales_days": str(after_sales_days)},
                self.clock()))
        return merchant.config.points, merchant.config.points_frozen_days, merchant.version

    # ---- the member centre -------------------------------------------------------------------
    async def my_points(self) -> tuple[PointsSummary, list[PointsEntry]]:
        ctx = context.current()
        member_id = ctx.require_member()
        if await self.members.get(ctx.merchant_id, member_id) is None:
            raise NotFound("no such member")
        terms = await self.terms(ctx.merchant_id)
        book, _ = await self.read(ctx.merchant_id, member_id, terms)
        latest = await self.ledger.page(ctx.merchant_id, member_id, "", HISTORY_SHOWN)
        return self._summary(book, terms), latest

    async def my_history(self, page_size: int, page_token: str) -> tuple[list[PointsEntry], str]:
        ctx = context.current()
        member_id = ctx.require_member()
        return await self._history(ctx.merchant_id, member_id, page_size, page_token)

    async def _history(self, merchant_id: str, member_id: str, page_size: int,
                       page_token: str) -> tuple[list[PointsEntry], str]:
        v = Violations()
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="points", member=member_id)
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        entries = await self.ledger.page(merchant_id, member_id, after, size + 1)
        more = len(entries) > size
        entries = entries[:size]
        return entries, paging.encode_cursor(fp, entries[-1].id) if more else ""

    def _summary(self, book: PointsBook, terms: Terms) -> PointsSummary:
        return PointsSummary(book.member_id, book.balance, book.available, book.frozen, book.held, book.owed,
                             expiring(book.lots, terms.time_zone))

