"""What the referral use cases need from outside. Every method is async; implementations
live in services/member/adapters/referral_store.py and are wired in at start-up."""
from __future__ import annotations

from datetime import datetime
from typing import Protocol

from services.member.domain.referral import Referral, ReferralSettings


class InviteCodes(Protocol):
    async def code_of(self, merchant_id: str, member_id: str) -> str | None: ...

    async def member_of(self, merchant_id: str, code: str) -> str | None: ...

    async def add(self, merchant_id: str, member_id: str, code: str) -> bool:
        """False when the code is another member's or the member has a code already
        (unique per merchant, both)."""
        ...


class ReferralRepository(Protocol):
    async def of_invitee(self, merchant_id: str, invitee_id: str) -> Referral | None: ...

    async def add(self, referral: Referral) -> bool:
        """Stores a binding with its events; False when the invitee is bound already
        (one referral per invitee: the first binding wins)."""
        ...

    async def claim_first_order(self, merchant_id: str, referral_id: str, order_id: str, terms: ReferralSettings,
                                completed_at: datetime) -> bool:
        """Makes the order the referral's first completed one, with the rules its rewards
        are decided by: one conditional update on the referral having none yet."""
        ...

    async def save(self, referral: Referral) -> None:
        """Compare-and-set on the version read; StaleVersion on a lost race."""
        ...

    async def of_inviter(self, merchant_id: str, inviter_id: str, before_id: str, limit: int) -> list[Referral]:
        """The inviter's referrals, newest first, older than `before_id` when given."""
        ...


class ReferralCaps(Protocol):
    async def take(self, merchant_id: str, inviter_id: str, month: str, referral_id: str, cap: int) -> bool:
        """Takes one of the inviter's rewards of the month for the referral: ONE
        conditional update (fewer than `cap` taken, this referral not among them). True
        also when this referral had taken its place before (a replay)."""
        ...


class FarmGuard(Protocol):
    async def holders(self, merchant_id: str, hashes: list[str]) -> set[str]:
        """The members a new-member reward was paid to under any of these keyed hashes."""
        ...

    async def add(self, merchant_id: str, hashes: list[str], member_id: str) -> None:
        """Keeps the hashes of a member who got a new-member reward (kept past erasure)."""
        ...


class ReferralSettingsStore(Protocol):
    async def get(self, merchant_id: str) -> ReferralSettings: ...

    async def put(self, merchant_id: str, settings: ReferralSettings) -> None: ...


class CouponRewards(Protocol):
    async def reward(self, merchant_id: str, member_id: str, template_id: str, cause_id: str) -> tuple[str, str]:
        """Issues the referral coupon once per cause: (coupon id, "") or ("", why not)."""
        ...

    async def revoke(self, merchant_id: str, member_id: str, coupon_id: str) -> str:
        """Takes the coupon back while it is AVAILABLE: its state after (REVOKED, or USED,
        LOCKED, EXPIRED as it stays); "" when the member has no such coupon."""
        ...

    async def has_template(self, merchant_id: str, template_id: str) -> bool: ...


class PointsRewards(Protocol):
    async def reward(self, merchant_id: str, member_id: str, referral_id: str, points: int) -> None:
        """Credits the inviter's points once per referral (a points movement whose cause
        is the referral)."""
        ...

    async def take_back(self, merchant_id: str, member_id: str, referral_id: str, points: int) -> int | None:
        """Takes the referral's points back once (a movement whose cause is the referral's
        reversal): from available points, the rest recorded as owed. How many are owed;
        None when the referral's points were never credited."""
        ...
