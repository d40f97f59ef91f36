"""The points economy over in-memory ports, with a clock the test moves: a merchant and
one member of it, and the callers and moves the points unit tests start from."""
from __future__ import annotations

from datetime import datetime, timezone

from services.member.application.points import OrderPoints, PaidOrder, PointsEconomy
from services.member.domain.members import Member
from services.member.domain.merchants import Merchant
from siyu_kit.ids import new_id
from tests.fakes.member import FakeAuditLog, FakeLedger, FakeMembers, FakeMerchants, caller

PAID_AT = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self):
        self.now = PAID_AT

    def __call__(self) -> datetime:
        return self.now


async def points_world():
    class World:
        pass
    w = World()
    w.merchants, w.members, w.ledger, w.audit = FakeMerchants(), FakeMembers(), FakeLedger(), FakeAuditLog()
    w.clock = Clock()
    w.orders = OrderPoints(w.members, w.merchants, w.ledger, w.clock)
    w.economy = PointsEconomy(w.members, w.merchants, w.ledger, w.audit, w.clock)
    w.m = Merchant.create(new_id("mch"), "shop", "Shop", "Asia/Shanghai", PAID_AT)
    await w.merchants.add(w.m)
    w.member = new_id("mem")
    await w.members.add(Member.register(w.member, w.m.id, "H5", "", PAID_AT))
    return w


def service(w):
    return caller(w.m.id, service="order")


def operator(w, role="OPERATOR"):
    return caller(w.m.id, staff_id=new_id("stf"), roles=(role,))


async def earn(w, payable: int, order_id: str | None = None) -> str:
    order_id = order_id or new_id("ord")
    await w.orders.on_order_paid(PaidOrder(new_id("evt"), w.m.id, order_id, w.member, payable, w.clock(), "H5"))
    return order_id


async def book(w):
    return await w.ledger.book(w.m.id, w.member)
