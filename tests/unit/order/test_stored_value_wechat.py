"""Paying with balance through WeChat Pay, without servers: the WeChat stand-in (in
process) takes the provider part, the balance the rest; a balance that covers the order
makes no prepay at all."""
from __future__ import annotations

import pytest

from tests.fakes.balance import FakeBalances, FakeTenders
from tests.fakes.order_money import MEMBER, ORD_1
from tests.unit.order.test_wechat_pay import World

from services.order.domain.orders import OrderState
from services.order.domain.payments import PaymentMethod, PaymentState
from siyu_kit import context


@pytest.fixture
async def world():
    w = World()
    yield w
    await w.http.aclose()
    await w.client.close()


def with_balance(world: World, available: int) -> FakeBalances:
    balances = FakeBalances(available={MEMBER: available})
    world.base.balances, world.base.tenders = balances, FakeTenders(world.orders)
    return balances


async def pay(world: World, key: str = "k1"):
    token = context.use(context.RequestContext(request_id="req_t", merchant_id=world.order.merchant_id,
                                               caller_kind="member", caller_id=MEMBER, channel="MINI_PROGRAM"))
    try:
        return await world.cases.pay(ORD_1, key, use_balance=True)
    finally:
        context.reset(token)


async def test_wechat_takes_what_the_balance_leaves(world):
    await world.set_up()
    balances = with_balance(world, 300)
    payment, params = await pay(world)
    assert payment.method is PaymentMethod.WECHAT and (payment.amount, payment.balance) == (700, 300)
    assert params is not None and params.package == f"prepay_id={payment.prepay_id}"
    headers, body = await world.complete(payment.prepay_id)
    paid, applied = await world.cases.notify(world.order.merchant_id, headers, body)
    assert applied and paid.state is PaymentState.SUCCEEDED
    order = world.orders.stored(ORD_1)
    assert order.state is OrderState.PAID and order.stored_value.balance == 300
    assert balances.state(ORD_1) == "CAPTURED"


async def test_a_balance_that_covers_the_order_makes_no_prepay(world):
    await world.set_up()
    with_balance(world, 5000)
    payment, params = await pay(world)
    assert params is None and payment.method is PaymentMethod.BALANCE and not payment.prepay_id
    assert world.orders.stored(ORD_1).state is OrderState.PAID
