"""After-sales refunds without servers: members request, staff approve, reject or create
them, execution returns the money once, and the job finishes refunds cut short."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from siyu_kit.errors import (AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, 
                             Unauthenticated)
from siyu_kit.ids import new_id
from tests.fakes.order import FakeOrders
from tests.fakes.order_money import (MEMBER, MERCHANT, OLN_1, OLN_2, ORD_1, FakeLedger, FakePayments, FakeProvider,
                                     FakeRefunds, FakeSettings, FakeStock, acting, an_order)

from services.order.application.refunds import STALL_MS, RefundInput, RefundUseCases
from services.order.domain import ledger
from services.order.domain.orders import OrderState
from services.order.domain.payments import Payment, PaymentState
from services.order.domain.refunds import LineRequest, RefundState
from services.order.domain.settings import OrderSettings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
PAY_1 = new_id("pay")


class World:
    def __init__(self, after_sales_days: int = 7):
        self.now = T0
        self.orders, self.refunds, self.payments = FakeOrders(), FakeRefunds(), FakePayments()
        self.ledger, self.provider, self.stock = FakeLedger(), FakeProvider(), FakeStock()
        self.cases = RefundUseCases(orders=self.orders, refunds=self.refunds, payments=self.payments,
                                    entries=self.ledger, settings=FakeSettings(OrderSettings(
                                        after_sales_days=after_sales_days)),
                                    provider=self.provider, stock=self.stock, clock=lambda: self.now)

    def paid_order(self, state: OrderState = OrderState.PAID, shipping_fee: int = 0, **changes):
        """A paid order of two lines: 2 units for 1000, 1 unit for 500."""
        order = an_order(ORD_1, lines=((OLN_1, 2, 1000), (OLN_2, 1, 500)), shipping_fee=shipping_fee,
                         created_at=T0, state=state, payment_id=PAY_1, paid_at=T0, **changes)
        self.orders.orders[order.id] = order
        payment = Payment.start(PAY_1, merchant_id=MERCHANT, member_id=MEMBER, order_id=order.id,
                                idempotency_key="p", amount=order.payable, currency="CNY", now=T0)
        payment.state, payment.provider_txn_id = PaymentState.SUCCEEDED, "sbx_txn_1"
        self.payments.payments[payment.id] = payment
        return order

    async def request(self, *lines: LineRequest, key: str = "r1", order_id: str = ORD_1):
        with acting(member=MEMBER):
            return await self.cases.request(RefundInput(order_id, key, list(lines), reason="broken"))

    async def create(self, *lines: LineRequest, key: str = "s1"):
        with acting(staff="stf_1", roles=("FINANCE",)):
            return await self.cases.create(RefundInput(ORD_1, key, list(lines)))

    async def approve(self, refund_id: str):
        with acting(staff="stf_1", roles=("OPERATOR",)):
            return await self.cases.approve(refund_id)

    async def reject(self, refund_id: str, note: str = "no"):
        with acting(staff="stf_1", roles=("OPERATOR",)):
            return await self.cases.reject(refund_id, note)


@pytest.fixture
def world() -> World:
    return World()


def one(quantity: int = 1, amount: int | None = None, line_id: str = OLN_1) -> LineRequest:
    return LineRequest(line_id, quantity, amount)


# ---- members ask ----------------------------------------------------------------------


async def test_a_member_requests_a_refund_of_some_units(world):
    world.paid_order()
    refund = await world.request(one(1))
    assert refund.state is RefundState.REQUESTED and refund.amount == 500 and refund.reason == "broken"
    assert [(l.line_id, l.quantity, l.amount, l.explicit) for l in refund.lines] == [(OLN_1, 1, 500, False)]
    assert world.refunds.stored(refund.id).version == 1
    # Nothing moves until staff approve.
    assert world.orders.events == [] and world.provider.refunds == [] and world.ledger.entries == {}


async def test_a_request_with_the_same_key_returns_the_first(world):
    world.paid_order()
    first = await world.request(one(1))
    again = await world.request(one(1), key="r1")
    assert again.id == first.id and again.lines == first.lines and len(world.refunds.refunds) == 1


@pytest.mark.parametrize("state", [OrderState.PENDING_PAYMENT, OrderState.CANCELLED])
async def test_an_unpaid_or_cancelled_order_cannot_be_refunded(world, state):
    world.paid_order(state=state)
    with pytest.raises(FailedPrecondition) as refused:
        await world.request(one())
    assert refused.value.reason == "ORDER_NOT_REFUNDABLE"


async def test_the_after_sales_window_closes_days_after_completion(world):
    world.paid_order(state=OrderState.COMPLETED, completed_at=T0)
    world.now = T0 + timedelta(days=6)
    assert (await world.request(one(), key="in-time")).state is RefundState.REQUESTED
    world.now = T0 + timedelta(days=7)
    with pytest.raises(FailedPrecondition) as refused:
        await world.request(one(), key="late")
    assert refused.value.reason == "AFTER_SALES_CLOSED"


async def test_a_request_that_does_not_fit_the_order_names_its_lines(world):
    world.paid_order()
    with pytest.raises(InvalidArgument) as invalid:
        await world.request(one(3), one(1, 9999, OLN_2), one(1, line_id=new_id("oln")))
    assert {v.field for v in invalid.value.violations} == {"lines[0].quantity", "lines[1].amount",
                                                            "lines[2].line_id"}
    with pytest.raises(InvalidArgument) as invalid:
        await world.request()
    assert {v.field for v in invalid.value.violations} == {"lines"}
    assert world.refunds.refunds == {}


async def test_only_the_orders_member_asks_and_lists(world):
    world.paid_order()
    with pytest.raises(NotFound):
        with acting(member=new_id("mem")):
            await world.cases.request(RefundInput(ORD_1, "r1", [one()]))
    with pytest.raises(Unauthenticated):
        with acting(staff="stf_1", roles=("OWNER",)):
            await world.cases.request(RefundInput(ORD_1, "r1", [one()]))
    asked = await world.request(one())
    with acting(member=MEMBER):
        assert [r.id for r in await world.cases.list_of_order(ORD_1)] == [asked.id]
    with pytest.raises(NotFound):
        with acting(member=new_id("mem")):
            await world.cases.list_of_order(ORD_1)


# ---- staff decide -------------------------------------------------------------------


async def test_approving_executes_the_refund_once(world):
    world.paid_order()
    asked = await world.request(one(1))
    done = await world.approve(asked.id)
    assert done.state is RefundState.REFUNDED and done.amount == 500 and done.provider_refund_id == "sbxrf_1"
    assert done.refunded_at == T0 and all(l.restocked for l in done.lines)
    order = world.orders.stored(ORD_1)
    assert order.refunded_amount == 500 and order.lines[0].refunded_quantity == 1
    assert world.orders.event_types(ORD_1) == ["OrderRefunded"]
    [event] = world.orders.events_of(ORD_1)
    assert event.refund_id == asked.id and event.refund.amount == 500
    assert world.provider.refunds == [(PAY_1, 500)]
    assert world.ledger.kinds(ORD_1) == ["REFUND"]
    # Never shipped: the units go back on sale.
    assert world.stock.returns == [(asked.id, ORD_1, [(f"sku_{OLN_1}", 1)])]
    # Approving again is a repeat.
    again = await world.approve(asked.id)
    assert again.state is RefundState.REFUNDED and again.version == done.version
    assert len(world.provider.refunds) == 1 and len(world.orders.events) == 1


async def test_a_shipped_order_refunds_money_and_keeps_its_units_out_of_stock(world):
    world.paid_order(state=OrderState.SHIPPED)
    done = await world.approve((await world.request(one(2))).id)
    assert done.amount == 1000 and world.stock.returns == [] and not any(l.restocked for l in done.lines)


async def test_the_shipping_fee_goes_back_with_the_refund_that_leaves_nothing_to_ship(world):
    world.paid_order(shipping_fee=800)
    first = await world.create(one(2), key="s1")
    assert first.amount == 1000 and first.shipping_fee_refund == 0
    last = await world.create(one(1, line_id=OLN_2), key="s2")
    assert last.amount == 500 + 800 and last.shipping_fee_refund == 800
    order = world.orders.stored(ORD_1)
    assert order.refunded_amount == order.payable == 2300
    entries = world.ledger.of_order(ORD_1)
    assert ledger.is_balanced(entries + [ledger.payment_applied(ORD_1, PAY_1, 2300)], ORD_1, 2300, 2300)


async def test_rejecting_a_request_keeps_the_note_and_repeats(world):
    world.paid_order()
    asked = await world.request(one())
    rejected = await world.reject(asked.id, "used")
    assert rejected.state is RefundState.REJECTED and rejected.note == "used"
    assert (await world.reject(asked.id, "again")).note == "used"
    with pytest.raises(FailedPrecondition) as refused:
        await world.approve(asked.id)
    assert refused.value.reason == "REFUND_NOT_APPROVABLE"


async def test_an_approved_or_refunded_refund_cannot_be_rejected(world):
    world.paid_order()
    done = await world.approve((await world.request(one())).id)
    with pytest.raises(FailedPrecondition) as refused:
        await world.reject(done.id)
    assert refused.value.reason == "REFUND_NOT_REJECTABLE"


async def test_staff_roles_and_ids_are_checked(world):
    world.paid_order()
    asked = await world.request(one())
    with pytest.raises(PermissionDenied):
        with acting(staff="stf_1", roles=("GUIDE",)):
            await world.cases.approve(asked.id)
    with pytest.raises(InvalidArgument):
        await world.approve("rfd_x")
    with pytest.raises(NotFound):
        await world.approve(new_id("rfd"))
    with pytest.raises(InvalidArgument) as invalid:
        await world.reject("x", "n" * 501)
    assert {v.field for v in invalid.value.violations} == {"refund_id", "note"}


async def test_a_refund_staff_create_is_executed_at_once_and_replays(world):
    world.paid_order()
    done = await world.create(one(1, 300))
    assert done.state is RefundState.REFUNDED and done.amount == 300 and done.lines[0].explicit
    assert done.requested_by == "STAFF"
    again = await world.create(one(1, 300), key="s1")
    assert again.id == done.id and again.amount == 300 and len(world.provider.refunds) == 1


async def test_a_refund_another_refund_outran_is_rejected(world):
    world.paid_order()
    first = await world.request(one(2), key="r1")
    second = await world.request(one(1), key="r2")
    await world.approve(first.id)
    with pytest.raises(FailedPrecondition) as refused:
        await world.approve(second.id)
    assert refused.value.reason == "REFUND_EXCEEDS_REMAINING"
    assert {v.field for v in refused.value.violations} == {"lines[0].quantity"}
    stored = world.refunds.stored(second.id)
    assert stored.state is RefundState.REJECTED and "no longer" in stored.note
    assert world.orders.stored(ORD_1).refunded_amount == 1000 and len(world.provider.refunds) == 1


async def test_the_default_amount_is_worked_out_again_when_the_order_takes_it(world):
    world.paid_order()
    world.orders.orders[ORD_1].lines = (world.orders.orders[ORD_1].lines[0],)
    a = await world.request(one(1), key="a")
    b = await world.request(one(1), key="b")
    assert a.amount == b.amount == 500
    await world.approve((await world.create(one(1, 700), key="s")).id)
    done = await world.approve(a.id)
    # 700 of 1000 went already: the last unit takes what is left.
    assert done.amount == 300
    with pytest.raises(FailedPrecondition):
        await world.approve(b.id)


async def test_the_order_changing_meanwhile_is_planned_again(world):
    world.paid_order()
    asked = await world.request(one())
    world.orders.stale_saves = 2
    done = await world.approve(asked.id)
    assert done.state is RefundState.REFUNDED and world.orders.event_types() == ["OrderRefunded"]


async def test_an_order_that_keeps_changing_leaves_the_refund_approved_for_the_job(world):
    world.paid_order()
    asked = await world.request(one())
    world.orders.stale_saves = 5
    with pytest.raises(Conflict) as busy:
        await world.approve(asked.id)
    assert busy.value.message == "the order changed while refunding; try again"
    assert world.refunds.stored(asked.id).state is RefundState.APPROVED and world.provider.refunds == []


async def test_a_refund_that_keeps_changing_while_approving_is_a_conflict(world):
    world.paid_order()
    asked = await world.request(one())
    world.refunds.stale(5)
    with pytest.raises(Conflict) as busy:
        await world.approve(asked.id)
    assert busy.value.message == "the refund changed while approving; try again"
    world.refunds.stale(1)
    assert (await world.reject(asked.id)).state is RefundState.REJECTED


# ---- the job and staff lists ---------------------------------------------------------


async def test_the_job_finishes_refunds_cut_short_and_leaves_fresh_ones(world):
    world.paid_order()
    asked = await world.request(one())
    world.orders.stale_saves = 5
    with pytest.raises(Conflict):
        await world.approve(asked.id)  # cut short after the claim
    assert await world.cases.resume_stalled() == 0  # being executed right now, as far as the job knows
    world.now = T0 + timedelta(milliseconds=STALL_MS)
    assert await world.cases.resume_stalled() == 1
    assert world.refunds.stored(asked.id).state is RefundState.REFUNDED
    assert world.orders.event_types() == ["OrderRefunded"] and len(world.provider.refunds) == 1
    assert await world.cases.resume_stalled() == 0


async def test_the_job_finishes_a_refund_the_order_took_without_taking_it_twice(world):
    world.paid_order()
    world.refunds.stale(1, after=1)  # the provider call is taken; the last write of the execution is lost
    cut_short = await world.create(one())
    assert cut_short.state is RefundState.APPROVED
    assert world.orders.stored(ORD_1).refunded_amount == 500
    world.now = T0 + timedelta(milliseconds=STALL_MS)
    assert await world.cases.resume_stalled() == 1
    assert world.refunds.stored(cut_short.id).state is RefundState.REFUNDED
    assert world.orders.stored(ORD_1).refunded_amount == 500 and world.orders.event_types() == ["OrderRefunded"]
    assert world.ledger.kinds(ORD_1) == ["REFUND"]


async def test_staff_list_refunds_newest_first_by_page(world):
    world.paid_order()
    ids = [(await world.request(one(), key=f"r{i}")).id for i in range(3)]
    await world.reject(ids[0])
    with acting(staff="stf_1", roles=("FINANCE",)):
        page, token = await world.cases.list_for_staff(ORD_1, "", 2, "")
        assert [r.id for r in page] == ids[::-1][:2] and token == ids[1]
        rest, token = await world.cases.list_for_staff(ORD_1, "", 2, token)
        assert [r.id for r in rest] == [ids[0]] and token == ""
        rejected, _ = await world.cases.list_for_staff("", "REJECTED", 0, "")
        assert [r.id for r in rejected] == [ids[0]]
        with pytest.raises(InvalidArgument) as invalid:
            await world.cases.list_for_staff("x", "MAYBE", 101, "y")
        assert {v.field for v in invalid.value.violations} == {"order_id", "state", "page_size", "page_token"}


async def test_the_same_key_with_another_refund_request_is_refused(world):
    world.paid_order()
    first = await world.request(one(1))
    with pytest.raises(AlreadyExists) as reused:
        await world.request(one(2), key="r1")
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    done = await world.create(one(1, 300))
    with pytest.raises(AlreadyExists):
        await world.create(one(1, 200), key="s1")
    assert set(world.refunds.refunds) == {first.id, done.id} and len(world.provider.refunds) == 1


async def test_a_refund_records_what_the_provider_says_and_staff_filter_by_it(world):
    world.paid_order()
    done = await world.create(one(1, 300))  # the sandbox provider refunds at once
    assert (done.state.value, done.provider_status, done.provider_query_ms) == ("REFUNDED", "SUCCEEDED", 0)
    asked = await world.request(one(1), key="r-open")  # no money moved yet
    assert asked.provider_status == ""
    stored = world.refunds.refunds[done.id]
    stored.provider_status = "ABNORMAL"
    with acting(staff="stf_1", roles=("FINANCE",)):
        abnormal, _ = await world.cases.list_for_staff("", "", 0, "", provider_status="ABNORMAL")
        assert [r.id for r in abnormal] == [done.id]
        assert (await world.cases.list_for_staff("", "", 0, "", provider_status="PROCESSING"))[0] == []
        with pytest.raises(InvalidArgument) as invalid:
            await world.cases.list_for_staff("", "", 0, "", provider_status="SOMEDAY")
        assert [v.field for v in invalid.value.violations] == ["provider_status"]
