"""Commissions through the use cases, against in-memory ports: the referral fixed at
placement (with the sharer of the order's share code), each line's eligibility from the
catalog, commissions filled when the order is paid, voided by refunds, refunds after the
after-sales window for OWNER and FINANCE only, and the member's view without commissions."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from siyu.member.v1 import member_pb2

from siyu_kit.errors import FailedPrecondition, NotFound, PermissionDenied, Unavailable
from siyu_kit.ids import new_id
from tests.fakes.order import FakeOrders
from tests.fakes.order_money import (MEMBER, MERCHANT, OLN_1, OLN_2, ORD_1, FakeLedger, FakePayments, FakeProvider,
                                     FakeRefunds, FakeSettings, FakeStock, acting, an_order)

from services.order.adapters import messages
from services.order.adapters.documents import order_doc, order_of
from services.order.adapters.member import ReferralClient
from services.order.application.flash_orders import PlaceFlashSaleOrderInput
from services.order.application.payments import PaymentUseCases
from services.order.application.ports import FlashReservation
from services.order.application.refunds import RefundInput, RefundUseCases
from services.order.domain.commissions import CommissionLevel, Referral
from services.order.domain.orders import OrderState
from services.order.domain.payments import Notification, Payment, PaymentState
from services.order.domain.refunds import LineRequest, RefundState
from services.order.domain.settings import OrderSettings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
DIST, UP = new_id("mem"), new_id("mem")
PAY_1 = new_id("pay")
REFERRAL = Referral(distributor_id=DIST, distributor_rate_bp=1000, upline_distributor_id=UP, upline_rate_bp=500)


# ---- placement ---------------------------------------------------------------------------

async def test_the_order_keeps_the_referral_and_each_lines_eligibility(world):
    a, b = world.sku(1000), world.sku(500, commission_excluded=True)
    world.referrals.answers[world.member_id] = REFERRAL
    order = await world.place((a, 1), (b, 1))
    assert order.referral == REFERRAL
    assert [(l.sku_id, l.commission_eligible) for l in order.lines] == [(a, True), (b, False)]
    assert world.referrals.asked == [(world.member_id, "")]
    assert world.orders.stored(order.id).referral == REFERRAL and order.commissions == ()


async def test_the_sharer_of_a_share_code_in_its_window_goes_to_the_member_service(world):
    sharer = new_id("mem")
    world.attributions.shares["s1"] = {}
    world.attributions.sharers["s1"] = sharer
    await world.place((world.sku(), 1), attribution={"share_code": "s1"})
    await world.place((world.sku(), 1), attribution={"share_code": "stale"})  # dropped: no sharer
    assert world.referrals.asked == [(world.member_id, sharer), (world.member_id, "")]


async def test_no_referral_is_kept_as_none(world):
    order = await world.place((world.sku(), 1))
    assert order.referral is None


async def test_an_unanswered_referral_places_nothing_and_holds_nothing(world):
    world.referrals.down = Unavailable("no", reason="MEMBER_UNAVAILABLE")
    with pytest.raises(Unavailable):
        await world.place((world.sku(), 1))
    assert not world.catalog.reserved and not world.orders.orders


async def test_a_flash_sale_winner_gets_the_referral_and_a_failure_gives_the_units_back(world):
    a = world.sku(1000)
    world.catalog.flash_won = FlashReservation(a, 600)
    world.referrals.answers[world.member_id] = REFERRAL
    with world.as_member():
        order = await world.flash.place(PlaceFlashSaleOrderInput(flash_sale_id=new_id("fls"), idempotency_key="f1"))
    assert order.referral == REFERRAL and order.lines[0].commission_eligible
    world.referrals.down = Unavailable("no", reason="MEMBER_UNAVAILABLE")
    with pytest.raises(Unavailable):
        with world.as_member():
            await world.flash.place(PlaceFlashSaleOrderInput(flash_sale_id=new_id("fls"), idempotency_key="f2"))
    assert len(world.catalog.released) == 1 and len(world.orders.orders) == 1


async def test_a_flash_sale_loser_never_asks_for_a_referral(world):
    world.catalog.refuse_flash = FailedPrecondition("sold out", reason="SOLD_OUT")
    with pytest.raises(FailedPrecondition):
        with world.as_member():
            await world.flash.place(PlaceFlashSaleOrderInput(flash_sale_id=new_id("fls"), idempotency_key="f1"))
    assert world.referrals.asked == []


# ---- paid --------------------------------------------------------------------------------

async def test_the_payment_that_marks_the_order_paid_fills_its_commissions():
    orders, payments, provider = FakeOrders(), FakePayments(), FakeProvider()
    cases = PaymentUseCases(orders=orders, payments=payments, provider=provider, entries=FakeLedger(),
                            clock=lambda: T0)
    order = an_order(ORD_1, created_at=T0, lines=((OLN_1, 2, 1000), (OLN_2, 1, 333)), referral=REFERRAL)
    orders.orders[order.id] = order
    with acting(member=MEMBER):
        payment = await cases.pay(ORD_1, "p1", "")
    n = Notification(payment_id=payment.id, provider_txn_id="sbx_1", amount=payment.amount, currency="CNY",
                     result="SUCCESS", timestamp=int(T0.timestamp()))
    await cases.handle_callback(replace(n, signature=provider.sign(n)))
    paid = orders.stored(ORD_1)
    assert paid.state is OrderState.PAID
    assert [(c.line_id, c.level, c.beneficiary_id, c.base, c.amount) for c in paid.commissions] == [
        (OLN_1, CommissionLevel.LEVEL_1, DIST, 1000, 100), (OLN_1, CommissionLevel.LEVEL_2, UP, 1000, 50),
        (OLN_2, CommissionLevel.LEVEL_1, DIST, 333, 33), (OLN_2, CommissionLevel.LEVEL_2, UP, 333, 16)]
    # One save recorded the payment: order.paid carries the commissions it stored.
    assert orders.event_types(ORD_1) == ["OrderPaid"]


# ---- refunds -----------------------------------------------------------------------------

class Refunds:
    def __init__(self, after_sales_days: int = 7):
        self.now = T0
        self.orders, self.payments = FakeOrders(), FakePayments()
        self.cases = RefundUseCases(orders=self.orders, refunds=FakeRefunds(), payments=self.payments,
                                    entries=FakeLedger(), settings=FakeSettings(OrderSettings(
                                        after_sales_days=after_sales_days)),
                                    provider=FakeProvider(), stock=FakeStock(), clock=lambda: self.now)

    def paid_order(self, state: OrderState = OrderState.PAID, **changes):
        order = an_order(ORD_1, lines=((OLN_1, 2, 1000), (OLN_2, 1, 500)), created_at=T0, state=state,
                         paid_at=T0, referral=REFERRAL, **changes)
        order.state = OrderState.PENDING_PAYMENT
        order.pay(PAY_1, T0)
        order.pull_events()
        order.state = state
        self.orders.orders[order.id] = order
        payment = Payment.start(PAY_1, merchant_id=MERCHANT, member_id=MEMBER, order_id=order.id,
                                idempotency_key="p", amount=order.payable, currency="CNY", now=T0)
        payment.state, payment.provider_txn_id = PaymentState.SUCCEEDED, "sbx_txn_1"
        self.payments.payments[payment.id] = payment
        return order

    async def create(self, *lines: LineRequest, key: str = "s1", roles=("FINANCE",), after_window: bool = False):
        with acting(staff="stf_1", roles=roles):
            return await self.cases.create(RefundInput(ORD_1, key, list(lines), after_window=after_window))


async def test_a_refund_voids_the_refunded_share_of_both_levels_in_the_refunds_write():
    w = Refunds()
    w.paid_order()
    await w.create(LineRequest(OLN_1, 1))
    order = w.orders.stored(ORD_1)
    assert [(c.line_id, c.amount, c.voided) for c in order.commissions] == [
        (OLN_1, 100, 50), (OLN_1, 50, 25), (OLN_2, 50, 0), (OLN_2, 25, 0)]
    await w.create(LineRequest(OLN_1, 1), key="s2")
    order = w.orders.stored(ORD_1)
    assert [c.voided for c in order.commissions] == [100, 50, 0, 0]
    assert w.orders.event_types(ORD_1) == ["OrderRefunded", "OrderRefunded"]


def completed_past_window(w: Refunds):
    w.paid_order(state=OrderState.COMPLETED, completed_at=T0)
    w.now = T0 + timedelta(days=8)


async def test_a_completed_order_past_its_window_is_refunded_only_with_after_window():
    w = Refunds()
    completed_past_window(w)
    with pytest.raises(FailedPrecondition) as closed:
        await w.create(LineRequest(OLN_2, 1))
    assert closed.value.reason == "AFTER_SALES_CLOSED"
    for i, roles in enumerate((("FINANCE",), ("OWNER",))):
        refund = await w.create(LineRequest(OLN_1 if i == 0 else OLN_2, 1), key=f"late{i}", roles=roles,
                                after_window=True)
        assert refund.state is RefundState.REFUNDED
    assert [c.voided for c in w.orders.stored(ORD_1).commissions] == [50, 25, 50, 25]


async def test_an_operator_may_not_refund_after_the_window():
    w = Refunds()
    completed_past_window(w)
    with pytest.raises(PermissionDenied) as denied:
        await w.create(LineRequest(OLN_2, 1), roles=("OPERATOR",), after_window=True)
    assert denied.value.reason == "AFTER_WINDOW_REFUND_NOT_ALLOWED"
    assert w.orders.stored(ORD_1).refunded_amount == 0


async def test_a_member_never_refunds_after_the_window():
    w = Refunds()
    completed_past_window(w)
    with pytest.raises(FailedPrecondition) as closed:
        with acting(member=MEMBER):
            await w.cases.request(RefundInput(ORD_1, "m1", [LineRequest(OLN_2, 1)], after_window=True))
    assert closed.value.reason == "AFTER_SALES_CLOSED"


async def test_after_window_on_an_unknown_order_is_still_not_found():
    w = Refunds()
    with pytest.raises(NotFound):
        await w.create(LineRequest(OLN_1, 1), after_window=True)


# ---- storage and messages ----------------------------------------------------------------

def test_the_stored_order_keeps_referral_commissions_and_eligibility():
    w = Refunds()
    order = w.paid_order()
    order.lines = (replace(order.lines[0], commission_eligible=False), order.lines[1])
    doc = order_doc(order)
    assert "commission_eligible" not in doc["lines"][1] and doc["lines"][0]["commission_eligible"] == 0
    back = order_of(doc)
    assert back.referral == order.referral and back.commissions == order.commissions
    assert [l.commission_eligible for l in back.lines] == [False, True]
    # An order placed before distribution existed reads as eligible lines, nobody credited.
    old = {k: v for k, v in doc.items() if k not in ("referral", "commissions")}
    old["lines"] = [{k: v for k, v in l.items() if k != "commission_eligible"} for l in doc["lines"]]
    plain = order_of(old)
    assert plain.referral is None and plain.commissions == () and all(l.commission_eligible for l in plain.lines)


def test_staff_see_the_commissions_and_the_member_does_not():
    order = Refunds().paid_order()
    shown = messages.order_of(order)
    assert shown.referral.distributor_id == DIST and shown.referral.upline_rate_bp == 500
    assert [(c.level, c.amount.amount) for c in shown.commissions][:2] == [(1, 100), (2, 50)]
    assert shown.lines[0].commission_eligible
    mine = messages.for_member(messages.order_of(order))
    assert len(mine.commissions) == 0 and not mine.HasField("referral")
    event = messages.order_event_payload(order, order.pull_events() or _paid_event(), order.version)
    assert len(event.order.commissions) == 4


def _paid_event():
    from services.order.domain.orders import OrderPaid
    return OrderPaid(at=T0, payment_id="pay_1")


# ---- the member service's answer ---------------------------------------------------------

class Refused(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode):
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=code.name)


class Stub:
    def __init__(self, answer=None, error: grpc.StatusCode | None = None):
        self.answer, self.error = answer, error

    async def ResolveReferral(self, request, timeout=None):
        self.sharers = [*getattr(self, "sharers", []), request.sharer_id]
        if self.error is not None:
            raise Refused(self.error)
        return member_pb2.ResolveReferralResponse(referral=self.answer)


def client(stub: Stub) -> ReferralClient:
    c = ReferralClient.__new__(ReferralClient)
    c._stub = stub
    return c


async def test_the_referral_client_maps_the_answer_and_the_refusals():
    from siyu.common.v1 import common_pb2
    answer = common_pb2.Referral(distributor_id=DIST, distributor_rate_bp=1000, guide_id="stf_G", guide_rate_bp=100,
                                 guide_store="S1")
    got = await client(Stub(answer)).resolve(MEMBER, "")
    assert got == Referral(distributor_id=DIST, distributor_rate_bp=1000, guide_id="stf_G", guide_rate_bp=100,
                           guide_store="S1")
    assert await client(Stub(common_pb2.Referral())).resolve(MEMBER, "") is None
    with pytest.raises(Unavailable) as away:
        await client(Stub(error=grpc.StatusCode.UNAVAILABLE)).resolve(MEMBER, "")
    assert away.value.reason == "MEMBER_UNAVAILABLE"
    with pytest.raises(NotFound):
        await client(Stub(error=grpc.StatusCode.NOT_FOUND)).resolve(MEMBER, "")


async def test_only_a_member_or_staff_sharer_is_passed_on():
    from siyu.common.v1 import common_pb2
    stub = Stub(common_pb2.Referral())
    staff = new_id("stf")
    for sharer in (DIST, staff, "per_x", "whoever"):
        await client(stub).resolve(MEMBER, sharer)
    assert stub.sharers == [DIST, staff, "", ""]
