"""What staff read about orders, and what the catalog may do with an order's expired
reservation, against in-memory ports."""
from __future__ import annotations

from datetime import timedelta

import pytest

from siyu_kit.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from siyu_kit.ids import new_id

from services.order.application.ports import LedgerRecord
from services.order.application.staff_orders import OrderQuery
from services.order.domain import ledger
from services.order.domain.orders import OrderState, ReservationVerdict
from services.order.domain.payments import Payment, PaymentState


async def test_search_filters_and_pages_newest_first(world):
    a = world.sku()
    first = await world.place((a, 1))
    world.clock.advance(minutes=1)
    second = await world.place((a, 1), attribution={"channel": "H5"})
    world.orders.orders[second.id].state = OrderState.PAID
    with world.as_staff("FINANCE"):
        page, token = await world.staff.search(OrderQuery(page_size=1))
        assert [o.id for o in page] == [second.id] and token == second.id
        page, token = await world.staff.search(OrderQuery(page_size=1, page_token=token))
        assert [o.id for o in page] == [first.id] and token == ""
        paid, _ = await world.staff.search(OrderQuery(state="PAID"))
        assert [o.id for o in paid] == [second.id]
        early, _ = await world.staff.search(OrderQuery(created_to=world.clock.now - timedelta(seconds=30)))
        assert [o.id for o in early] == [first.id]
        with pytest.raises(InvalidArgument):
            await world.staff.search(OrderQuery(state="LOST", channel="FAX"))
    with world.as_staff("GUIDE"):  # a guide reads orders too (their addresses masked)
        assert {o.id for o in (await world.staff.search(OrderQuery()))[0]} == {first.id, second.id}
    with world.as_member(), pytest.raises(Unauthenticated):
        await world.staff.search(OrderQuery())


async def test_an_order_with_its_refunds_payments_and_ledger(world):
    order = await world.place((world.sku(1000), 1))
    stored = world.orders.orders[order.id]
    payment_id = new_id("pay")
    stored.state, stored.payment_id = OrderState.PAID, payment_id
    payment = Payment.start(payment_id, merchant_id=world.merchant_id, member_id=world.member_id, order_id=order.id,
                            idempotency_key="p", amount=1000, currency="CNY", now=world.clock.now)
    payment.state = PaymentState.SUCCEEDED
    world.payments.by_order[order.id] = [payment]
    world.refunds.by_order[order.id] = ["a refund"]
    entry = ledger.payment_applied(order.id, payment_id, 1000)
    world.ledger.by_order[order.id] = [LedgerRecord(entry, "CNY", world.clock.now)]
    with world.as_staff("OPERATOR"):
        got, refunds, payments = await world.staff.get(order.id)
        assert got.id == order.id and refunds == ["a refund"] and payments == [payment]
        with pytest.raises(PermissionDenied):
            await world.staff.ledger(order.id)
    with world.as_staff("FINANCE"):
        view = await world.staff.ledger(order.id)
        assert view.entries == world.ledger.by_order[order.id] and view.balanced
        world.ledger.by_order[order.id] = []
        assert not (await world.staff.ledger(order.id)).balanced  # captured money missing from the ledger
        with pytest.raises(NotFound):
            await world.staff.get(new_id("ord"))


@pytest.mark.parametrize("state,verdict", [
    (OrderState.PENDING_PAYMENT, ReservationVerdict.KEEP), (OrderState.PAID, ReservationVerdict.COMMIT),
    (OrderState.SHIPPED, ReservationVerdict.COMMIT), (OrderState.CANCELLED, ReservationVerdict.RELEASE)])
async def test_the_order_decides_what_becomes_of_its_reservation(world, state, verdict):
    order = await world.place((world.sku(), 1))
    world.orders.orders[order.id].state = state
    with world.as_service():
        assert await world.reservations.resolve(order.id, order.reservation_id) == (verdict, state)
        assert await world.reservations.resolve(order.id, new_id("rsv")) == (ReservationVerdict.RELEASE, state)


async def test_a_reservation_of_no_order_is_released(world):
    with world.as_service():
        assert await world.reservations.resolve(new_id("ord"), new_id("rsv")) == (ReservationVerdict.RELEASE, None)
        assert await world.reservations.resolve("not-an-order", new_id("rsv")) == (ReservationVerdict.RELEASE, None)
