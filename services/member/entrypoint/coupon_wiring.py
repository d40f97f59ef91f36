"""The coupon part of the member service's wiring: use cases over the MongoDB stores, the
new-member gift on the member-registered event, and the coupon jobs.

Every job is safe on every replica at once: each move is a conditional write (a versioned
save, the claiming entry's presence, a grant's version), so two replicas doing the same
pass change each thing once and the loser moves on."""
from __future__ import annotations

from siyu.common.v1 import common_pb2
from siyu.member.v1 import events_pb2

from services.member.adapters import coupon_store, repositories
from services.member.application.coupons import CouponUseCases
from services.member.application.ports import MemberRepository
from siyu_kit import service
from siyu_kit.config import env_seconds
from siyu_kit.events.consumer import Poison, Subscription

EXPIRY_INTERVAL_S = 60.0
LOCK_SWEEP_INTERVAL_S = 30.0
CLAIM_RECOVERY_INTERVAL_S = 30.0
GRANT_INTERVAL_S = 2.0


def _every(default_s: float) -> float:
    """SIYU_MEMBER_COUPON_JOB_INTERVAL_S, when set, runs every coupon job that often."""
    return env_seconds("MEMBER_COUPON_JOB_INTERVAL_S", default_s)


def use_cases(members: MemberRepository) -> CouponUseCases:
    coupon_store.ensure_indexes()
    return CouponUseCases(coupon_store.CouponTemplateRepository(), coupon_store.MemberCouponRepository(),
                          coupon_store.GrantJobRepository(), coupon_store.CouponSettingsRepository(), members,
                          audit=repositories.AuditLogRepository())


def outbox_collections() -> list:
    return coupon_store.outbox_collections()


def subscriptions(coupons: CouponUseCases) -> list[Subscription]:
    async def on_member_registered(envelope: common_pb2.EventEnvelope,
                                   registered: events_pb2.MemberRegistered) -> None:
        if not (envelope.merchant_id and registered.member.member_id):
            raise Poison("a MemberRegistered needs a merchant and a member")
        # Once per member: the gift's key is the member's, so a replay issues nothing. A
        # Conflict (the same gift mid-way in another delivery) is retried with backoff.
        await coupons.new_member_gift(envelope.merchant_id, registered.member.member_id)

    return [Subscription.to("member-coupon-new-member", events_pb2.MemberRegistered, on_member_registered)]


def jobs(coupons: CouponUseCases) -> list[service.Job]:
    return [service.Job("member-coupon-expiry", _every(EXPIRY_INTERVAL_S), coupons.expire_due),
            service.Job("member-coupon-lock-sweep", _every(LOCK_SWEEP_INTERVAL_S), coupons.release_overdue_locks),
            service.Job("member-coupon-claim-recovery", _every(CLAIM_RECOVERY_INTERVAL_S), coupons.recover_claims),
            service.Job("member-coupon-grants", _every(GRANT_INTERVAL_S), coupons.resume_grants)]
