"""Paying orders without servers: starting a payment, the provider's notifications, the
reconcile job and its lease, and refunding a paid order whose units were gone."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from siyu_kit.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound, Unauthenticated
from siyu_kit.ids import new_id
from tests.fakes.order import FakeOrders
from tests.fakes.order_money import (MEMBER, MERCHANT, ORD_1, ORD_2, FakeLedger, FakePayments, FakeProvider, acting,
                                     an_order)

from services.order.application.payments import PaymentUseCases
from services.order.domain import ledger
from services.order.domain.orders import OrderState
from services.order.domain.payments import Notification, PaymentState

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


class World:
    def __init__(self, now: datetime = T0):
        self.now = now
        self.orders, self.payments, self.ledger = FakeOrders(), FakePayments(), FakeLedger()
        self.provider = FakeProvider()
        self.cases = PaymentUseCases(orders=self.orders, payments=self.payments, provider=self.provider,
                                     entries=self.ledger, clock=lambda: self.now)

    def add_order(self, order_id: str = ORD_1, **changes):
        order = an_order(order_id, created_at=T0, **changes)
        self.orders.orders[order.id] = order
        return order

    async def pay(self, order_id: str = ORD_1, key: str = "p1"):
        with acting(member=MEMBER):
            return await self.cases.pay(order_id, key, "")

    def notification(self, payment, result: str = "SUCCESS", txn: str = "sbx_txn_a", **changes) -> Notification:
        n = Notification(payment_id=payment.id, provider_txn_id=txn, amount=payment.amount,
                         currency=payment.currency, result=result, timestamp=int(self.now.timestamp()))
        n = replace(n, **changes)
        return replace(n, signature=self.provider.sign(n))


@pytest.fixture
def world() -> World:
    return World()


# ---- starting a payment ---------------------------------------------------------------


async def test_pay_starts_a_pending_payment_of_what_the_order_asks(world):
    world.add_order()
    payment = await world.pay()
    assert payment.state is PaymentState.PENDING and payment.amount == 1000 and payment.currency == "CNY"
    assert world.payments.stored(payment.id).order_id == ORD_1 and payment.version == 1


async def test_pay_again_with_the_same_key_returns_the_first_payment(world):
    world.add_order()
    first = await world.pay()
    again = await world.pay()
    assert again.id == first.id and len(world.payments.payments) == 1


async def test_a_second_key_starts_a_second_payment(world):
    world.add_order()
    assert (await world.pay(key="p1")).id != (await world.pay(key="p2")).id


async def test_pay_refuses_an_expired_or_cancelled_order(world):
    world.add_order(ORD_1)
    world.add_order(ORD_2, state=OrderState.CANCELLED)
    world.now = T0 + timedelta(minutes=30)
    for order_id in (ORD_1, ORD_2):
        with pytest.raises(FailedPrecondition) as refused:
            await world.pay(order_id)
        assert refused.value.reason == "ORDER_NOT_PAYABLE"
    assert world.payments.payments == {}


async def test_pay_needs_a_member_an_order_of_theirs_and_valid_fields(world):
    world.add_order()
    with pytest.raises(NotFound):
        await world.pay(new_id("ord"))
    with pytest.raises(InvalidArgument) as invalid:
        with acting(member=MEMBER):
            await world.cases.pay("x", "", "CARD")
    assert {v.field for v in invalid.value.violations} == {"order_id", "idempotency_key", "method"}
    with pytest.raises(Unauthenticated):
        with acting(staff="stf_1", roles=("OWNER",)):
            await world.cases.pay(ORD_1, "p1", "")
    with pytest.raises(NotFound):
        with acting(member="mem_other"):
            await world.cases.pay(ORD_1, "p1", "")


# ---- notifications -----------------------------------------------------------------


async def test_success_pays_the_order_and_enters_the_ledger(world):
    world.add_order()
    payment = await world.pay()
    paid, applied = await world.cases.handle_callback(world.notification(payment))
    assert applied and paid.state is PaymentState.SUCCEEDED and paid.provider_txn_id == "sbx_txn_a"
    assert not paid.open  # applied and in the ledger: nothing left for the reconcile job
    order = world.orders.stored(ORD_1)
    assert (order.state, order.payment_id, order.paid_at) == (OrderState.PAID, payment.id, T0)
    assert world.orders.event_types(ORD_1) == ["OrderPaid"]
    [(_, _, event)] = world.orders.events
    assert event.payment_id == payment.id and event.payment.state is PaymentState.SUCCEEDED
    assert world.ledger.kinds(ORD_1) == ["ORDER_PAYMENT"]
    assert ledger.is_balanced(world.ledger.of_order(ORD_1), ORD_1, 1000, 0, [payment.id])
    assert world.payments.stored(payment.id).version == paid.version == 3  # succeeded, then closed


async def test_a_repeated_success_changes_nothing(world):
    world.add_order()
    payment = await world.pay()
    n = world.notification(payment)
    first, _ = await world.cases.handle_callback(n)
    writes = world.payments.writes + world.orders.writes
    again, applied = await world.cases.handle_callback(n)
    assert not applied and again.version == first.version
    assert world.payments.writes + world.orders.writes == writes
    assert world.orders.event_types() == ["OrderPaid"] and world.provider.refunds == []


async def test_a_bad_signature_or_a_mismatch_is_refused(world):
    world.add_order()
    payment = await world.pay()
    forged = replace(world.notification(payment), signature="forged")
    with pytest.raises(Unauthenticated) as refused:
        await world.cases.handle_callback(forged)
    assert refused.value.reason == "BAD_SIGNATURE"
    with pytest.raises(InvalidArgument) as invalid:
        await world.cases.handle_callback(world.notification(payment, amount=999, currency="USD"))
    assert {v.field for v in invalid.value.violations} == {"amount", "currency"}
    with pytest.raises(InvalidArgument):
        await world.cases.handle_callback(world.notification(payment, result="MAYBE", provider_txn_id=""))
    with pytest.raises(NotFound):
        await world.cases.handle_callback(world.notification(payment, payment_id=new_id("pay")))
    assert world.payments.stored(payment.id).state is PaymentState.PENDING


async def test_a_failure_leaves_the_payment_pending_and_counts_once_per_transaction(world):
    world.add_order()
    payment = await world.pay()
    failed, applied = await world.cases.handle_callback(world.notification(payment, "FAIL", "t1"))
    assert applied and failed.state is PaymentState.PENDING and failed.failures == 1
    assert failed.last_failure.provider_txn_id == "t1"
    again, applied = await world.cases.handle_callback(world.notification(payment, "FAIL", "t1"))
    assert not applied and again.failures == 1
    _, applied = await world.cases.handle_callback(world.notification(payment, "FAIL", "t2"))
    assert applied and world.payments.stored(payment.id).failures == 2
    # The member may still pay.
    paid, _ = await world.cases.handle_callback(world.notification(payment, txn="t3"))
    assert paid.state is PaymentState.SUCCEEDED and world.orders.stored(ORD_1).state is OrderState.PAID


async def test_a_failure_after_success_changes_nothing(world):
    world.add_order()
    payment = await world.pay()
    await world.cases.handle_callback(world.notification(payment))
    after, applied = await world.cases.handle_callback(world.notification(payment, "FAIL", "t9"))
    assert not applied and after.state is PaymentState.SUCCEEDED and after.failures == 0


async def test_a_failure_losing_its_compare_and_set_reports_nothing_applied(world):
    world.add_order()
    payment = await world.pay()
    world.payments.stale(1)
    failed, applied = await world.cases.handle_callback(world.notification(payment, "FAIL", "t1"))
    assert not applied and failed.failures == 0


@pytest.mark.parametrize("setup,reason", [
    ("expired", "ORDER_EXPIRED"), ("cancelled", "ORDER_CANCELLED"), ("paid_by_another", "ORDER_ALREADY_PAID")])
async def test_money_the_order_cannot_take_goes_back_through_unapplied(world, setup, reason):
    world.add_order()
    payment = await world.pay()
    if setup == "expired":
        world.now = T0 + timedelta(minutes=31)
    elif setup == "cancelled":
        world.orders.orders[ORD_1].state = OrderState.CANCELLED
    else:
        other = await world.pay(key="p0")
        await world.cases.handle_callback(world.notification(other, txn="t0"))
    refunded, applied = await world.cases.handle_callback(world.notification(payment))
    assert applied and refunded.state is PaymentState.REFUNDED and refunded.refund_reason == reason
    assert refunded.refund.amount == 1000 and not refunded.open
    assert world.provider.refunds[-1] == (payment.id, 1000)
    assert world.payments.event_types(payment.id) == ["PaymentRefunded"]
    entries = {e.kind for e in world.ledger.of_order(ORD_1) if e.payment_id == payment.id}
    assert entries == {"UNAPPLIED_PAYMENT", "AUTO_REFUND"}
    assert world.orders.stored(ORD_1).payment_id != payment.id
    # A repeat changes nothing and asks the provider for nothing more.
    again, applied = await world.cases.handle_callback(world.notification(payment))
    assert not applied and again.version == refunded.version and len(world.provider.refunds) == 1


async def test_a_repeat_of_an_auto_refunded_payment_records_what_the_ledger_lacks(world):
    world.add_order()
    payment = await world.pay()
    world.now = T0 + timedelta(minutes=31)
    n = world.notification(payment)
    await world.cases.handle_callback(n)
    world.ledger.entries.clear()  # as if the process died before the ledger writes
    await world.cases.handle_callback(n)
    assert world.ledger.kinds(ORD_1) == ["AUTO_REFUND", "UNAPPLIED_PAYMENT"]


async def test_the_order_changing_meanwhile_is_decided_again(world):
    world.add_order()
    payment = await world.pay()
    world.orders.stale_saves = 2
    paid, applied = await world.cases.handle_callback(world.notification(payment))
    assert applied and world.orders.stored(ORD_1).state is OrderState.PAID
    assert world.orders.event_types() == ["OrderPaid"]


async def test_an_order_that_keeps_changing_leaves_the_payment_open_for_the_job(world):
    world.add_order()
    payment = await world.pay()
    world.orders.stale_saves = 3
    with pytest.raises(Conflict) as busy:
        await world.cases.handle_callback(world.notification(payment))
    assert busy.value.reason == "ORDER_BUSY"
    stored = world.payments.stored(payment.id)
    assert stored.state is PaymentState.SUCCEEDED and stored.open
    assert world.orders.stored(ORD_1).state is OrderState.PENDING_PAYMENT
    # The provider's retry (or the job) finishes it.
    again, applied = await world.cases.handle_callback(world.notification(payment))
    assert applied and world.orders.stored(ORD_1).state is OrderState.PAID and not again.open


async def test_a_payment_that_keeps_changing_is_a_conflict(world):
    world.add_order()
    payment = await world.pay()
    world.payments.stale(3)
    with pytest.raises(Conflict) as busy:
        await world.cases.handle_callback(world.notification(payment))
    assert busy.value.reason == "CONCURRENT_UPDATE"


async def test_complete_sandbox_pays_through_the_same_handler(world):
    world.add_order()
    payment = await world.pay()
    with acting(member=MEMBER):
        n, paid = await world.cases.complete_sandbox(payment.id)
    assert world.provider.verify(n) and n.result == "SUCCESS" and n.amount == 1000
    assert paid.state is PaymentState.SUCCEEDED and world.orders.stored(ORD_1).state is OrderState.PAID
    with pytest.raises(NotFound):
        with acting(member="mem_other"):
            await world.cases.complete_sandbox(payment.id)


# ---- the reconcile job ------------------------------------------------------------


async def lost_after_success(world: World):
    """A payment that SUCCEEDED and whose order transition was lost (a crash)."""
    world.add_order()
    payment = await world.pay()
    world.orders.stale_saves = 3
    with pytest.raises(Conflict):
        await world.cases.handle_callback(world.notification(payment))
    return payment


async def test_the_job_finishes_an_open_payment_once_it_is_due(world):
    payment = await lost_after_success(world)
    assert await world.cases.reconcile() == 0  # not yet due
    world.now = T0 + timedelta(seconds=6)
    assert await world.cases.reconcile() == 1
    assert world.orders.stored(ORD_1).state is OrderState.PAID
    assert not world.payments.stored(payment.id).open
    assert world.ledger.kinds(ORD_1) == ["ORDER_PAYMENT"]
    assert await world.cases.reconcile() == 0


async def test_the_job_refunds_an_open_payment_the_order_can_no_longer_take(world):
    payment = await lost_after_success(world)
    world.now = T0 + timedelta(minutes=31)
    assert await world.cases.reconcile() == 1
    stored = world.payments.stored(payment.id)
    assert stored.state is PaymentState.REFUNDED and stored.refund_reason == "ORDER_EXPIRED"
    assert world.provider.refunds == [(payment.id, 1000)]


async def test_a_payment_another_run_took_is_left_to_it(world):
    payment = await lost_after_success(world)
    world.now = T0 + timedelta(seconds=6)
    due = await world.payments.open_due(int(world.now.timestamp() * 1000), 10)
    # Another replica takes it first: its lease moves the reconcile time on.
    seen = due[0].take_for_reconcile(world.now + timedelta(seconds=30))
    assert await world.payments.take_for_reconcile(due[0], seen)
    assert await world.cases.reconcile() == 0
    assert world.orders.stored(ORD_1).state is OrderState.PENDING_PAYMENT
    # When the lease runs out without the payment being finished, a run takes it again.
    world.now += timedelta(seconds=31)
    assert await world.cases.reconcile() == 1
    assert not world.payments.stored(payment.id).open


async def test_one_stuck_payment_does_not_hold_up_the_others(world):
    await lost_after_success(world)
    world.add_order(ORD_2)
    second = await world.pay(ORD_2)
    world.orders.stale_saves = 3
    with pytest.raises(Conflict):
        await world.cases.handle_callback(world.notification(second, txn="t2"))
    world.now = T0 + timedelta(seconds=6)
    world.orders.stale_saves = 3  # the first payment's order stays busy this run
    assert await world.cases.reconcile() == 1
    assert world.orders.stored(ORD_2).state is OrderState.PAID


# ---- units gone after payment -------------------------------------------------------


async def paid_order(world: World, order_id: str = ORD_1):
    world.add_order(order_id)
    payment = await world.pay(order_id)
    paid, _ = await world.cases.handle_callback(world.notification(payment))
    return paid


async def test_a_paid_order_whose_units_were_gone_is_refunded_and_cancelled(world):
    payment = await paid_order(world)
    order = await world.cases.refund_unfulfillable(MERCHANT, ORD_1, f"rsv_{ORD_1}")
    assert order.state is OrderState.CANCELLED and order.cancel_reason == "STOCK_UNAVAILABLE"
    assert order.refunded_amount == 1000
    stored = world.payments.stored(payment.id)
    assert stored.state is PaymentState.REFUNDED and stored.refund_reason == "STOCK_UNAVAILABLE"
    assert world.provider.refunds == [(payment.id, 1000)]
    assert world.orders.event_types(ORD_1) == ["OrderPaid", "OrderCancelled"]
    assert world.orders.events_of(ORD_1)[-1].reason == "STOCK_UNAVAILABLE"
    assert world.payments.event_types(payment.id) == ["PaymentRefunded"]
    assert world.ledger.kinds(ORD_1) == ["ORDER_PAYMENT", "STOCK_REFUND"]
    assert ledger.is_balanced(world.ledger.of_order(ORD_1), ORD_1, 1000, 1000, [payment.id])


async def test_a_redelivered_unfulfillable_event_changes_nothing_more(world):
    await paid_order(world)
    await world.cases.refund_unfulfillable(MERCHANT, ORD_1, f"rsv_{ORD_1}")
    writes = world.orders.writes + world.payments.writes
    again = await world.cases.refund_unfulfillable(MERCHANT, ORD_1, f"rsv_{ORD_1}")
    assert again.state is OrderState.CANCELLED
    assert world.orders.writes + world.payments.writes == writes and len(world.provider.refunds) == 1


async def test_a_cut_short_unfulfillable_refund_is_finished_by_the_redelivery(world):
    payment = await paid_order(world)
    world.orders.stale_saves = 3
    with pytest.raises(Conflict) as busy:
        await world.cases.refund_unfulfillable(MERCHANT, ORD_1, f"rsv_{ORD_1}")
    assert busy.value.reason == "ORDER_BUSY"
    assert world.payments.stored(payment.id).state is PaymentState.REFUNDED
    order = await world.cases.refund_unfulfillable(MERCHANT, ORD_1, f"rsv_{ORD_1}")
    assert order.state is OrderState.CANCELLED and len(world.provider.refunds) == 1


@pytest.mark.parametrize("changes", [{"state": OrderState.SHIPPED}, {"refunded_amount": 300}])
async def test_shipped_or_partly_refunded_orders_are_a_persons_decision(world, changes):
    await paid_order(world)
    for name, value in changes.items():
        setattr(world.orders.orders[ORD_1], name, value)
    with pytest.raises(FailedPrecondition) as refused:
        await world.cases.refund_unfulfillable(MERCHANT, ORD_1, f"rsv_{ORD_1}")
    assert refused.value.reason == "ORDER_NOT_REFUNDABLE" and world.provider.refunds == []


async def test_an_unknown_order_or_reservation_is_not_found(world):
    await paid_order(world)
    for order_id, reservation_id in ((new_id("ord"), f"rsv_{ORD_1}"), (ORD_1, "rsv_other")):
        with pytest.raises(NotFound):
            await world.cases.refund_unfulfillable(MERCHANT, order_id, reservation_id)
    world.add_order(ORD_2, state=OrderState.PAID)  # paid by nothing stored
    with pytest.raises(NotFound):
        await world.cases.refund_unfulfillable(MERCHANT, ORD_2, f"rsv_{ORD_2}")


async def test_pay_again_with_the_same_key_for_another_request_is_refused(world):
    world.add_order()
    first = await world.pay()
    with acting(member=MEMBER):
        assert (await world.cases.pay(ORD_1, "p1", "SANDBOX")).id == first.id  # the default method, named
    # A payment the key started for another method (a request this one does not repeat).
    world.payments.payments[first.id].request_hash = "another"
    with pytest.raises(AlreadyExists) as reused:
        await world.pay()
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED" and len(world.payments.payments) == 1
