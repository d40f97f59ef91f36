"""The member's order list by tab, the counts of every tab, and staff cancelling an
unpaid order, against in-memory ports."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from siyu_kit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from siyu_kit.ids import new_id
from tests.fakes.order import FakeCatalog, FakeOrders
from tests.fakes.order_money import MEMBER, MERCHANT, FakeRefunds, acting, an_order

from services.order.application.orders import OrderUseCases
from services.order.domain.orders import OrderState
from services.order.domain.refunds import Refund, RefundState
from services.order.domain.tabs import OrderTab

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
S = OrderState


class World:
    def __init__(self):
        self.orders, self.refunds = FakeOrders(), FakeRefunds()
        self.cases = OrderUseCases(orders=self.orders, catalog=FakeCatalog(), refunds=self.refunds,
                                   clock=lambda: T0)

    def order(self, state: OrderState, member_id: str = MEMBER) -> str:
        order = an_order(new_id("ord"), created_at=T0, state=state, member_id=member_id)
        self.orders.orders[order.id] = order
        return order.id

    def refund(self, order_id: str, state: RefundState = RefundState.REQUESTED) -> None:
        order = self.orders.orders[order_id]
        refund_id = new_id("rfd")
        self.refunds.refunds[refund_id] = Refund(
            id=refund_id, merchant_id=MERCHANT, version=1, order_id=order_id, member_id=order.member_id,
            requested_by="MEMBER", idempotency_key=refund_id, state=state, lines=(), amount=100, currency="CNY",
            created_at=T0)

    async def tab(self, tab: str, page_size: int = 0, page_token: str = "", member_id: str = MEMBER):
        with acting(member=member_id):
            return await self.cases.list_mine(page_size, page_token, tab)


@pytest.fixture
def world() -> World:
    return World()


def shop(world: World) -> dict[str, list[str]]:
    """Two orders in each state, one of another member, refunds on two orders."""
    ids = {s: [world.order(s), world.order(s)] for s in S}
    world.order(S.PAID, member_id=new_id("mem"))
    world.refund(ids[S.COMPLETED][0], RefundState.REFUNDED)
    world.refund(ids[S.PAID][1])
    world.refund(ids[S.PAID][1], RefundState.REJECTED)  # a second refund of the same order counts once
    return {s.value: v for s, v in ids.items()}


@pytest.mark.parametrize("tab,states", [("UNPAID", ["PENDING_PAYMENT"]), ("TO_SHIP", ["PAID", "GROUPING"]),
                                        ("SHIPPED", ["SHIPPED", "DELIVERED"]), ("COMPLETED", ["COMPLETED"])])
async def test_each_tab_lists_the_members_orders_in_its_states_newest_first(world, tab, states):
    ids = shop(world)
    orders, token = await world.tab(tab)
    expected = sorted((i for s in states for i in ids[s]), reverse=True)
    assert [o.id for o in orders] == expected and token == ""


async def test_the_refunds_tab_lists_orders_with_a_refund_in_any_state(world):
    ids = shop(world)
    orders, _ = await world.tab("REFUNDS")
    assert [o.id for o in orders] == sorted([ids["COMPLETED"][0], ids["PAID"][1]], reverse=True)


async def test_a_tab_pages_by_the_last_id(world):
    ids = shop(world)
    first, token = await world.tab("SHIPPED", page_size=3)
    rest, end = await world.tab("SHIPPED", page_size=3, page_token=token)
    assert [o.id for o in first + rest] == sorted(ids["SHIPPED"] + ids["DELIVERED"], reverse=True)
    assert token == first[-1].id and end == "" and len(rest) == 1
    one, token = await world.tab("REFUNDS", page_size=1)
    two, end = await world.tab("REFUNDS", page_size=1, page_token=token)
    assert [o.id for o in one + two] == sorted([ids["COMPLETED"][0], ids["PAID"][1]], reverse=True) and end == ""


async def test_no_tab_lists_every_order_as_before(world):
    shop(world)
    orders, _ = await world.tab("")
    assert len(orders) == 2 * len(S)


async def test_the_counts_of_every_tab_in_one_call(world):
    shop(world)
    with acting(member=MEMBER):
        counts = await world.cases.count_mine()
    assert counts == {OrderTab.UNPAID: 2, OrderTab.TO_SHIP: 4, OrderTab.SHIPPED: 4, OrderTab.COMPLETED: 2,
                      OrderTab.REFUNDS: 2}
    with acting(member=new_id("mem")):
        assert set((await world.cases.count_mine()).values()) == {0}


async def test_a_bad_tab_or_no_member_is_refused(world):
    with pytest.raises(InvalidArgument) as bad:
        await world.tab("CANCELLED_ONES")
    assert [v.field for v in bad.value.violations] == ["tab"]
    with acting(staff="stf_1", roles=("OWNER",)):
        with pytest.raises(Unauthenticated):
            await world.cases.count_mine()


# ---- staff cancel ------------------------------------------------------------------


async def test_staff_cancel_an_unpaid_order_with_reason_staff(world):
    order_id = world.order(S.PENDING_PAYMENT)
    with acting(staff="stf_1", roles=("OPERATOR",)):
        cancelled = await world.cases.cancel_as_staff(order_id)
        again = await world.cases.cancel_as_staff(order_id)
    assert (cancelled.state, cancelled.cancel_reason, cancelled.cancelled_at) == (S.CANCELLED, "STAFF", T0)
    assert again.version == cancelled.version and world.orders.event_types(order_id) == ["OrderCancelled"]


async def test_staff_cancel_is_refused_once_paid_for_other_roles_and_merchants(world):
    paid = world.order(S.PAID)
    with acting(staff="stf_1", roles=("OPERATOR",)):
        with pytest.raises(FailedPrecondition) as late:
            await world.cases.cancel_as_staff(paid)
    assert late.value.reason == "ORDER_NOT_CANCELLABLE"
    unpaid = world.order(S.PENDING_PAYMENT)
    with acting(staff="stf_1", roles=("FINANCE",)):
        with pytest.raises(PermissionDenied):
            await world.cases.cancel_as_staff(unpaid)
    with acting(staff="stf_1", roles=("OWNER",), merchant=new_id("mch")):
        with pytest.raises(NotFound):
            await world.cases.cancel_as_staff(unpaid)
    with acting(member=MEMBER):
        with pytest.raises(Unauthenticated):
            await world.cases.cancel_as_staff(unpaid)
    with acting(staff="stf_1", roles=("OWNER",)):
        with pytest.raises(InvalidArgument):
            await world.cases.cancel_as_staff("ord_bad")
    assert world.orders.stored(unpaid).state is S.PENDING_PAYMENT and world.orders.event_types(unpaid) == []
