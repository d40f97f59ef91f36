"""Stored value in the order service without servers: recharge orders, paying with
balance (alone or with the provider), the member calls the order's state owes, refunds
split between balance and provider, and refunding a recharge order."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from siyu_kit.errors import (AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied,
                             Unauthenticated, Unavailable)
from siyu_kit.ids import new_id
from tests.fakes.balance import FakeBalances, FakePackages, FakeTenders
from tests.fakes.order import FakeOrders
from tests.fakes.order_money import (MEMBER, MERCHANT, OLN_1, OLN_2, ORD_1, FakeLedger, FakePayments, FakeProvider,
                                     FakeRefunds, FakeSettings, FakeStock, acting, an_order)

from services.order.application.payments import PaymentUseCases
from services.order.application.ports import RechargePackage
from services.order.application.refunds import RefundInput, RefundUseCases
from services.order.application.stored_value import StoredValueUseCases
from services.order.domain import ledger
from services.order.domain.orders import OrderState
from services.order.domain.payments import Notification, PaymentMethod, PaymentState
from services.order.domain.refunds import LineRequest, RefundState
from services.order.domain.settings import OrderSettings
from services.order.domain.tender import Hold, Tender

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
PACKAGE = RechargePackage(package_id=new_id("rcp"), name="充100送20", price=10000, bonus=2000)


class World:
    def __init__(self, balance: int = 0):
        self.now = T0
        self.orders, self.payments, self.ledger = FakeOrders(), FakePayments(), FakeLedger()
        self.refunds, self.provider, self.stock = FakeRefunds(), FakeProvider(), FakeStock()
        self.balances = FakeBalances(available={MEMBER: balance})
        self.packages = FakePackages()
        self.packages.add(PACKAGE)
        self.tenders = FakeTenders(self.orders)
        settings = FakeSettings(OrderSettings(after_sales_days=7))
        self.pay_cases = PaymentUseCases(orders=self.orders, payments=self.payments, provider=self.provider,
                                         entries=self.ledger, clock=lambda: self.now, balances=self.balances,
                                         tenders=self.tenders)
        self.refund_cases = RefundUseCases(orders=self.orders, refunds=self.refunds, payments=self.payments,
                                           entries=self.ledger, settings=settings, provider=self.provider,
                                           stock=self.stock, clock=lambda: self.now, balances=self.balances)
        self.cases = StoredValueUseCases(orders=self.orders, packages=self.packages, balances=self.balances,
                                         settings=settings, clock=lambda: self.now)

    def add_order(self, order_id: str = ORD_1, lines=((OLN_1, 2, 1000), (OLN_2, 1, 500))):
        order = an_order(order_id, lines=lines, created_at=T0)
        self.orders.orders[order.id] = order
        return order

    async def pay(self, use_balance: bool, key: str = "p1", order_id: str = ORD_1):
        with acting(member=MEMBER):
            return await self.pay_cases.pay(order_id, key, "", use_balance=use_balance)

    async def provider_says_paid(self, payment):
        n = Notification(payment_id=payment.id, provider_txn_id=f"txn_{payment.id}", amount=payment.amount,
                         currency=payment.currency, result="SUCCESS", timestamp=int(self.now.timestamp()))
        return await self.pay_cases.handle_callback(replace(n, signature=self.provider.sign(n)))

    async def place_recharge(self, key: str = "r1", package_id: str = PACKAGE.package_id):
        with acting(member=MEMBER):
            return await self.cases.place_recharge(key, package_id)

    def balanced(self, order_id: str = ORD_1) -> bool:
        order = self.orders.stored(order_id)
        captured = [p.id for p in self.payments.payments.values()
                    if p.order_id == order_id and p.amount > 0 and p.state is not PaymentState.PENDING]
        return ledger.is_balanced(self.ledger.of_order(order_id), order_id, order.payable if order.payment_id else 0,
                                  order.refunded_amount, captured)


@pytest.fixture
def world() -> World:
    return World(balance=1000)


# ---- recharge orders ------------------------------------------------------------------


async def test_a_recharge_order_is_one_virtual_line_at_the_package_price(world):
    order = await world.place_recharge()
    assert order.state is OrderState.PENDING_PAYMENT and order.payable == order.total == 10000
    assert [(l.sku_id, l.quantity, l.paid_amount) for l in order.lines] == [("", 1, 10000)]
    assert order.stored_value.is_recharge and order.stored_value.recharge.bonus == 2000
    assert order.stored_value.recharge.principal == 10000 and order.reservation_id == ""
    assert order.expires_at == T0 + timedelta(seconds=OrderSettings().unpaid_expiry_s)
    assert world.orders.event_types(order.id) == ["OrderPlaced"]


async def test_placing_a_recharge_again_with_the_key_answers_the_first_order(world):
    first = await world.place_recharge()
    assert (await world.place_recharge()).id == first.id and len(world.orders.orders) == 1
    with pytest.raises(AlreadyExists):
        await world.place_recharge(package_id=new_id("rcp"))


async def test_a_package_not_on_offer_or_bad_input_writes_nothing(world):
    with pytest.raises(NotFound) as missing:
        await world.place_recharge(package_id=new_id("rcp"))
    assert missing.value.reason == "RECHARGE_PACKAGE_NOT_OFFERED"
    with pytest.raises(InvalidArgument) as bad:
        await world.place_recharge(key="has space", package_id="pkg_1")
    assert {v.field for v in bad.value.violations} == {"idempotency_key", "package_id"}
    assert world.orders.orders == {}


async def test_only_a_member_places_a_recharge_order(world):
    with acting(staff="stf_1", roles=("OPERATOR",)), pytest.raises((PermissionDenied, Unauthenticated)):
        await world.cases.place_recharge("r1", PACKAGE.package_id)
    assert world.orders.orders == {}


async def test_a_recharge_order_is_paid_through_the_provider_never_with_balance(world):
    order = await world.place_recharge()
    with pytest.raises(FailedPrecondition) as refused:
        await world.pay(use_balance=True, order_id=order.id)
    assert refused.value.reason == "RECHARGE_NOT_PAYABLE_WITH_BALANCE" and world.balances.calls == []
    payment = await world.pay(use_balance=False, order_id=order.id)
    await world.provider_says_paid(payment)
    paid = world.orders.stored(order.id)
    assert paid.state is OrderState.PAID and payment.amount == 10000 and world.balanced(order.id)


async def test_a_paid_recharge_order_is_never_shipped_and_refunded_only_through_the_member_service(world):
    order = await world.place_recharge()
    await world.provider_says_paid(await world.pay(use_balance=False, order_id=order.id))
    paid = world.orders.stored(order.id)
    with pytest.raises(FailedPrecondition):
        paid.ship("SF", "SF1", 0, auto_confirm_days=7, open_refunds=0)
    with acting(member=MEMBER), pytest.raises(FailedPrecondition) as refused:
        await world.refund_cases.request(RefundInput(order.id, "r1", [LineRequest(paid.lines[0].line_id, 1)]))
    assert refused.value.reason == "NOT_A_RECHARGE_ORDER"


# ---- paying with balance --------------------------------------------------------------


async def test_balance_that_covers_the_order_pays_it_at_once_without_the_provider():
    world = World(balance=5000)
    world.add_order()
    payment = await world.pay(use_balance=True)
    order = world.orders.stored(ORD_1)
    assert payment.method is PaymentMethod.BALANCE and payment.amount == 0 and payment.balance == 1500
    assert payment.state is PaymentState.SUCCEEDED and order.state is OrderState.PAID
    assert order.stored_value.tender == Tender(balance=1500, provider=0)
    assert world.balances.state(ORD_1) == "CAPTURED" and world.balances.available[MEMBER] == 3500
    assert world.ledger.kinds(ORD_1) == ["BALANCE_PAYMENT"] and world.balanced()
    assert (await world.pay(use_balance=True)).id == payment.id  # a repeat of the key


async def test_balance_first_and_the_rest_through_the_provider(world):
    world.add_order()
    payment = await world.pay(use_balance=True)
    order = world.orders.stored(ORD_1)
    assert payment.method is PaymentMethod.SANDBOX and (payment.amount, payment.balance) == (500, 1000)
    assert order.state is OrderState.PENDING_PAYMENT and order.stored_value.hold is Hold.HELD
    assert world.balances.state(ORD_1) == "HELD" and world.balances.count("capture") == 0
    await world.provider_says_paid(payment)
    order = world.orders.stored(ORD_1)
    assert order.state is OrderState.PAID and order.stored_value.tender == Tender(balance=1000, provider=500)
    assert world.balances.state(ORD_1) == "CAPTURED"
    assert world.ledger.kinds(ORD_1) == ["BALANCE_PAYMENT", "ORDER_PAYMENT"] and world.balanced()


async def test_an_empty_balance_leaves_the_whole_order_to_the_provider():
    world = World(balance=0)
    world.add_order()
    payment = await world.pay(use_balance=True)
    assert (payment.amount, payment.balance) == (1500, 0)
    await world.provider_says_paid(payment)
    assert world.orders.stored(ORD_1).state is OrderState.PAID and world.balances.count("capture") == 0


async def test_a_capture_the_member_service_missed_is_made_by_the_orders_paid_event(world):
    world.add_order()
    payment = await world.pay(use_balance=True)
    world.balances.fail_next = 1
    await world.provider_says_paid(payment)
    assert world.orders.stored(ORD_1).state is OrderState.PAID and world.balances.state(ORD_1) == "HELD"
    assert await world.cases.settle_hold(MERCHANT, ORD_1) == "CAPTURE"
    assert world.balances.state(ORD_1) == "CAPTURED"
    assert await world.cases.settle_hold(MERCHANT, ORD_1) == "CAPTURE"  # a redelivery: idempotent
    assert world.balances.available[MEMBER] == 0


async def test_a_cancelled_order_gives_its_hold_back(world):
    world.add_order()
    await world.pay(use_balance=True)
    order = world.orders.stored(ORD_1)
    order.cancel(T0)
    await world.orders.save(order)
    assert await world.cases.settle_hold(MERCHANT, ORD_1) == "RELEASE"
    assert world.balances.available[MEMBER] == 1000 and world.balances.state(ORD_1) == "RELEASED"


async def test_a_member_service_that_is_away_fails_the_event_so_it_is_delivered_again(world):
    world.add_order()
    await world.pay(use_balance=True)
    order = world.orders.stored(ORD_1)
    order.cancel(T0)
    await world.orders.save(order)
    world.balances.fail_next = 1
    with pytest.raises(Unavailable):
        await world.cases.settle_hold(MERCHANT, ORD_1)
    assert await world.cases.settle_hold(MERCHANT, ORD_1) == "RELEASE"


async def test_paying_again_without_balance_gives_the_hold_back_and_the_earlier_payment_is_sent_back(world):
    world.add_order()
    with_balance = await world.pay(use_balance=True, key="p1")
    without = await world.pay(use_balance=False, key="p2")
    assert without.amount == 1500 and world.balances.available[MEMBER] == 1000
    assert world.orders.stored(ORD_1).stored_value.hold is Hold.RELEASING
    payment, _ = await world.provider_says_paid(with_balance)  # the old one: it no longer fits
    assert payment.state is PaymentState.REFUNDED and payment.refund_reason == "TENDER_CHANGED"
    assert world.orders.stored(ORD_1).state is OrderState.PENDING_PAYMENT
    await world.provider_says_paid(without)
    assert world.orders.stored(ORD_1).state is OrderState.PAID and world.balanced()
    with pytest.raises(FailedPrecondition):
        await world.pay(use_balance=True, key="p3")


async def test_a_hold_the_member_service_could_not_make_leaves_the_order_payable(world):
    world.add_order()
    world.balances.fail_next = 1
    with pytest.raises(Unavailable):
        await world.pay(use_balance=True)
    assert world.payments.payments == {} and world.orders.stored(ORD_1).stored_value.hold is Hold.ASKED
    payment = await world.pay(use_balance=True)
    assert (payment.amount, payment.balance) == (500, 1000)


async def test_balance_is_only_held_for_the_members_own_payable_order(world):
    world.add_order()
    world.orders.orders[ORD_1].state = OrderState.CANCELLED
    with pytest.raises(FailedPrecondition):
        await world.pay(use_balance=True)
    with pytest.raises(NotFound):
        await world.pay(use_balance=True, order_id=new_id("ord"))
    assert world.balances.calls == []


# ---- refunds ----------------------------------------------------------------------------


async def _paid_with_balance_and_provider(world: World) -> None:
    world.add_order()
    await world.provider_says_paid(await world.pay(use_balance=True))


async def staff_refund(world: World, key: str, *lines: LineRequest):
    with acting(staff="stf_1", roles=("FINANCE",)):
        return await world.refund_cases.create(RefundInput(ORD_1, key, list(lines)))


async def test_refunds_split_in_the_tenders_proportion_and_return_each_part_exactly(world):
    await _paid_with_balance_and_provider(world)  # 1000 balance + 500 provider
    first = await staff_refund(world, "s1", LineRequest(OLN_1, 1))  # 500
    second = await staff_refund(world, "s2", LineRequest(OLN_1, 1))  # 500
    third = await staff_refund(world, "s3", LineRequest(OLN_2, 1))  # 500
    assert all(r.state is RefundState.REFUNDED for r in (first, second, third))
    to_balance = {rid: amount for rid, (_, amount) in world.balances.refunded.items()}
    assert to_balance == {first.id: 333, second.id: 333, third.id: 334}
    assert sorted(a for _, a in world.provider.refunds) == [166, 167, 167]
    order = world.orders.stored(ORD_1)
    assert order.stored_value.tender == Tender(1000, 500, 1000, 500) and world.balanced()
    assert world.balances.available[MEMBER] == 1000


async def test_an_order_paid_wholly_with_balance_refunds_without_the_provider():
    world = World(balance=5000)
    world.add_order()
    await world.pay(use_balance=True)
    refund = await staff_refund(world, "s1", LineRequest(OLN_2, 1))
    assert refund.state is RefundState.REFUNDED and world.provider.refunds == []
    assert world.balances.refunded == {refund.id: (ORD_1, 500)} and world.balanced()


async def test_a_refund_whose_balance_part_failed_is_finished_by_running_it_again(world):
    await _paid_with_balance_and_provider(world)
    world.balances.fail_next = 1
    with pytest.raises(Unavailable):
        await staff_refund(world, "s1", LineRequest(OLN_2, 1))
    refund = next(iter(world.refunds.refunds.values()))
    assert refund.state is RefundState.APPROVED and world.provider.refunds == []
    with acting(staff="stf_1", roles=("FINANCE",)):
        done = await world.refund_cases.create(RefundInput(ORD_1, "s1", [LineRequest(OLN_2, 1)]))
    assert done.state is RefundState.REFUNDED
    assert world.balances.refunded == {refund.id: (ORD_1, 333)} and world.provider.refunds[-1][1] == 167
    assert world.balanced()


# ---- refunding a recharge order (the member service asks) --------------------------------


async def _paid_recharge(world: World):
    order = await world.place_recharge()
    await world.provider_says_paid(await world.pay(use_balance=False, order_id=order.id))
    return world.orders.stored(order.id)


def internal():
    return acting()


async def test_a_recharge_order_is_refunded_in_full_through_the_provider_once(world):
    order = await _paid_recharge(world)
    recharge_id = new_id("rch")
    with internal():
        refund = await world.refund_cases.refund_recharge(order.id, recharge_id, 10000, "finance")
        again = await world.refund_cases.refund_recharge(order.id, recharge_id, 10000, "finance")
    assert refund.state is RefundState.REFUNDED and again.id == refund.id
    assert world.provider.refunds == [(order.payment_id, 10000)] and world.stock.returns == []
    assert world.orders.stored(order.id).refunded_amount == 10000 and world.balanced(order.id)


async def test_refunding_a_recharge_order_refuses_a_wrong_amount_another_order_and_bad_ids(world):
    order = await _paid_recharge(world)
    world.add_order()
    with internal():
        with pytest.raises(InvalidArgument) as wrong:
            await world.refund_cases.refund_recharge(order.id, new_id("rch"), 9999, "")
        assert wrong.value.reason == "RECHARGE_REFUND_AMOUNT_MISMATCH"
        with pytest.raises(FailedPrecondition) as goods:
            await world.refund_cases.refund_recharge(ORD_1, new_id("rch"), 1500, "")
        assert goods.value.reason == "NOT_A_RECHARGE_ORDER"
        with pytest.raises(InvalidArgument) as bad:
            await world.refund_cases.refund_recharge("ord_x", "rch_x", 0, "")
        assert {v.field for v in bad.value.violations} == {"order_id", "recharge_id", "amount"}
        with pytest.raises(NotFound):
            await world.refund_cases.refund_recharge(new_id("ord"), new_id("rch"), 10000, "")
    assert world.refunds.refunds == {} and world.provider.refunds == []


async def test_a_paid_order_whose_units_were_gone_gives_its_balance_part_back_too(world):
    await _paid_with_balance_and_provider(world)
    order = world.orders.stored(ORD_1)
    await world.pay_cases.refund_unfulfillable(MERCHANT, ORD_1, order.reservation_id)
    cancelled = world.orders.stored(ORD_1)
    assert cancelled.state is OrderState.CANCELLED and cancelled.refunded_amount == 1500
    assert [a for _, a in world.provider.refunds] == [500]
    assert [a for _, a in world.balances.refunded.values()] == [1000] and world.balanced()
    await world.pay_cases.refund_unfulfillable(MERCHANT, ORD_1, order.reservation_id)  # a redelivery
    assert len(world.balances.refunded) == 1 and len(world.provider.refunds) == 1


async def test_a_tender_write_that_loses_to_another_writer_reads_the_order_again(world):
    world.add_order()
    world.orders.stale_saves = 1  # another write of the order comes first
    payment = await world.pay(use_balance=True)
    assert (payment.amount, payment.balance) == (500, 1000) and world.balances.count("hold") == 1
    assert world.orders.stored(ORD_1).stored_value.hold is Hold.HELD


async def test_a_balance_payment_cut_short_before_it_settled_is_finished_by_its_key():
    world = World(balance=5000)
    world.add_order()
    succeeded = world.pay_cases.succeeded

    async def crash(*args):
        raise RuntimeError("the process died")

    world.pay_cases.succeeded = crash
    with pytest.raises(RuntimeError):
        await world.pay(use_balance=True)
    world.pay_cases.succeeded = succeeded
    payment = await world.pay(use_balance=True)
    assert payment.state is PaymentState.SUCCEEDED and world.orders.stored(ORD_1).state is OrderState.PAID
    assert world.balances.state(ORD_1) == "CAPTURED"


async def test_an_order_paid_while_its_hold_was_being_made_records_no_hold(world):
    world.add_order()
    hold = world.balances.hold

    async def paid_meanwhile(member_id: str, order_id: str, max_amount: int) -> int:
        held = await hold(member_id, order_id, max_amount)
        stored = world.orders.orders[ORD_1]  # another payment paid the order meanwhile
        stored.state, stored.version = OrderState.PAID, stored.version + 1
        return held

    world.balances.hold = paid_meanwhile
    with pytest.raises(FailedPrecondition) as refused:
        await world.pay(use_balance=True)
    assert refused.value.reason == "ORDER_NOT_PAYABLE" and world.payments.payments == {}
    assert world.orders.stored(ORD_1).stored_value.hold is Hold.ASKED  # order.paid gives the hold back
