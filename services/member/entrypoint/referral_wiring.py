"""The referral part of the member service's wiring: use cases over the MongoDB stores,
the coupon hook and the points economy, and the durable consumer of order.completed that
pays an invitee's first completed order, and the consumer of order.refunded that takes those
rewards back when that order is refunded in full (once per referral: every step is unique by its
cause, so replays and a crash half-way pay nothing twice)."""
from __future__ import annotations

from datetime import timezone

from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2 as order_events

from services.member.adapters import referral_store, repositories
from services.member.application.coupons import CouponUseCases
from services.member.application.farm_guard import NewMemberGuard
from services.member.application.ports import MemberRepository, MerchantRepository, PhoneBook, PointsLedger
from services.member.application.referral import (FinishedOrder, RefundedOrder, ReferralCoupons, ReferralPoints,
                                                  Referrals)
from siyu_kit.events.consumer import Poison, Subscription


def use_cases(members: MemberRepository, merchants: MerchantRepository, phones: PhoneBook, ledger: PointsLedger,
              coupons: CouponUseCases, guard_key: bytes) -> Referrals:
    referral_store.ensure_indexes()
    guard = referral_store.FarmGuardRepository()
    # The coupon settings' new-member gift consults the same farm guard as the invitee coupon.
    coupons.farm_guard = NewMemberGuard(guard, phones, repositories.IdentityRepository(), guard_key)
    return Referrals(referral_store.InviteCodeRepository(), referral_store.ReferralRepository(),
                     referral_store.ReferralCapRepository(), guard,
                     referral_store.ReferralSettingsRepository(), members, phones, merchants,
                     ReferralCoupons(coupons), ReferralPoints(merchants, ledger), guard_key)


def outbox_collections() -> list:
    return referral_store.outbox_collections()


def finished_order(envelope: common_pb2.EventEnvelope, completed: order_events.OrderCompleted) -> FinishedOrder:
    order = completed.order
    if not (envelope.merchant_id and order.order_id and order.member_id):
        raise Poison("an OrderCompleted needs merchant, order and member")
    at = order.completed_at if order.HasField("completed_at") else envelope.occurred_at
    return FinishedOrder(merchant_id=envelope.merchant_id, order_id=order.order_id, member_id=order.member_id,
                         completed_at=at.ToDatetime(tzinfo=timezone.utc), payable=order.payable.amount,
                         refunded=order.refunded_amount.amount)


def refunded_order(envelope: common_pb2.EventEnvelope, refunded: order_events.OrderRefunded) -> RefundedOrder:
    order, refund = refunded.order, refunded.refund
    if not (envelope.merchant_id and order.order_id and order.member_id and refund.refund_id):
        raise Poison("an OrderRefunded needs merchant, order, member and refund")
    return RefundedOrder(merchant_id=envelope.merchant_id, order_id=order.order_id, member_id=order.member_id,
                         refund_id=refund.refund_id, payable=order.payable.amount,
                         refunded=order.refunded_amount.amount,
                         every_line_refunded=bool(order.lines) and all(line.refunded_quantity >= line.quantity
                                                                       for line in order.lines))


def subscriptions(referrals: Referrals) -> list[Subscription]:
    async def on_order_completed(envelope: common_pb2.EventEnvelope, completed: order_events.OrderCompleted) -> None:
        await referrals.on_order_completed(finished_order(envelope, completed))

    async def on_order_refunded(envelope: common_pb2.EventEnvelope, refunded: order_events.OrderRefunded) -> None:
        await referrals.on_order_refunded(refunded_order(envelope, refunded))

    return [Subscription.to("member-referral-order-completed", order_events.OrderCompleted, on_order_completed),
            # A full refund of a rewarded first order takes the rewards back.
            Subscription.to("member-referral-order-refunded", order_events.OrderRefunded, on_order_refunded)]
