"""Provider calls keyed by their cause, without servers: the sandbox provider keeps its
refunds, transfers and sharing orders under our ids (a repeat answers the first, the same id
with other parameters is refused), and a refund is taken by compare-and-set before its
provider call, so a retry, the job or another replica asks the provider instead of
refunding again."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from siyu_kit import delays
from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import Conflict, FailedPrecondition
from siyu_kit.ids import new_id
from tests.fakes.order_money import MERCHANT, ORD_1, FakeProvider
from tests.fakes.sandbox_ledger import MemoryDatabase
from tests.support import eventually
from tests.unit.order.test_refunds import PAY_1, T0, World, one

from services.order.adapters.provider_adapters import SandboxProfitSharing, SandboxTransfers
from services.order.adapters.sandbox_ledger import REFUNDS, SHARES, TRANSFERS, SandboxLedger
from services.order.adapters.sandbox_payments import SandboxProvider
from services.order.application.provider_ports import ShareReceiver, ShareRequest, ShareReturnRequest, TransferRequest
from services.order.application.refunds import RefundUseCases
from services.order.domain.payments import Payment, PaymentState
from services.order.domain.refunds import PROVIDER_CALL_LEASE_MS, RefundState

KEY_REUSED = "PROVIDER_KEY_REUSED"


def _payment(amount: int = 1_000) -> Payment:
    payment = Payment.start(new_id("pay"), merchant_id=MERCHANT, member_id="mem_1", order_id=ORD_1,
                            idempotency_key="p", amount=amount, currency="CNY", now=T0)
    payment.state, payment.provider_txn_id = PaymentState.SUCCEEDED, SandboxProvider.new_txn_id()
    return payment


# ---- the sandbox provider ------------------------------------------------------------------


async def test_the_sandbox_refunds_once_per_refund_id_and_refuses_it_for_another_amount_or_payment():
    db = MemoryDatabase()
    sandbox = SandboxProvider("secret", SandboxLedger(db))
    payment, other = _payment(), _payment()
    refund_id = new_id("rfd")
    assert await sandbox.find(payment, refund_id) is None
    first = await sandbox.refund(payment, refund_id, 400)
    again = await sandbox.refund(payment, refund_id, 400)
    assert again == first and first.amount == 400 and first.provider_refund_id.startswith("sbxrf_")
    for asked, amount in ((payment, 401), (other, 400)):
        with pytest.raises(FailedPrecondition) as refused:
            await sandbox.refund(asked, refund_id, amount)
        assert refused.value.reason == KEY_REUSED
    assert await sandbox.find(payment, refund_id) == first and await sandbox.find(other, refund_id) is None
    assert len(db[REFUNDS].where(payment_id=payment.id)) == 1 and not db[REFUNDS].where(payment_id=other.id)


async def test_the_sandbox_transfers_once_per_transfer_id():
    db = MemoryDatabase()
    transfers = SandboxTransfers(SandboxLedger(db))
    tid = new_id("wdr")
    asked = TransferRequest(merchant_id=MERCHANT, transfer_id=tid, member_id="mem_1", openid="", amount=500)
    assert await transfers.query(MERCHANT, tid) is None
    first = await transfers.transfer(asked)
    assert first.state == "SUCCEEDED"
    assert await transfers.transfer(asked) == first == await transfers.query(MERCHANT, tid)
    assert await transfers.query("mch_other", tid) is None
    for changed in ({"amount": 501}, {"member_id": "mem_2"}, {"merchant_id": "mch_other"}):
        with pytest.raises(FailedPrecondition) as refused:
            await transfers.transfer(TransferRequest(**{**asked.__dict__, **changed}))
        assert refused.value.reason == KEY_REUSED
    assert len(db[TRANSFERS].docs) == 1


async def test_the_sandbox_shares_once_per_split_id_and_returns_once_per_return_id():
    db = MemoryDatabase()
    sharing = SandboxProfitSharing(SandboxLedger(db))
    split, back = new_id("spl"), new_id("rtn")

    def share(*amounts: int) -> ShareRequest:
        return ShareRequest(merchant_id=MERCHANT, provider_txn_id="sbx_txn_1", split_id=split,
                            receivers=[ShareReceiver("MERCHANT_ID", f"acct{i}", a, "cost")
                                       for i, a in enumerate(amounts)])

    first = await sharing.share(share(300, 200))
    assert first.state == "FINISHED" and (await sharing.share(share(300, 200))) == first
    for other in (share(300), share(300, 201)):
        with pytest.raises(FailedPrecondition) as refused:
            await sharing.share(other)
        assert refused.value.reason == KEY_REUSED
    for _ in range(2):
        assert (await sharing.return_share(ShareReturnRequest(MERCHANT, split, back, "acct0", 100, "r"))).state \
            == "SUCCESS"
    with pytest.raises(FailedPrecondition):
        await sharing.return_share(ShareReturnRequest(MERCHANT, split, back, "acct0", 99, "r"))
    unfrozen = await sharing.unfreeze(MERCHANT, "sbx_txn_1", split)
    assert await sharing.unfreeze(MERCHANT, "sbx_txn_1", split) == unfrozen
    assert len(db[SHARES].docs) == 3  # the order, its return, its unfreezing


# ---- a refund's provider call, behind a state check ------------------------------------------


class WatchedProvider(FakeProvider):
    """Records, at each refund call, whether the refund was already stored as taken."""

    def __init__(self, world: World):
        super().__init__()
        self.world = world
        self.taken_at_call: list[bool] = []

    async def refund(self, payment, refund_id, amount):
        self.taken_at_call.append(self.world.refunds.stored(refund_id).provider_call_ms > 0)
        return await super().refund(payment, refund_id, amount)


def _job(world: World, shift: timedelta) -> RefundUseCases:
    """Another replica's use cases over the same storage and provider, its clock `shift` later."""
    c = world.cases
    return RefundUseCases(orders=c.orders, refunds=c.refunds, payments=c.payments, entries=c.entries,
                          settings=c.settings, provider=c.provider, stock=c.stock,
                          clock=lambda: world.now + shift)


async def test_the_refund_is_stored_as_taken_before_the_provider_is_called():
    world = World()
    world.provider = world.cases.provider = WatchedProvider(world)
    world.paid_order()
    done = await world.create(one())
    assert done.state is RefundState.REFUNDED and world.provider.taken_at_call == [True]


async def test_a_slow_provider_call_raced_by_a_retry_and_the_job_refunds_once(monkeypatch):
    world = World()
    world.paid_order()
    world.orders.stale_saves = 5
    with pytest.raises(Conflict):
        await world.create(one())  # approved at T0, cut short before the provider call
    world.now = T0 + timedelta(seconds=20)
    monkeypatch.setitem(delays._armed, "order.refund.provider_call", 0.2)
    first = asyncio.create_task(world.create(one()))  # the client's retry takes it and is slow
    await eventually(lambda: next(iter(world.refunds.refunds.values())).provider_call_ms, timeout=5, interval=0.005,
                     message="the retry taking the refund")
    # While that call is at the provider: the client retries again, and a replica's job that
    # sees the refund as stalled (approved 35 s ago) runs; the taker's lease has not run out.
    retried = await world.create(one())
    assert retried.state is RefundState.APPROVED
    assert await _job(world, timedelta(seconds=15)).resume_stalled() == 0
    done = await first
    assert done.state is RefundState.REFUNDED
    assert world.provider.refunds == [(PAY_1, 500)] and world.provider.calls == 1 and world.provider.finds == 2
    assert world.ledger.kinds(ORD_1) == ["REFUND"] and world.orders.event_types() == ["OrderRefunded"]


async def test_a_job_past_the_lease_refunds_under_the_same_key_while_the_first_call_is_slow(monkeypatch):
    world = World()
    world.paid_order()
    monkeypatch.setitem(delays._armed, "order.refund.provider_call", 0.2)
    first = asyncio.create_task(world.create(one()))
    await eventually(lambda: world.refunds.refunds and next(iter(world.refunds.refunds.values())).provider_call_ms,
                     timeout=5, interval=0.005, message="the first call taking the refund")
    # The taker looks dead to the job (its lease ran out): the job takes the refund over and
    # calls the provider with the same refund id; the first call, landing late, gets the same
    # refund back.
    job = _job(world, timedelta(milliseconds=PROVIDER_CALL_LEASE_MS))
    finished, done = await asyncio.gather(job.resume_stalled(), first)
    # The first caller's last write loses to the job's take: it answers the refund as it stands.
    assert finished == 1 and done.state in (RefundState.APPROVED, RefundState.REFUNDED)
    assert world.refunds.stored(done.id).state is RefundState.REFUNDED
    assert world.provider.refunds == [(PAY_1, 500)] and world.provider.calls == 2
    assert world.ledger.kinds(ORD_1) == ["REFUND"]


async def test_the_job_asks_the_provider_and_takes_the_refund_it_made_without_calling_again():
    world = World()
    world.paid_order()
    world.refunds.stale(1, after=1)  # the provider refunded; the write after it is lost
    cut_short = await world.create(one())
    assert cut_short.state is RefundState.APPROVED and world.provider.calls == 1
    world.now = T0 + timedelta(milliseconds=PROVIDER_CALL_LEASE_MS)
    assert await world.cases.resume_stalled() == 1
    stored = world.refunds.stored(cut_short.id)
    assert stored.state is RefundState.REFUNDED and stored.provider_refund_id == "sbxrf_1"
    assert world.provider.calls == 1 and world.provider.finds == 1


async def test_a_taken_refund_the_provider_never_saw_is_refunded_once_the_lease_ran_out():
    world = World()
    world.paid_order()

    class Lost(FakeProvider):
        async def refund(self, payment, refund_id, amount):
            raise ConnectionError("the call never reached the provider")

    world.cases.provider = Lost()
    with pytest.raises(ConnectionError):
        await world.create(one())
    refund = next(iter(world.refunds.refunds.values()))
    assert refund.state is RefundState.APPROVED and refund.provider_call_ms
    world.cases.provider = world.provider
    world.now = T0 + timedelta(milliseconds=PROVIDER_CALL_LEASE_MS - 1)
    assert (await world.create(one())).state is RefundState.APPROVED  # still the first caller's
    assert world.provider.calls == 0
    world.now = T0 + timedelta(milliseconds=PROVIDER_CALL_LEASE_MS)
    assert await world.cases.resume_stalled() == 1
    assert world.provider.refunds == [(PAY_1, 500)]


# ---- a split executed again ------------------------------------------------------------------


async def test_a_split_executed_again_by_a_replica_that_read_it_before_is_one_sharing_order():
    from tests.unit.order.test_settlement import World as SettlementWorld, settled_order, staff

    db = MemoryDatabase()
    w = SettlementWorld(sharing=SandboxProfitSharing(SandboxLedger(db)))
    w.txns.txns["pay_1"] = "sbx_txn_1"
    supplier = await w.supplier()
    with staff("OPERATOR"):
        await w.supplier_cases.link("sku_1", supplier, 1000)
    await w.settlement.write_split(settled_order(), T0)
    [read_before] = await w.splits.needing_work(10)  # another replica read it before this one shared
    assert await w.settlement.execute_due() == 1
    with pytest.raises(StaleVersion):
        await w.settlement._execute(read_before, w.settlement.sharing)  # shares again, keyed by the split id
    assert [d["_id"] for d in db[SHARES].docs.values()] == [read_before.id]
    assert [r["amount"] for r in db[SHARES].docs[read_before.id]["receivers"]] == [2000]
