"""The order use cases wired to in-memory fakes, and the request context they read."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from siyu_kit import context
from siyu_kit.context import RequestContext
from siyu_kit.ids import new_id

from services.order.application.cart import CartUseCases
from services.order.application.checkout import Checkout
from services.order.application.flash_orders import FlashOrderUseCases
from services.order.application.freight import FreightUseCases
from services.order.application.fulfilment import FulfilmentUseCases
from services.order.application.orders import OrderUseCases, PlaceOrderInput
from services.order.application.reservations import ReservationUseCases
from services.order.application.settings import SettingsUseCases
from services.order.application.staff_orders import StaffOrderUseCases
from tests.fakes.finance import FakeSettleCandidates
from tests.fakes.order import (FakeAddresses, FakeAttributions, FakeCarts, FakeCatalog, FakeFreightTemplates,
                               FakeMembers, FakeOpenRefunds, FakeOrders, FakeRecords, FakeReferrals, FakeSettings,
                               sku)

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def ms(self) -> int:
        return int(self.now.timestamp() * 1000)

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@dataclass
class World:
    merchant_id: str = field(default_factory=lambda: new_id("mch"))
    member_id: str = field(default_factory=lambda: new_id("mem"))
    clock: Clock = field(default_factory=Clock)
    orders: FakeOrders = field(default_factory=FakeOrders)
    settings: FakeSettings = field(default_factory=FakeSettings)
    carts: FakeCarts = field(default_factory=FakeCarts)
    catalog: FakeCatalog = field(default_factory=FakeCatalog)
    members: FakeMembers = field(default_factory=FakeMembers)
    attributions: FakeAttributions = field(default_factory=FakeAttributions)
    open_refunds: FakeOpenRefunds = field(default_factory=FakeOpenRefunds)
    payments: FakeRecords = field(default_factory=FakeRecords)
    refunds: FakeRecords = field(default_factory=FakeRecords)
    ledger: FakeRecords = field(default_factory=FakeRecords)
    freight: FakeFreightTemplates = field(default_factory=FakeFreightTemplates)
    addresses: FakeAddresses = field(default_factory=FakeAddresses)
    referrals: FakeReferrals = field(default_factory=FakeReferrals)

    def __post_init__(self):
        self.cart_cases = CartUseCases(carts=self.carts, catalog=self.catalog, clock_ms=self.clock.ms)
        self.checkout = Checkout(catalog=self.catalog, members=self.members, settings=self.settings,
                                 carts=self.carts, clock=self.clock, freight=self.freight,
                                 addresses=self.addresses)
        self.order_cases = OrderUseCases(orders=self.orders, catalog=self.catalog, clock=self.clock,
                                         checkout=self.checkout, carts=self.cart_cases,
                                         attributions=self.attributions, referrals=self.referrals)
        self.flash = FlashOrderUseCases(orders=self.orders, settings=self.settings, catalog=self.catalog,
                                        checkout=self.checkout, order_cases=self.order_cases, clock=self.clock)
        self.fulfilment = FulfilmentUseCases(orders=self.orders, refunds=self.open_refunds, settings=self.settings,
                                             clock=self.clock)
        self.settle_candidates = FakeSettleCandidates(self.orders)
        self.settings_cases = SettingsUseCases(self.settings, self.settle_candidates)
        self.staff = StaffOrderUseCases(orders=self.orders, payments=self.payments, refunds=self.refunds,
                                        entries=self.ledger)
        self.reservations = ReservationUseCases(self.orders)
        self.freight_cases = FreightUseCases(self.freight, clock=self.clock)

    def sku(self, unit_price: int = 1000, **more) -> str:
        info = sku(new_id("sku"), unit_price, **more)
        self.catalog.add(info)
        return info.sku_id

    @contextmanager
    def as_member(self, member_id: str = "", channel: str = "H5"):
        token = context.use(RequestContext(request_id=new_id("req"), merchant_id=self.merchant_id, channel=channel,
                                           caller_kind="member", caller_id=member_id or self.member_id))
        try:
            yield
        finally:
            context.reset(token)

    @contextmanager
    def as_staff(self, *roles: str):
        token = context.use(RequestContext(request_id=new_id("req"), merchant_id=self.merchant_id,
                                           caller_kind="staff", caller_id=new_id("stf"), roles=roles or ("OWNER",)))
        try:
            yield
        finally:
            context.reset(token)

    @contextmanager
    def as_service(self):
        token = context.use(RequestContext(request_id=new_id("req"), merchant_id=self.merchant_id,
                                           calling_service="catalog"))
        try:
            yield
        finally:
            context.reset(token)

    async def place(self, *lines: tuple[str, int], key: str = "", **more):
        with self.as_member():
            return await self.order_cases.place(PlaceOrderInput(idempotency_key=key or new_id("key"),
                                                                lines=list(lines), **more))


@pytest.fixture
def world() -> World:
    return World()
