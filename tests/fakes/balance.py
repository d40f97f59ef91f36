"""In-memory fakes of the order service's stored-value ports: the member service's
recharge packages and balance (holds, captures, releases, refunds to balance), and the
order's tender written alone.

FakeBalances keeps the member service's rules as its contract states them: a hold takes
up to max_amount of the available balance, is idempotent by order id, and is refused
once the order's hold was released or captured; capture and release are idempotent by
order id; a refund to balance is idempotent by refund id and never returns more than the
order spent. `fail_next` makes the next calls raise Unavailable (the member service away)."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import FailedPrecondition, NotFound, Unavailable

from tests.fakes.order import FakeOrders
from tests.fakes.store import require_version

from services.order.application.ports import RechargePackage
from services.order.domain.orders import Order


@dataclass
class FakePackages:
    packages: dict[str, RechargePackage] = field(default_factory=dict)

    def add(self, package: RechargePackage) -> RechargePackage:
        self.packages[package.package_id] = package
        return package

    async def active(self, package_id: str) -> RechargePackage:
        if package_id not in self.packages:
            raise NotFound(f"recharge package {package_id} is not on offer", reason="RECHARGE_PACKAGE_NOT_OFFERED")
        return self.packages[package_id]


@dataclass
class FakeBalances:
    available: dict[str, int] = field(default_factory=dict)  # member id -> available balance
    holds: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # order id -> (member, amount, state)
    refunded: dict[str, tuple[str, int]] = field(default_factory=dict)  # refund id -> (order id, amount)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, order or refund id)
    fail_next: int = 0

    def _call(self, method: str, key: str) -> None:
        self.calls.append((method, key))
        if self.fail_next > 0:
            self.fail_next -= 1
            raise Unavailable("the member's balance could not be reached", reason="BALANCE_UNAVAILABLE")

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)

    def state(self, order_id: str) -> str:
        return self.holds[order_id][2] if order_id in self.holds else ""

    async def hold(self, member_id: str, order_id: str, max_amount: int) -> int:
        self._call("hold", order_id)
        if order_id in self.holds:
            _, amount, state = self.holds[order_id]
            if state != "HELD":
                raise FailedPrecondition("the order's hold ended", reason="BALANCE_HOLD_GIVEN_BACK")
            return amount
        amount = min(max_amount, self.available.get(member_id, 0))
        self.available[member_id] = self.available.get(member_id, 0) - amount
        self.holds[order_id] = (member_id, amount, "HELD")
        return amount

    async def capture(self, member_id: str, order_id: str) -> int:
        self._call("capture", order_id)
        if order_id not in self.holds or self.holds[order_id][2] == "RELEASED":
            raise FailedPrecondition("the order holds no balance", reason="BALANCE_UNAVAILABLE")
        _, amount, _ = self.holds[order_id]
        self.holds[order_id] = (member_id, amount, "CAPTURED")
        return amount

    async def release(self, member_id: str, order_id: str) -> int:
        self._call("release", order_id)
        if order_id not in self.holds:
            self.holds[order_id] = (member_id, 0, "RELEASED")
            return 0
        _, amount, state = self.holds[order_id]
        if state == "HELD":
            self.available[member_id] = self.available.get(member_id, 0) + amount
            self.holds[order_id] = (member_id, amount, "RELEASED")
            return amount
        return 0

    async def refund_to_balance(self, member_id: str, order_id: str, refund_id: str, amount: int) -> None:
        self._call("refund_to_balance", refund_id)
        if refund_id in self.refunded:
            return
        spent = self.holds[order_id][1] if self.state(order_id) == "CAPTURED" else 0
        back = sum(a for oid, a in self.refunded.values() if oid == order_id)
        if back + amount > spent:
            raise FailedPrecondition("more than the order spent", reason="BALANCE_UNAVAILABLE")
        self.refunded[refund_id] = (order_id, amount)
        self.available[member_id] = self.available.get(member_id, 0) + amount


@dataclass
class FakeTenders:
    """OrderTenders over a FakeOrders: the stored value alone, on the version read."""
    orders: FakeOrders
    writes: int = 0

    async def save_tender(self, order: Order) -> None:
        self.writes += 1
        stored = self.orders.orders.get(order.id)
        if self.orders.stale_saves > 0:
            self.orders.stale_saves -= 1
            raise StaleVersion(f"order {order.id} changed since it was read")
        require_version(stored, order)
        updated = copy.deepcopy(stored)
        updated.stored_value = order.stored_value
        updated.version += 1
        order.version += 1
        self.orders.orders[order.id] = updated
