"""The commissions and withdrawals part of the member service's wiring: the use cases
over the MongoDB stores and the order service's PayOutTransfer, durable consumers of the
order events that move commission records (paid, completed, settled, refunded, and
cancelled: a paid order whose units were gone voids them all; each carries the whole order), and the jobs.

Both jobs are safe on every replica at once: the withdrawal job leases each withdrawal
before it works on it (and the transfer is idempotent by withdrawal id), and the ledger
repair inserts entries whose cause is unique."""
from __future__ import annotations

from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2 as order_events

from services.member.adapters import commission_store
from services.member.adapters.commission_messages import NotCommission, order_commissions
from services.member.adapters.order_payouts import OrderPayoutsClient
from services.member.application.commissions import CommissionLedger
from services.member.application.withdrawals import Withdrawals
from siyu_kit import service
from siyu_kit.config import env_seconds
from siyu_kit.events.consumer import Poison, Subscription


def interval_s() -> float:
    return env_seconds("MEMBER_WITHDRAWAL_JOB_INTERVAL_S", 10)


def use_cases(runtime: service.Runtime) -> tuple[CommissionLedger, Withdrawals]:
    commission_store.ensure_indexes()
    store = commission_store.CommissionRepository()
    ledger = CommissionLedger(store, commission_store.StoredValueTotalsRepository())
    withdrawals = Withdrawals(commission_store.WithdrawalRepository(), commission_store.WithdrawalSettingsRepository(),
                              store, OrderPayoutsClient(runtime.channel("order")))
    return ledger, withdrawals


def subscriptions(ledger: CommissionLedger) -> list[Subscription]:
    def handler(settled: bool = False):
        async def on_order(envelope: common_pb2.EventEnvelope, event) -> None:
            try:
                commissions = order_commissions(envelope.merchant_id, event.order, envelope.occurred_at, settled)
            except NotCommission as error:
                raise Poison(str(error)) from error
            if commissions is not None:
                await ledger.on_order(commissions)
        return on_order

    return [Subscription.to("member-commission-paid", order_events.OrderPaid, handler()),
            Subscription.to("member-commission-completed", order_events.OrderCompleted, handler()),
            Subscription.to("member-commission-settled", order_events.OrderSettled, handler(settled=True)),
            Subscription.to("member-commission-refunded", order_events.OrderRefunded, handler()),
            Subscription.to("member-commission-cancelled", order_events.OrderCancelled, handler())]


def jobs(ledger: CommissionLedger, withdrawals: Withdrawals) -> list[service.Job]:
    every = interval_s()
    return [service.Job("member-withdrawals", every, withdrawals.resume),
            service.Job("member-commission-ledger-repair", every, ledger.repair)]
