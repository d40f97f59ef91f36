"""Provider calls keyed by their cause, over the session stack (the order service's gRPC
port, the embedded MongoDB, the catalog): a slow sandbox refund raced by the client's retry
and by a replica's resume job is one refund at the provider with a balanced ledger; a payout
whose write was lost after the provider paid is answered by the provider, not paid twice; a
split shared again is one sharing order."""
from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
from siyu.catalog.v1 import catalog_pb2_grpc
from siyu.common.v1 import common_pb2
from siyu.order.v1 import order_pb2 as OS, order_pb2_grpc

from siyu_kit import clients, config, context, db, delays
from siyu_kit.errors import FailedPrecondition
from siyu_kit.ids import new_id
from siyu_kit.protos import utcnow
from siyu_kit.sealing import Sealer
from tests.support import database_fixture, metadata, new_merchant_id, stub_fixture, wait_until
from tests.support.fulfilment import as_staff, paid_order, staff
from tests.support.order import events_found

from services.order.adapters import provider_adapters, wechat_pay_store
from services.order.adapters.catalog import CatalogClient
from services.order.adapters.ledger import Ledger
from services.order.adapters.payments import Payments
from services.order.adapters.refunds import Refunds
from services.order.adapters.repositories import MongoOrders, MongoSettings, Settings
from services.order.adapters.sandbox_payments import SandboxProvider
from services.order.adapters.wechat_funds import WechatFundsApi
from services.order.adapters.wechat_pay import WechatPayClient
from services.order.application.provider_ports import ShareReceiver, ShareRequest
from services.order.application.refunds import STALL_MS, RefundInput, RefundUseCases
from services.order.domain.refunds import LineRequest

order = stub_fixture("order", order_pb2_grpc.OrderServiceStub)
catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
database = database_fixture("order")
SLOW_S = 0.6


@pytest.fixture(scope="module")
def storage(stack):
    settings = config.load("order")
    db.connect(stack.mongodb_uri, settings.mongodb_db, threads=4)
    return settings


def replica(stack, storage, shift: timedelta = timedelta(0)) -> RefundUseCases:
    """Another order replica's refund use cases over the same storage and sandbox, its clock
    `shift` ahead."""
    stock = CatalogClient(clients.channel(f"127.0.0.1:{stack.ports['catalog']}", "order"))
    return RefundUseCases(orders=MongoOrders(), refunds=Refunds(), payments=Payments(), entries=Ledger(),
                          settings=MongoSettings(Settings()), provider=SandboxProvider(storage.sandbox_payment_secret),
                          stock=stock, clock=lambda: utcnow() + shift)


async def test_a_slow_refund_raced_by_a_retry_and_the_job_is_one_refund_at_the_provider(
        stack, storage, order, catalog, database, monkeypatch):
    mid = new_merchant_id()
    paid, _, _ = paid_order(order, catalog, mid, (700, 10, 2))
    payment_id = paid.payment_id
    key = new_id("k")
    lines = [LineRequest(paid.lines[0].line_id, 2)]
    # The provider is slow for the refunds this process makes.
    monkeypatch.setitem(delays._armed, "order.refund.provider_call", SLOW_S)
    token = context.use(context.RequestContext(request_id=new_id("req"), merchant_id=mid, caller_kind="staff",
                                               caller_id="stf_1", roles=("FINANCE",)))
    try:
        first = asyncio.create_task(replica(stack, storage).create(RefundInput(paid.order_id, key, lines)))
    finally:
        context.reset(token)
    await asyncio.to_thread(wait_until, lambda: (database.refunds.find_one({"order_id": paid.order_id}) or {})
                            .get("provider_call_ms"), message="the refund taken for the provider call")
    # While it is at the provider: the client retries through the service, and a replica's
    # job whose clock says the refund stalled (and the taker's lease ran out) takes it over.
    retry = asyncio.to_thread(order.CreateRefund, OS.CreateRefundRequest(
        order_id=paid.order_id, idempotency_key=key, lines=[OS.RefundLineInput(line_id=lines[0].line_id, quantity=2)]),
        metadata=staff(mid))
    job = replica(stack, storage, timedelta(milliseconds=STALL_MS + 1_000)).resume_stalled(limit=10_000)
    retried, _, _ = await asyncio.gather(retry, job, first)
    assert retried.refund.state in (OS.REFUND_STATE_APPROVED, OS.REFUND_STATE_REFUNDED)
    detail = as_staff(order, mid, paid.order_id)
    assert [(r.state, r.amount.amount) for r in detail.refunds] == [(OS.REFUND_STATE_REFUNDED, 1400)]
    assert detail.order.refunded_amount.amount == 1400
    # One refund at the provider for the payment, of the amount refunded.
    held = list(database.sandbox_refunds.find({"payment_id": payment_id}))
    assert [(h["_id"], h["amount"]) for h in held] == [(detail.refunds[0].refund_id, 1400)]
    stored = database.refunds.find_one({"_id": detail.refunds[0].refund_id})
    assert stored["provider_refund_id"] == held[0]["provider_refund_id"]
    view = order.GetPaymentLedger(OS.GetPaymentLedgerRequest(order_id=paid.order_id), metadata=staff(mid, "FINANCE"))
    assert view.balanced and sorted((e.kind, e.amount.amount) for e in view.entries) == [
        ("ORDER_PAYMENT", 1400), ("REFUND", 1400)]
    assert len(await events_found(stack, "siyu.order.order.refunded", paid.order_id)) == 1


def test_a_payout_whose_write_was_lost_is_answered_by_the_sandbox_not_paid_twice(order, database, storage):
    mid, member_id, transfer_id = new_merchant_id(), new_id("mem"), new_id("wdr")

    def pay_out(amount: int = 1234) -> OS.PayOutTransferResponse:
        return order.PayOutTransfer(OS.PayOutTransferRequest(
            transfer_id=transfer_id, member_id=member_id, amount=common_pb2.Money(amount=amount), remark="佣金提现"),
            metadata=metadata(mid, service="member"))

    paid = pay_out()
    assert paid.state == OS.TRANSFER_STATE_SUCCEEDED
    # The process died after the provider paid and before the payout's final write.
    database.payouts.update_one({"_id": transfer_id}, {"$set": {"state": "PROCESSING", "provider_transfer_id": ""}})
    again = pay_out()
    assert (again.state, again.provider_transfer_id) == (OS.TRANSFER_STATE_SUCCEEDED, paid.provider_transfer_id)
    assert database.sandbox_transfers.count_documents({"_id": transfer_id}) == 1
    made = database.sandbox_transfers.find_one({"_id": transfer_id})
    assert (made["amount"], made["member_id"], made["provider_transfer_id"]) == (1234, member_id,
                                                                                 paid.provider_transfer_id)


async def test_a_split_shared_again_is_one_sharing_order_in_the_sandbox(storage, database):
    credentials = wechat_pay_store.WechatCredentialStore(Sealer.from_setting(storage.data_key))
    client = WechatPayClient("http://127.0.0.1:9", "https://shop.example/notify")  # never called: no credentials
    sharing = provider_adapters.profit_sharing(credentials, WechatFundsApi(client))
    mid, split = new_merchant_id(), new_id("spl")

    def share(*amounts: int) -> ShareRequest:
        return ShareRequest(merchant_id=mid, provider_txn_id="sbx_txn_" + new_id("t")[-8:], split_id=split,
                            receivers=[ShareReceiver("MERCHANT_ID", f"19000{i:05d}", a, "supplier cost")
                                       for i, a in enumerate(amounts)])

    try:
        asked = share(300, 200)
        first, again = await sharing.share(asked), await sharing.share(asked)
        assert first == again and first.state == "FINISHED"
        with pytest.raises(FailedPrecondition) as refused:
            await sharing.share(replace(asked, receivers=asked.receivers[:1]))
        assert refused.value.reason == "PROVIDER_KEY_REUSED"
        [made] = database.sandbox_shares.find({"_id": split})
        assert [r["amount"] for r in made["receivers"]] == [300, 200]
    finally:
        await client.close()
