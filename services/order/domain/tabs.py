"""The tabs of a member's order list, as every mini-program shows them: 待付款 unpaid,
待发货 to ship, 待收货 shipped, 已完成 completed, 售后 refunds.

A tab of states lists the member's orders in those states; the refunds tab lists the
orders that have a refund in any state (requested, under way, refunded or rejected).
"""
from __future__ import annotations

from enum import Enum

from services.order.domain.orders import OrderState


class OrderTab(str, Enum):
    ALL = "ALL"
    UNPAID = "UNPAID"  # 待付款
    TO_SHIP = "TO_SHIP"  # 待发货
    SHIPPED = "SHIPPED"  # 待收货: shipped, or delivered and not yet confirmed
    COMPLETED = "COMPLETED"  # 已完成
    REFUNDS = "REFUNDS"  # 售后


STATES_OF_TAB: dict[OrderTab, tuple[OrderState, ...]] = {
    OrderTab.UNPAID: (OrderState.PENDING_PAYMENT,),
    # A paid group-buy order waiting for its group is shown with the paid ones.
    OrderTab.TO_SHIP: (OrderState.PAID, OrderState.GROUPING),
    OrderTab.SHIPPED: (OrderState.SHIPPED, OrderState.DELIVERED),
    OrderTab.COMPLETED: (OrderState.COMPLETED,),
}
# The tabs a count is given for, in the order a screen shows them.
COUNTED = (OrderTab.UNPAID, OrderTab.TO_SHIP, OrderTab.SHIPPED, OrderTab.COMPLETED, OrderTab.REFUNDS)


def states_of(tab: OrderTab) -> tuple[str, ...]:
    """The order states a tab of states lists (empty for ALL and REFUNDS)."""
    return tuple(s.value for s in STATES_OF_TAB.get(tab, ()))


def page_of_ids(order_ids: set[str] | frozenset[str], before_id: str, limit: int) -> list[str]:
    """Newest first (ULID ids sort by creation), after the previous page's last id."""
    return sorted((i for i in order_ids if not before_id or i < before_id), reverse=True)[:limit]
