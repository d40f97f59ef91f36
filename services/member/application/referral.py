"""Referral (老带新) use cases: the member's invite code and invitees, binding at
registration, the merchant's rules, and the rewards when an invitee's first order completes.

A reward is paid once per referral whatever replays, duplicates or crashes come: the
first completed order is claimed on the referral by one conditional update (with the
rules in force then), the inviter's monthly place is one conditional update of a counter
per inviter and month, points are a movement whose cause is the referral, coupons are
issued under the referral's key, and the referral is marked rewarded last. A delivery that
stopped half-way is finished by the next one, each step finding what it had done.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from services.member.application.coupons import CouponUseCases
from services.member.application.points import PointsMoves
from services.member.application.ports import MemberRepository, MerchantRepository, PhoneBook
from services.member.application.referral_ports import (CouponRewards, FarmGuard, InviteCodes, PointsRewards,
                                                        ReferralCaps, ReferralRepository, ReferralSettingsStore)
from services.member.domain import coupons as coupon_rules
from services.member.domain import referral as rules
from services.member.domain.config import DEFAULT_TIME_ZONE
from services.member.domain.points_account import REVERSE, Cause, lot_key
from services.member.domain.referral import Referral, ReferralSettings, Reversal, Reward
from siyu_kit import context, paging, retry
from siyu_kit import logging as slog
from siyu_kit.errors import Conflict, FieldViolation, InvalidArgument, NotFound, Violations
from siyu_kit.ids import new_id
from siyu_kit.protos import utcnow

log = slog.get("siyu.member.referral")

# Tries to find a free invite code before the caller is told to try again.
CODE_ATTEMPTS = 8


@dataclass(frozen=True)
class FinishedOrder:
    """An order that completed (order.completed), as the referral rules see it."""
    merchant_id: str
    order_id: str
    member_id: str
    completed_at: datetime
    payable: int = 0
    refunded: int = 0


@dataclass(frozen=True)
class RefundedOrder:
    """A refund of an order (order.refunded), with the order's amounts after it."""
    merchant_id: str
    order_id: str
    member_id: str
    refund_id: str
    payable: int
    refunded: int
    every_line_refunded: bool = False


@dataclass(frozen=True)
class InviteeView:
    referral_id: str
    nickname_masked: str
    phone_masked: str
    bound_at: datetime
    first_order_completed: bool
    reward: Reward


@dataclass(frozen=True)
class MyReferral:
    invite_code: str
    inviter_nickname_masked: str
    invited: bool
    invitees: list[InviteeView]
    next_page_token: str


class ReferralPoints(PointsMoves):
    """The inviter's points: a REFERRAL movement per referral through the points economy."""

    async def reward(self, merchant_id: str, member_id: str, referral_id: str, points: int) -> None:
        terms = await self.terms(merchant_id)
        key_now = lot_key(self.clock(), terms.time_zone, terms.settings.expiry_years)
        cause = Cause(rules.REFERRAL, referral_id, rules.REFERRAL)
        await self.apply(merchant_id, member_id, cause,
                         lambda book: rules.points_movement(book, referral_id, points, key_now), terms)

    async def take_back(self, merchant_id: str, member_id: str, referral_id: str, points: int) -> int | None:
        terms = await self.terms(merchant_id)
        credited = Cause(rules.REFERRAL, referral_id, rules.REFERRAL)
        cause = Cause(rules.REFERRAL, referral_id, REVERSE)
        now = self.clock()
        done = await self.apply(merchant_id, member_id, cause,
                                lambda book: rules.points_reversal(book, referral_id, points, terms.time_zone, now)
                                if book.applied(credited) else None, terms)
        if done.entry is not None:
            return done.entry.owed
        if not done.book.applied(cause):
            return None  # never credited: nothing to take back
        entry = await self.ledger.entry(merchant_id, cause)  # taken back before (a replay)
        return entry.owed if entry is not None else 0


class ReferralCoupons:
    """The coupon hook for referral rewards (source REFERRAL, cause the referral id)."""

    def __init__(self, coupons: CouponUseCases):
        self.coupons = coupons

    async def reward(self, merchant_id: str, member_id: str, template_id: str, cause_id: str) -> tuple[str, str]:
        try:
            issued = await self.coupons.reward(merchant_id, member_id, template_id, coupon_rules.REFERRAL, cause_id)
        except NotFound:
            return "", rules.TEMPLATE_NOT_FOUND
        return (issued.coupon.id, "") if issued.coupon is not None else ("", issued.refused or "COUPON_REFUSED")

    async def has_template(self, merchant_id: str, template_id: str) -> bool:
        return await self.coupons.templates.get(merchant_id, template_id) is not None

    async def revoke(self, merchant_id: str, member_id: str, coupon_id: str) -> str:
        return await self.coupons.revoke(merchant_id, member_id, coupon_id)


class Referrals:
    def __init__(self, codes: InviteCodes, referrals: ReferralRepository, caps: ReferralCaps, guard: FarmGuard,
                 settings: ReferralSettingsStore, members: MemberRepository, phones: PhoneBook,
                 merchants: MerchantRepository, coupons: CouponRewards, points: PointsRewards, guard_key: bytes,
                 clock: Callable[[], datetime] = utcnow):
        self.codes = codes
        self.referrals = referrals
        self.caps = caps
        self.guard = guard
        self.settings = settings
        self.members = members
        self.phones = phones
        self.merchants = merchants
        self.coupons = coupons
        self.points = points
        self.guard_key = guard_key
        self.clock = clock

    # ---- invite codes ----------------------------------------------------------------------
    async def code_of(self, merchant_id: str, member_id: str) -> str:
        """The member's invite code, created on first use: a random code, another one when
        it is taken (a unique index decides), the stored one when another call made it."""
        for _ in range(CODE_ATTEMPTS):
            code = await self.codes.code_of(merchant_id, member_id)
            if code:
                return code
            if await self.codes.add(merchant_id, member_id, rules.new_code()):
                continue  # read back what was stored
        code = await self.codes.code_of(merchant_id, member_id)
        if code:
            return code
        raise Conflict("no free invite code was found; try again", reason="INVITE_CODE_UNAVAILABLE")

    # ---- binding (the login that creates the member) -------------------------------------------
    async def at_registration(self, merchant_id: str, member_id: str, invite_code: str, unionid: str,
                              created: bool) -> str:
        """Binds a new member to the code's member; what became of the code ("" without
        one). Never fails the login: a code that cannot bind says why."""
        code = rules.normalise_code(invite_code)
        if not code:
            return ""
        if not created:
            return rules.NOT_NEW_MEMBER
        inviter_id = await self.codes.member_of(merchant_id, code) if rules.is_code(code) else None
        chain = await self._chain(merchant_id, inviter_id) if inviter_id and inviter_id != member_id else []
        refusal = rules.binding_refusal(member_id, inviter_id, chain)
        if refusal:
            return refusal
        unionid_hash = rules.guard_hash(self.guard_key, merchant_id, "unionid", unionid) if unionid else ""
        referral = Referral.bind(new_id("ref"), merchant_id, inviter_id, member_id, code, unionid_hash, self.clock())
        if not await self.referrals.add(referral):
            return rules.ALREADY_BOUND
        log.info("referral.bound", referral_id=referral.id, inviter_id=inviter_id, invitee_id=member_id)
        return rules.BOUND

    # ---- binding a new member through an activity (a bargain help) ----------------------------
    async def bind_new(self, inviter_id: str, invitee_id: str, cause: str) -> tuple[str, bool]:
        """Binds `invitee_id`, registered within NEW_MEMBER_WINDOW, to `inviter_id` as an
        invite code at registration would: (outcome, whether this call bound). Asking again
        answers BOUND for the same inviter; the first binding wins."""
        merchant_id = context.current().merchant_id
        existing = await self.referrals.of_invitee(merchant_id, invitee_id)
        if existing is not None:
            return (rules.BOUND if existing.inviter_id == inviter_id else rules.ALREADY_BOUND), False
        invitee = await self.members.get(merchant_id, invitee_id)
        if invitee is None or await self.members.get(merchant_id, inviter_id) is None:
            raise NotFound("no such member")
        now = self.clock()
        if invitee.created_at is None or now - invitee.created_at > rules.NEW_MEMBER_WINDOW:
            return rules.NOT_NEW_MEMBER, False
        chain = await self._chain(merchant_id, inviter_id) if inviter_id != invitee_id else []
        refusal = rules.binding_refusal(invitee_id, inviter_id, chain)
        if refusal:
            return refusal, False
        code = await self.code_of(merchant_id, inviter_id)
        referral = Referral.bind(new_id("ref"), merchant_id, inviter_id, invitee_id, code, "", now)
        if not await self.referrals.add(referral):
            again = await self.referrals.of_invitee(merchant_id, invitee_id)
            same = again is not None and again.inviter_id == inviter_id
            return (rules.BOUND if same else rules.ALREADY_BOUND), False
        log.info("referral.bound", referral_id=referral.id, inviter_id=inviter_id, invitee_id=invitee_id, cause=cause)
        return rules.BOUND, True

    async def _chain(self, merchant_id: str, member_id: str) -> list[str]:
        """The member's inviters, nearest first (bounded; stops at a repeat)."""
        chain: list[str] = []
        current = member_id
        for _ in range(rules.CHAIN_DEPTH):
            referral = await self.referrals.of_invitee(merchant_id, current)
            if referral is None or referral.inviter_id in chain:
                break
            chain.append(referral.inviter_id)
            current = referral.inviter_id
        return chain

    # ---- the member centre ---------------------------------------------------------------
    async def mine(self, page_size: int, page_token: str) -> MyReferral:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(listing="referral-invitees", member=member_id)
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        merchant_id = ctx.merchant_id
        if await self.members.get(merchant_id, member_id) is None:
            raise NotFound("no such member")
        code = await self.code_of(merchant_id, member_id)
        mine = await self.referrals.of_invitee(merchant_id, member_id)
        inviter_masked = ""
        if mine is not None:
            inviter = await self.members.get(merchant_id, mine.inviter_id)
            inviter_masked = rules.mask_nickname(inviter.nickname if inviter else "")
        rows, token = paging.next_page(await self.referrals.of_inviter(merchant_id, member_id, after, size + 1),
                                       size, fp)
        phones = await self.phones.phones_of(merchant_id, [r.invitee_id for r in rows]) if rows else {}
        invitees = []
        for r in rows:
            invitee = await self.members.get(merchant_id, r.invitee_id)
            invitees.append(InviteeView(r.id, rules.mask_nickname(invitee.nickname if invitee else ""),
                                        rules.mask_phone(phones.get(r.invitee_id, "")), r.bound_at,
                                        bool(r.first_order_id), r.inviter_reward))
        return MyReferral(code, inviter_masked, mine is not None, invitees, token)

    # ---- settings (OPERATOR) ---------------------------------------------------------------
    async def get_settings(self) -> ReferralSettings:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        return await self.settings.get(ctx.merchant_id)

    async def update_settings(self, settings: ReferralSettings) -> ReferralSettings:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        problems = [FieldViolation(f, d) for f, d in rules.settings_problems(settings)]
        for name in ("inviter_coupon_template_id", "invitee_coupon_template_id"):
            template_id = getattr(settings, name)
            if template_id and not await self.coupons.has_template(ctx.merchant_id, template_id):
                problems.append(FieldViolation(f"settings.{name}", "no coupon template of the merchant"))
        if problems:
            raise InvalidArgument("the request has invalid fields", reason="INVALID_FIELDS", violations=problems)
        await self.settings.put(ctx.merchant_id, settings)
        return settings

    # ---- rewards (order.completed) -----------------------------------------------------------
    async def on_order_completed(self, order: FinishedOrder) -> Referral | None:
        """Rewards both sides when this is the invitee's first completed order; a later
        order, a replay or a member nobody invited changes nothing."""
        referral = await self.referrals.of_invitee(order.merchant_id, order.member_id)
        if referral is None or referral.state == rules.STATE_REWARDED:
            return referral
        if not referral.first_order_id:
            if not rules.counts(order.payable, order.refunded):
                return referral  # refunded in full: not a first order; a later one may be
            terms = await self.settings.get(order.merchant_id)
            await self.referrals.claim_first_order(order.merchant_id, referral.id, order.order_id, terms,
                                                   order.completed_at)
            referral = await self.referrals.of_invitee(order.merchant_id, order.member_id)
        if referral is None or referral.first_order_id != order.order_id:
            return referral
        return await self._pay(order.merchant_id, order.member_id)

    # ---- reversal (order.refunded) ---------------------------------------------------------------
    async def on_order_refunded(self, refund: RefundedOrder) -> Referral | None:
        """Takes the rewards back when the invitee's rewarded first order is refunded in
        full: the inviter's points (the rest owed when spent), the coupons still AVAILABLE
        (a used one stays used, and says so). A partial refund, another order, a replay or
        a member nobody invited changes nothing. The inviter's monthly place is not given
        back. Each step is unique by its cause, so a delivery that stopped half-way is
        finished by the next."""
        referral = await self.referrals.of_invitee(refund.merchant_id, refund.member_id)
        if referral is None or not referral.first_order_id or referral.first_order_id != refund.order_id:
            return referral
        if referral.state == rules.STATE_REVERSED or not rules.reverses(refund.payable, refund.refunded,
                                                                              refund.every_line_refunded):
            return referral
        if referral.state != rules.STATE_REWARDED:
            referral = await self._pay(refund.merchant_id, refund.member_id)  # finish what a crash left

        async def attempt() -> Referral:
            current = await self.referrals.of_invitee(refund.merchant_id, refund.member_id)
            if current.state == rules.STATE_REVERSED:
                return current
            inviter = await self._take_back(current, current.inviter_id, current.inviter_reward)
            invitee = await self._take_back(current, current.invitee_id, current.invitee_reward)
            current.reverse(refund.refund_id, inviter, invitee, self.clock())
            await self.referrals.save(current)
            log.info("referral.reversed", referral_id=current.id, refund_id=refund.refund_id,
                     inviter=inviter.outcome, invitee=invitee.outcome)
            return current

        return await retry.on_conflict(attempt, gave_up="the referral changed while reversing it; try again")

    async def _take_back(self, referral: Referral, member_id: str, reward: Reward) -> Reversal:
        if reward.outcome != rules.PAID:
            return Reversal(rules.NOTHING)
        if reward.coupon_id:
            state = await self.coupons.revoke(referral.merchant_id, member_id, reward.coupon_id)
            outcome = rules.REVOKED if state == "REVOKED" else rules.KEPT
            return Reversal(outcome, coupon_id=reward.coupon_id, coupon_state=state)
        if reward.points > 0:
            owed = await self.points.take_back(referral.merchant_id, member_id, referral.id, reward.points)
            if owed is None:
                return Reversal(rules.NOTHING)
            return Reversal(rules.OWED if owed else rules.REVERSED, points=reward.points, owed=owed)
        return Reversal(rules.NOTHING)

    async def _pay(self, merchant_id: str, invitee_id: str) -> Referral:
        async def attempt() -> Referral:
            referral = await self.referrals.of_invitee(merchant_id, invitee_id)
            if referral.state == rules.STATE_REWARDED:
                return referral
            terms = referral.terms or ReferralSettings()
            inviter = await self._inviter_side(referral, terms)
            invitee = await self._invitee_side(referral, terms)
            referral.rewarded(inviter, invitee)
            await self.referrals.save(referral)
            log.info("referral.rewarded", referral_id=referral.id, inviter=inviter.outcome, invitee=invitee.outcome)
            return referral

        return await retry.on_conflict(attempt, gave_up="the referral changed while rewarding it; try again")

    async def _inviter_side(self, referral: Referral, terms: ReferralSettings) -> Reward:
        owed = rules.inviter_reward_for(terms, cap_taken=True)
        if owed.outcome:
            return owed
        merchant = await self.merchants.get(referral.merchant_id)
        time_zone = (merchant.time_zone if merchant else "") or DEFAULT_TIME_ZONE
        month = rules.month_of(referral.completed_at or self.clock(), time_zone)
        if not await self.caps.take(referral.merchant_id, referral.inviter_id, month, referral.id, terms.monthly_cap):
            return Reward(rules.CAPPED)
        if terms.inviter_reward_kind == rules.POINTS:
            await self.points.reward(referral.merchant_id, referral.inviter_id, referral.id, owed.points)
            return Reward(rules.PAID, points=owed.points)
        coupon_id, refused = await self.coupons.reward(referral.merchant_id, referral.inviter_id,
                                                       terms.inviter_coupon_template_id, referral.id)
        return Reward(rules.PAID, coupon_id=coupon_id) if coupon_id else Reward(refused)

    async def _invitee_side(self, referral: Referral, terms: ReferralSettings) -> Reward:
        if not terms.enabled:
            return Reward(rules.DISABLED)
        if not terms.invitee_coupon_template_id:
            return Reward(rules.NONE)
        hashes = await self._guard_hashes(referral)
        holders = await self.guard.holders(referral.merchant_id, hashes) if hashes else set()
        if holders - {referral.invitee_id}:
            return Reward(rules.FARM_GUARDED)
        coupon_id, refused = await self.coupons.reward(referral.merchant_id, referral.invitee_id,
                                                       terms.invitee_coupon_template_id, referral.id)
        if not coupon_id:
            return Reward(refused)
        if hashes:
            await self.guard.add(referral.merchant_id, hashes, referral.invitee_id)
        return Reward(rules.PAID, coupon_id=coupon_id)

    async def _guard_hashes(self, referral: Referral) -> list[str]:
        hashes = [referral.unionid_hash] if referral.unionid_hash else []
        phone = await self.phones.phone_of(referral.merchant_id, referral.invitee_id)
        if phone:
            hashes.append(rules.guard_hash(self.guard_key, referral.merchant_id, "phone", phone))
        return hashes

