"""The stored-value part of the member service's wiring: use cases over the MongoDB
stores and the order service, crediting paid recharge orders from order.paid, and the
jobs.

Both jobs are safe on every replica at once: the recharge-refund retry leases each
account before asking the order service (which refunds once per recharge however often
it is asked), and the ledger repair inserts entries whose cause is unique."""
from __future__ import annotations

from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2 as order_events

from services.member.adapters import stored_value_store
from services.member.adapters.order_refunds import OrderRefundsClient
from services.member.application.ports import MemberRepository
from services.member.application.stored_value import RechargePaid, StoredValue, UnknownMember
from siyu_kit import service
from siyu_kit.config import env_seconds
from siyu_kit.events.consumer import Poison, Subscription


def interval_s() -> float:
    return env_seconds("MEMBER_BALANCE_JOB_INTERVAL_S", 30)


def use_cases(runtime: service.Runtime, members: MemberRepository) -> StoredValue:
    stored_value_store.ensure_indexes()
    return StoredValue(stored_value_store.RechargePackageRepository(), stored_value_store.BalanceRepository(),
                       members, OrderRefundsClient(runtime.channel("order")))


def outbox_collections() -> list:
    return stored_value_store.outbox_collections()


def recharge_paid(envelope: common_pb2.EventEnvelope, paid: order_events.OrderPaid) -> RechargePaid:
    order, detail = paid.order, paid.recharge
    if not (envelope.merchant_id and order.order_id and order.member_id):
        raise Poison("a recharge's OrderPaid needs merchant, order and member")
    if detail.principal < 0 or detail.bonus < 0 or detail.principal + detail.bonus <= 0:
        raise Poison("a recharge credits principal and bonus ≥ 0, together more than 0")
    return RechargePaid(merchant_id=envelope.merchant_id, member_id=order.member_id, order_id=order.order_id,
                        package_id=detail.package_id, principal=detail.principal, bonus=detail.bonus)


def subscriptions(stored_value: StoredValue) -> list[Subscription]:
    async def on_order_paid(envelope: common_pb2.EventEnvelope, paid: order_events.OrderPaid) -> None:
        if not paid.HasField("recharge"):
            return  # an order of goods: nothing to credit
        try:
            # Once per order: the credit's cause is the order, so a replay changes nothing.
            await stored_value.on_recharge_paid(recharge_paid(envelope, paid))
        except UnknownMember as error:
            raise Poison(str(error)) from error

    return [Subscription.to("member-balance-recharge", order_events.OrderPaid, on_order_paid)]


def jobs(stored_value: StoredValue) -> list[service.Job]:
    every = interval_s()
    return [service.Job("member-balance-recharge-refunds", every, stored_value.retry_refunds),
            service.Job("member-balance-ledger-repair", every, stored_value.repair)]
