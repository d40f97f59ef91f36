"""Referral (老带新): invite codes, the binding of a new member to an inviter, the rules of
the rewards paid when the invitee's first order completes, and the farm guard.

Binding happens at registration only; the first binding wins (one referral per invitee,
a unique key), nobody invites themself, and no chain of invitations loops back (with
binding at registration only a cycle cannot form, but the rule is checked all the same).

Rewards are decided once per referral, when the invitee's first completed order is
claimed: the rules in force then are kept on the referral (`terms`), so a replay after a
crash pays what the first attempt decided. Each payment is unique by its cause (the
referral), the inviter's monthly cap is one conditional update of a counter per inviter
and month, and an invitee whose phone or unionid got a new-member reward before (the
farm guard's keyed hashes) gets none again.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from siyu_kit.aggregate import Aggregate

from services.member.domain.points_account import REVERSE, Cause, Movement, PointsBook

# Invite codes: no 0/O, 1/I/L, so a code read aloud or copied by hand is unambiguous.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 6
CODE_MAX = 16
# How far up an inviter's chain the cycle check looks (chains are short in practice).
CHAIN_DEPTH = 64

# What a login's invite code became (the proto's ReferralBinding without the prefix).
BOUND, UNKNOWN_CODE, NOT_NEW_MEMBER, ALREADY_BOUND, SELF, CYCLE = (
    "BOUND", "UNKNOWN_CODE", "NOT_NEW_MEMBER", "ALREADY_BOUND", "SELF", "CYCLE")

# Reward kinds of the inviter.
POINTS, COUPON = "POINTS", "COUPON"
# Outcomes of one side of a referral.
PAID, CAPPED, DISABLED, NONE, FARM_GUARDED, TEMPLATE_NOT_FOUND = (
    "PAID", "CAPPED", "DISABLED", "NONE", "FARM_GUARDED", "TEMPLATE_NOT_FOUND")

# The points movement kind (and ledger source) of an inviter's points.
REFERRAL = "REFERRAL"
DEFAULT_MONTHLY_CAP = 20
POINTS_MAX = 1_000_000
CAP_MAX = 1000
# A member counts as new for a binding through an activity (a bargain help) this long
# after registering.
NEW_MEMBER_WINDOW = timedelta(hours=24)

# A referral's life: bound at registration, rewarding once its first order is claimed,
# rewarded once both sides were paid (or refused), reversed when that first order was
# later refunded in full.
STATE_BOUND, STATE_REWARDING, STATE_REWARDED, STATE_REVERSED = "BOUND", "REWARDING", "REWARDED", "REVERSED"
# What the reversal did to one side: points taken back (REVERSED), taken back in part and
# the rest owed (OWED), a coupon revoked (REVOKED) or kept as it was already used, held by
# an order or expired (KEPT), nothing paid to take back (NOTHING).
REVERSED, OWED, REVOKED, KEPT, NOTHING = "REVERSED", "OWED", "REVOKED", "KEPT", "NOTHING"


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(code: str) -> str:
    """The code as stored: upper case, no spaces. A code with a character outside the
    alphabet is returned as is, and then matches no member."""
    return code.strip().replace(" ", "").replace("-", "").upper()


def is_code(code: str) -> bool:
    return 0 < len(code) <= CODE_MAX and all(c in CODE_ALPHABET for c in code)


def mask_nickname(nickname: str) -> str:
    """张** for 张三丰; an empty nickname stays empty."""
    nickname = nickname.strip()
    if not nickname:
        return ""
    return nickname[0] + "*" * min(max(len(nickname) - 1, 1), 6)


def mask_phone(phone: str) -> str:
    """138****8000; empty when there is none."""
    if not phone:
        return ""
    if len(phone) < 7:
        return "****"
    return f"{phone[:3]}****{phone[-4:]}"


def month_of(at: datetime, time_zone: str) -> str:
    """The calendar month (YYYYMM) of an instant in the merchant's time zone: the cap's period."""
    local = at.astimezone(ZoneInfo(time_zone))
    return f"{local.year:04d}{local.month:02d}"


def guard_hash(key: bytes, merchant_id: str, kind: str, value: str) -> str:
    """The farm guard's keyed hash of a phone or a unionid: it finds a returning person
    without keeping the phone or unionid readable (and survives their erasure)."""
    return hmac.new(key, f"referral-guard:{merchant_id}:{kind}:{value}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ReferralSettings:
    """A merchant's referral rules. Off until the merchant turns them on."""
    enabled: bool = False
    inviter_reward_kind: str = POINTS
    inviter_points: int = 0
    inviter_coupon_template_id: str = ""
    invitee_coupon_template_id: str = ""
    monthly_cap: int = DEFAULT_MONTHLY_CAP


def settings_problems(s: ReferralSettings) -> list[tuple[str, str]]:
    """Field violations of a settings update (paths under `settings.`)."""
    problems = []
    if s.inviter_reward_kind not in (POINTS, COUPON):
        problems.append(("settings.inviter_reward_kind", "POINTS or COUPON"))
    if not 0 <= s.inviter_points <= POINTS_MAX:
        problems.append(("settings.inviter_points", f"0 to {POINTS_MAX}"))
    if s.inviter_reward_kind == POINTS and s.enabled and s.inviter_points <= 0:
        problems.append(("settings.inviter_points", "more than 0 when the inviter gets points"))
    if s.inviter_reward_kind == COUPON and not s.inviter_coupon_template_id:
        problems.append(("settings.inviter_coupon_template_id", "required when the inviter gets a coupon"))
    if not 1 <= s.monthly_cap <= CAP_MAX:
        problems.append(("settings.monthly_cap", f"1 to {CAP_MAX}"))
    return problems


@dataclass(frozen=True)
class Reward:
    """What one side got: PAID (points or a coupon) or why not."""
    outcome: str = ""
    points: int = 0
    coupon_id: str = ""


@dataclass(frozen=True)
class Reversal:
    """What the reversal did to one side: `points` taken back, of which `owed` were
    recorded as owed; the coupon revoked or kept."""
    outcome: str = ""
    points: int = 0
    owed: int = 0
    coupon_id: str = ""
    coupon_state: str = ""


@dataclass(frozen=True)
class ReferralBound:
    referral_id: str
    inviter_id: str
    invitee_id: str
    at: datetime


@dataclass(frozen=True)
class ReferralRewarded:
    referral_id: str
    inviter_id: str
    invitee_id: str
    order_id: str
    inviter: Reward
    invitee: Reward


@dataclass(frozen=True)
class ReferralReversed:
    referral_id: str
    inviter_id: str
    invitee_id: str
    order_id: str
    refund_id: str
    inviter: Reversal
    invitee: Reversal
    at: datetime


@dataclass
class Referral(Aggregate):
    id: str  # ref_…
    merchant_id: str
    inviter_id: str
    invitee_id: str
    code: str
    bound_at: datetime
    # The invitee's unionid as a guard hash (kept for the farm guard; "" when unknown).
    unionid_hash: str = ""
    state: str = STATE_BOUND
    first_order_id: str = ""
    # The rules the rewards were decided with (set with the first order).
    terms: ReferralSettings | None = None
    completed_at: datetime | None = None
    inviter_reward: Reward = field(default_factory=Reward)
    invitee_reward: Reward = field(default_factory=Reward)
    # The full refund of the first order that took the rewards back ("" while none did).
    reversed_by: str = ""
    inviter_reversal: Reversal = field(default_factory=Reversal)
    invitee_reversal: Reversal = field(default_factory=Reversal)
    version: int = 1

    @classmethod
    def bind(cls, referral_id: str, merchant_id: str, inviter_id: str, invitee_id: str, code: str,
             unionid_hash: str, now: datetime) -> "Referral":
        if inviter_id == invitee_id:
            raise ValueError("a member cannot invite themself")
        referral = cls(referral_id, merchant_id, inviter_id, invitee_id, code, now, unionid_hash)
        referral.record(ReferralBound(referral_id, inviter_id, invitee_id, now))
        return referral

    def rewarded(self, inviter: Reward, invitee: Reward) -> None:
        """Both sides were paid or refused: the referral is done."""
        self.state = STATE_REWARDED
        self.inviter_reward, self.invitee_reward = inviter, invitee
        self.record(ReferralRewarded(self.id, self.inviter_id, self.invitee_id, self.first_order_id, inviter,
                                     invitee))

    def reverse(self, refund_id: str, inviter: Reversal, invitee: Reversal, now: datetime) -> bool:
        """The first order was refunded in full after the rewards: they were taken back as
        far as they still could be. Once (False on a repeat); the monthly cap's place stays
        taken."""
        if self.state == STATE_REVERSED:
            return False
        if self.state != STATE_REWARDED:
            raise ValueError("only a rewarded referral is reversed")
        self.state = STATE_REVERSED
        self.reversed_by = refund_id
        self.inviter_reversal, self.invitee_reversal = inviter, invitee
        self.record(ReferralReversed(self.id, self.inviter_id, self.invitee_id, self.first_order_id, refund_id,
                                     inviter, invitee, now))
        return True


def reverses(order_payable: int, order_refunded: int, every_line_refunded: bool) -> bool:
    """Whether a refund takes the first order's rewards back: only one that leaves the
    whole order refunded, its whole amount or every unit of every line (after delivery the
    shipping fee is usually kept); a partial refund keeps the rewards."""
    return every_line_refunded or not counts(order_payable, order_refunded)


def points_reversal(book: PointsBook, referral_id: str, points: int, time_zone: str, now: datetime) -> Movement:
    """The inviter's referral points taken back: from available points, the rest owed;
    once per referral (the movement's cause)."""
    return book.take_back(Cause(REFERRAL, referral_id, REVERSE), points, time_zone, now)


def binding_refusal(invitee_id: str, inviter_id: str | None, chain: list[str]) -> str:
    """Why a new member cannot bind to the code's member ("" when they can): an unknown
    code, their own code, or an inviter whose chain of inviters (nearest first) holds the
    new member."""
    if inviter_id is None:
        return UNKNOWN_CODE
    if inviter_id == invitee_id:
        return SELF
    if invitee_id in chain:
        return CYCLE
    return ""


def inviter_reward_for(terms: ReferralSettings, cap_taken: bool) -> Reward:
    """The inviter's side before payment: what is owed (outcome "") or why nothing is."""
    if not terms.enabled:
        return Reward(DISABLED)
    if not cap_taken:
        return Reward(CAPPED)
    if terms.inviter_reward_kind == POINTS:
        return Reward("", points=terms.inviter_points) if terms.inviter_points > 0 else Reward(NONE)
    return Reward("") if terms.inviter_coupon_template_id else Reward(NONE)


def counts(order_payable: int, order_refunded: int) -> bool:
    """Whether a completed order can be the invitee's first: one refunded in full pays nothing."""
    return not (order_payable > 0 and order_refunded >= order_payable)


def points_movement(book: PointsBook, referral_id: str, points: int, key_now: str) -> Movement:
    """The inviter's points for a referral, available at once (paying off owed points
    first, as every credit does); once per referral (the movement's cause)."""
    pay = min(points, book.owed)
    rest = points - pay
    return Movement(Cause(REFERRAL, referral_id, REFERRAL), book.member_id, points=rest, available=rest, owed=-pay,
                    lots={key_now: rest} if rest else {})
