"""Settlement use cases over fakes: the settle job (due, postponed, raced, bounded), the
split written once from order.settled, reversals of refunds after it, execution at the
provider, suppliers, and the finance desk's statement, export and reconciliation."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest

from siyu_kit import context
from siyu_kit.context import RequestContext
from siyu_kit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from siyu_kit.ids import new_id

from tests.fakes.finance import (FakeLedgerDays, FakeLinks, FakePostings, FakeProfitSharing, FakeSettleCandidates,
                                 FakeSplits, FakeSplitSettings, FakeStatements, FakeSuppliers, FakeTransactions)
from tests.fakes.order import FakeCatalog, FakeOpenRefunds, FakeOrders, FakeSettings, sku

from services.order.application.settings import SettingsUseCases
from services.order.application.finance import FinanceUseCases
from services.order.application.provider_ports import StatementRow
from services.order.application.settlement import SettlementUseCases
from services.order.application.suppliers import SupplierUseCases
from services.order.domain import ledger
from services.order.domain.finance import Movement
from services.order.domain.orders import Order, OrderLine, OrderState, OrderSettled
from services.order.domain.settings import DEFAULTS
from services.order.domain.split import (SHARE_FINISHED, SHARE_NONE, SHARE_PENDING, SUPPLIER, SettledLine,
                                         SettledOrder, SplitSettings)
from services.order.domain.suppliers import AccountKind, SupplierDetails

MID = "mch_1"
# 10:00 in Shanghai.
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
DAY = date(2026, 3, 2)


class Clock:
    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def staff(*roles: str, merchant_id: str = MID):
    token = context.use(RequestContext(request_id=new_id("req"), merchant_id=merchant_id, caller_kind="staff",
                                       caller_id=new_id("stf"), roles=roles or ("OWNER",)))
    try:
        yield
    finally:
        context.reset(token)


def completed(order_id: str = "ord_1", at: datetime = T0, merchant_id: str = MID) -> Order:
    line = OrderLine(line_id="oln_1", sku_id="sku_1", product_id="prd_1", title="Tea", quantity=2, unit_price=5000,
                     line_total=10000, line_amount=10000, paid_amount=10000)
    order = Order.place(order_id=order_id, merchant_id=merchant_id, member_id="mem_1", idempotency_key=order_id,
                        lines=[line], currency="CNY", total=10000, payable=10000, reservation_id="rsv_1",
                        created_at=at - timedelta(days=3), expires_at=at)
    order.pull_events()
    order.state, order.completed_at, order.payment_id = OrderState.COMPLETED, at, "pay_1"
    return order


class World:
    def __init__(self, sharing=None, statements=None):
        sharing, statements = sharing or FakeProfitSharing(), statements or FakeStatements()
        self.clock = Clock()
        self.orders, self.settings, self.open = FakeOrders(), FakeSettings(), FakeOpenRefunds()
        self.candidates = FakeSettleCandidates(self.orders)
        self.splits, self.postings, self.split_settings = FakeSplits(), FakePostings(), FakeSplitSettings()
        self.suppliers, self.links, self.ledger = FakeSuppliers(), FakeLinks(), FakeLedgerDays()
        self.txns = FakeTransactions({"pay_1": "wx-txn-1"})
        self.settlement = SettlementUseCases(
            orders=self.orders, order_settings=self.settings, open_refunds=self.open, candidates=self.candidates,
            splits=self.splits, postings=self.postings, split_settings=self.split_settings, suppliers=self.suppliers,
            links=self.links, ledger=self.ledger, transactions=self.txns, sharing=sharing, clock=self.clock, batch=2)
        self.catalog = FakeCatalog().add(sku("sku_1"))
        self.supplier_cases = SupplierUseCases(suppliers=self.suppliers, links=self.links, postings=self.postings,
                                               catalog=self.catalog, clock=self.clock)
        self.finance = FinanceUseCases(splits=self.splits, postings=self.postings, settings=self.split_settings,
                                       ledger=self.ledger, statements=statements)

    def add(self, order: Order) -> Order:
        self.orders.orders[order.id] = order
        return order

    async def supplier(self, account: str = "1900001", kind=AccountKind.PROVIDER_MERCHANT) -> str:
        with staff("OPERATOR"):
            s = await self.supplier_cases.create(new_id("k"), SupplierDetails("甲", "王", "138", kind, account))
            return s.id


def settled_order(order_id="ord_1", provider=10000, refunded_units=0, provider_refunded=0) -> SettledOrder:
    return SettledOrder(order_id=order_id, merchant_id=MID, payment_id="pay_1", balance_paid=0, provider_paid=provider,
                        provider_refunded=provider_refunded,
                        lines=(SettledLine("oln_1", "sku_1", 2, refunded_units),))


# ---- the settle job ------------------------------------------------------------------

async def test_an_order_settles_once_after_its_window_and_is_looked_at_again_only_when_due():
    w = World()
    w.settings.by_merchant[MID] = replace(DEFAULTS, after_sales_days=7)
    w.add(completed())
    assert await w.settlement.settle_due() == 0  # the window is open: postponed to its end
    assert w.candidates.not_before["ord_1"] == int((T0 + timedelta(days=7)).timestamp() * 1000)
    w.clock.now = T0 + timedelta(days=7) - timedelta(seconds=1)
    assert await w.candidates.due(int(w.clock.now.timestamp() * 1000), 10) == []
    w.clock.now = T0 + timedelta(days=7)
    assert await w.settlement.settle_due() == 1
    assert w.orders.stored("ord_1").settled_at == w.clock.now
    assert w.orders.event_types("ord_1") == ["OrderSettled"]
    assert await w.settlement.settle_due() == 0 and w.orders.event_types("ord_1") == ["OrderSettled"]


async def test_a_window_of_zero_days_settles_at_once_and_a_longer_window_set_later_is_honoured():
    w = World()
    w.add(completed("ord_a"))
    w.settings.by_merchant[MID] = replace(DEFAULTS, after_sales_days=0)
    assert await w.settlement.settle_due() == 1
    w.add(completed("ord_b"))
    w.settings.by_merchant[MID] = replace(DEFAULTS, after_sales_days=3)
    assert await w.settlement.settle_due() == 0 and w.orders.stored("ord_b").settled_at is None


async def test_a_window_shortened_by_the_owner_applies_to_orders_already_waiting():
    w = World()
    w.settings.by_merchant[MID] = replace(DEFAULTS, after_sales_days=7)
    w.add(completed())
    assert await w.settlement.settle_due() == 0  # postponed by seven days
    owner_settings = SettingsUseCases(w.settings, w.candidates, clock_ms=lambda: int(w.clock.now.timestamp() * 1000))
    with staff("OWNER"):
        current = await owner_settings.get()
        await owner_settings.update(replace(current, after_sales_days=0), {}, current.version)
    now_ms = int(w.clock.now.timestamp() * 1000)
    # A scan made before the recheck (another replica's, on the old window) cannot postpone it again.
    await w.candidates.postpone(MID, "ord_1", now_ms + 7 * 86_400_000, now_ms)
    w.clock.now += timedelta(milliseconds=1)
    assert await w.settlement.settle_due() == 1  # looked at again, and due
    assert w.orders.stored("ord_1").settled_at == w.clock.now


async def test_a_lost_race_settles_nothing_and_the_next_run_finds_it_settled_or_settles_it():
    w = World()
    w.settings.by_merchant[MID] = replace(DEFAULTS, after_sales_days=0)
    w.add(completed())
    w.orders.stale_saves = 1  # another replica's write came first
    assert await w.settlement.settle_due() == 0
    assert w.orders.stored("ord_1").settled_at is None
    assert await w.settlement.settle_due() == 1
    assert [type(e) for e in w.orders.events_of("ord_1")] == [OrderSettled]


async def test_an_open_refund_keeps_the_order_from_settling_until_it_is_resolved():
    w = World()
    w.settings.by_merchant[MID] = replace(DEFAULTS, after_sales_days=0)
    w.add(completed())
    w.open.open_by_order["ord_1"] = 1
    assert await w.settlement.settle_due() == 0
    w.open.open_by_order["ord_1"] = 0
    w.clock.now += timedelta(minutes=10)
    assert await w.settlement.settle_due() == 1


async def test_one_run_settles_a_bounded_batch():
    w = World()
    w.settings.by_merchant[MID] = replace(DEFAULTS, after_sales_days=0)
    for n in range(5):
        w.add(completed(f"ord_{n}", at=T0 - timedelta(minutes=n)))
    assert [await w.settlement.settle_due() for _ in range(4)] == [2, 2, 1, 0]


def test_settling_refuses_an_order_that_is_not_completed():
    order = completed()
    order.state = OrderState.SHIPPED
    with pytest.raises(ValueError):
        order.settle(T0)


# ---- the split -------------------------------------------------------------------------

async def test_the_split_is_written_once_with_the_links_at_settlement_and_posted_on_its_day():
    w = World()
    sup = await w.supplier()
    with staff("OPERATOR"):
        await w.supplier_cases.link("sku_1", sup, 3000)
    w.ledger.balances["ord_1"] = {ledger.order_account("ord_1"): -10000, ledger.PROVIDER_CLEARING: 10000}
    first = await w.settlement.write_split(settled_order(), T0)
    with staff("OPERATOR"):
        await w.supplier_cases.link("sku_1", sup, 9999)  # a later price does not change the split
    again = await w.settlement.write_split(settled_order(), T0)
    assert first.id == again.id and again.initial.part(SUPPLIER, sup) == 6000 and again.ledger_matches
    assert again.share_state == SHARE_PENDING and [s.account for s in again.shares] == ["1900001"]
    assert [p.day for _, p in w.postings.by_id.values()] == [DAY]


async def test_a_bank_account_supplier_is_paid_off_platform_and_a_balance_paid_order_shares_nothing():
    w = World()
    sup = await w.supplier("6222 0000", AccountKind.BANK)
    with staff("OPERATOR"):
        await w.supplier_cases.link("sku_1", sup, 3000)
    record = await w.settlement.write_split(settled_order(), T0)
    assert record.shares == () and record.share_state == SHARE_PENDING and not record.ledger_matches
    balance_only = replace(settled_order("ord_2"), balance_paid=10000, provider_paid=0)
    assert (await w.settlement.write_split(balance_only, T0)).share_state == SHARE_NONE


async def test_a_refund_after_the_split_is_reversed_once_and_one_before_it_not_at_all():
    w = World()
    sup = await w.supplier()
    with staff("OPERATOR"):
        await w.supplier_cases.link("sku_1", sup, 3000)
    before = settled_order(refunded_units=0)
    assert await w.settlement.reverse("rfd_0", before, settled=False, at=T0) is False
    with pytest.raises(LookupError):  # settled, but its split is not written yet: retried
        await w.settlement.reverse("rfd_1", settled_order(refunded_units=1, provider_refunded=5000), settled=True,
                                   at=T0)
    await w.settlement.write_split(before, T0)
    later = settled_order(refunded_units=1, provider_refunded=5000)
    assert await w.settlement.reverse("rfd_1", later, settled=True, at=T0 + timedelta(days=1)) is True
    assert await w.settlement.reverse("rfd_1", later, settled=True, at=T0 + timedelta(days=1)) is False
    record = w.splits.records["spl_1"]
    assert record.current.part(SUPPLIER, sup) == 3000 and len(record.reversals) == 1
    assert sorted(p.kind for _, p in w.postings.by_id.values()) == ["REVERSAL", "SPLIT"]


async def test_execution_shares_by_split_id_retries_processing_and_returns_after_a_late_refund():
    sharing = FakeProfitSharing(processing=1)
    w = World(sharing=sharing)
    sup = await w.supplier()
    with staff("OPERATOR"):
        await w.supplier_cases.link("sku_1", sup, 1000)
    await w.settlement.write_split(settled_order(), T0)
    assert await w.settlement.execute_due() == 1  # PROCESSING
    assert await w.settlement.execute_due() == 1  # FINISHED
    assert w.splits.records["spl_1"].share_state == SHARE_FINISHED
    assert {r.split_id for r in sharing.shares} == {"spl_1"} and len(sharing.shares) == 2
    assert [(x.account, x.amount) for x in sharing.shares[0].receivers] == [("1900001", 2000)]
    assert await w.settlement.execute_due() == 0
    await w.settlement.reverse("rfd_9", settled_order(refunded_units=1, provider_refunded=5000), settled=True, at=T0)
    assert await w.settlement.execute_due() == 1
    assert [(r.return_id, r.amount) for r in sharing.returns] == [("rfd_9_0", 1000)]
    assert w.splits.records["spl_1"].shares[0].returned == 1000 and not w.splits.records["spl_1"].needs_work


async def test_suppliers_idempotent_create_disable_refuses_links_other_merchants_not_found():
    w = World()
    with staff("OPERATOR"):
        details = SupplierDetails("甲", "", "", AccountKind.BANK, "6222")
        a = await w.supplier_cases.create("k1", details)
        assert (await w.supplier_cases.create("k1", details)).id == a.id
        await w.supplier_cases.update(a.id, None, disable=True)
        with pytest.raises(FailedPrecondition) as refused:
            await w.supplier_cases.link("sku_1", a.id, 10)
        assert refused.value.reason == "SUPPLIER_DISABLED"
        with pytest.raises(NotFound):
            await w.supplier_cases.unlink("sku_1")
        b = await w.supplier_cases.create("k2", details)
        with pytest.raises(NotFound):  # a SKU the merchant's catalog does not hold
            await w.supplier_cases.link("sku_other", b.id, 10)
    with staff("OPERATOR", merchant_id="mch_2"):
        with pytest.raises(NotFound):
            await w.supplier_cases.update(a.id, details, disable=False)
    with staff("GUIDE"):
        with pytest.raises(PermissionDenied):
            await w.supplier_cases.list(10, "")


async def test_the_supplier_payable_is_split_cost_minus_reversals_in_the_range():
    w = World()
    sup = await w.supplier()
    with staff("OPERATOR"):
        await w.supplier_cases.link("sku_1", sup, 3000)
    await w.settlement.write_split(settled_order(), T0)
    await w.settlement.reverse("rfd_1", settled_order(refunded_units=1, provider_refunded=5000), settled=True,
                               at=T0 + timedelta(days=1))
    with staff("FINANCE"):
        first_day = await w.supplier_cases.payable(sup, "2026-03-02", "2026-03-02")
        both = await w.supplier_cases.payable(sup, "2026-03-02", "2026-03-03")
        with pytest.raises(InvalidArgument) as too_long:
            await w.supplier_cases.payable(sup, "2026-01-01", "2026-06-30")
    assert (first_day.payable, first_day.shared, first_day.orders) == (6000, 3000, 1)
    assert (both.payable, both.orders) == (3000, 1)
    assert too_long.value.reason == "DAY_RANGE_TOO_LONG"


# ---- the finance desk ----------------------------------------------------------------------

async def test_the_statement_counts_the_days_payments_refunds_and_splits():
    w = World()
    w.split_settings.by_merchant[MID] = SplitSettings(platform_fee_bp=100)
    w.ledger.movements += [
        (MID, T0, Movement(ledger.ORDER_PAYMENT, 10000, "pay_1")),
        (MID, T0, Movement(ledger.BALANCE_PAYMENT, 2000, "pay_1")),
        (MID, T0, Movement(ledger.REFUND, 500, "rfd_1")),
        (MID, T0 + timedelta(days=1), Movement(ledger.ORDER_PAYMENT, 7, "pay_2")),
        ("mch_2", T0, Movement(ledger.ORDER_PAYMENT, 99, "pay_3")),
    ]
    await w.settlement.write_split(settled_order(), T0)
    with staff("FINANCE"):
        s = await w.finance.statement("2026-03-02")
        csv_text = (await w.finance.export("2026-03-01", "2026-03-03")).decode()
    assert (s.sales, s.refunds, s.platform_fee, s.provider_fee, s.settled_orders) == (12000, 500, 100, 60, 1)
    assert s.net == 10000 - 100 - 60
    lines = csv_text.splitlines()
    assert lines[0].startswith("day,sales,refunds") and len(lines) == 4
    assert lines[2] == "2026-03-02,120.00,5.00,0.00,0.00,1.00,0.60,98.40,0.00,1"


async def test_reconciliation_lists_every_mismatch_with_totals():
    rows = [StatementRow("PAYMENT", "pay_1", "wx1", 10000, 60, T0), StatementRow("PAYMENT", "pay_2", "wx2", 800, 5, T0),
            StatementRow("PAYMENT", "pay_9", "wx9", 300, 2, T0), StatementRow("REFUND", "rfd_1", "wr1", 500, 0, T0)]
    w = World(statements=FakeStatements(rows))
    w.ledger.movements += [(MID, T0, Movement(ledger.ORDER_PAYMENT, 10000, "pay_1")),
                           (MID, T0, Movement(ledger.ORDER_PAYMENT, 900, "pay_2")),
                           (MID, T0, Movement(ledger.BALANCE_PAYMENT, 900, "pay_2")),
                           (MID, T0, Movement(ledger.ORDER_PAYMENT, 400, "pay_4")),
                           (MID, T0, Movement(ledger.REFUND, 500, "rfd_1"))]
    with staff("FINANCE"):
        r = await w.finance.reconcile("2026-03-02")
    assert [(m.kind, m.our_id, m.ours, m.providers) for m in r.mismatches] == [
        ("AMOUNT_DIFFERS", "pay_2", 900, 800), ("MISSING_AT_PROVIDER", "pay_4", 400, 0),
        ("MISSING_HERE", "pay_9", 0, 300)]
    assert (r.our_payments, r.provider_payments, r.our_refunds, r.provider_refunds, r.provider_fees, r.matched) == \
        (11300, 11100, 500, 500, 67, 2)


async def test_finance_reads_need_finance_and_settings_changes_need_the_owner():
    w = World()
    with staff("OPERATOR"):
        with pytest.raises(PermissionDenied):
            await w.finance.statement("2026-03-02")
    with staff("FINANCE"):
        with pytest.raises(PermissionDenied):
            await w.finance.update_split_settings(SplitSettings())
        with pytest.raises(NotFound):
            await w.finance.split("ord_1")
    with staff("OWNER"):
        assert (await w.finance.update_split_settings(SplitSettings(platform_fee_bp=5))).platform_fee_bp == 5


async def test_three_replicas_running_the_job_at_once_settle_each_order_once():
    import asyncio

    w = World()
    w.settings.by_merchant[MID] = replace(DEFAULTS, after_sales_days=0)
    for n in range(6):
        w.add(completed(f"ord_{n}", at=T0 - timedelta(minutes=n)))
    class Yielding(FakeOpenRefunds):
        async def count_open(self, merchant_id: str, order_id: str) -> int:
            await asyncio.sleep(0)  # every replica reads the order before any of them writes
            return 0

    replicas = [replace(w.settlement, batch=10, open_refunds=Yielding()) for _ in range(3)]
    settled = await asyncio.gather(*(r.settle_due() for r in replicas))
    # Every replica tried every order; two of the three writes of each lost their compare-and-set.
    assert sum(settled) == 6 and w.orders.writes == 18
    assert sorted(oid for oid, _, e in w.orders.events if isinstance(e, OrderSettled)) == [f"ord_{n}" for n in range(6)]


async def test_a_share_the_provider_fails_is_retried_next_run_and_does_not_hold_up_the_others():
    sharing = FakeProfitSharing(failing={"spl_a"})
    w = World(sharing=sharing)
    sup = await w.supplier()
    with staff("OPERATOR"):
        await w.supplier_cases.link("sku_1", sup, 1000)
    await w.settlement.write_split(settled_order("ord_a"), T0)
    await w.settlement.write_split(settled_order("ord_b"), T0)
    assert await w.settlement.execute_due() == 1
    assert w.splits.records["spl_b"].share_state == SHARE_FINISHED
    assert w.splits.records["spl_a"].share_state == SHARE_PENDING
    sharing.failing.clear()
    assert await w.settlement.execute_due() == 1
    assert w.splits.records["spl_a"].share_state == SHARE_FINISHED


async def test_a_provider_paid_order_with_nobody_to_share_with_is_unfrozen_at_once():
    sharing = FakeProfitSharing()
    w = World(sharing=sharing)
    await w.settlement.write_split(settled_order(), T0)  # no supplier links
    assert await w.settlement.execute_due() == 1
    assert sharing.unfrozen == ["spl_1"] and sharing.shares == []
    assert w.splits.records["spl_1"].share_state == SHARE_FINISHED
