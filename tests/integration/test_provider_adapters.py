"""The order service's provider adapters against real things: the WeChat adapters over HTTP
to the running stand-in process with credentials from the real (sealed) store, and the
sandbox statement read from the order database after a real sandbox payment and refund."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from siyu.catalog.v1 import catalog_pb2_grpc
from siyu.order.v1 import order_pb2 as OS, order_pb2_grpc

from siyu_kit import config, db
from siyu_kit.errors import FailedPrecondition
from siyu_kit.ids import new_id
from siyu_kit.sealing import Sealer
from tests.support import new_merchant_id, stub_fixture
from tests.support.fulfilment import as_staff, paid_order, staff

from services.order.adapters import provider_adapters, wechat_pay_store
from services.order.adapters.wechat_funds import WechatFundsApi
from services.order.adapters.wechat_pay import WechatPayClient
from services.order.application.provider_ports import ShareReceiver, ShareRequest, TransferRequest
from services.order.domain.payments import WechatCredentials

order = stub_fixture("order", order_pb2_grpc.OrderServiceStub)
catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
CN = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def storage(stack):
    settings = config.load("order")
    db.connect(stack.mongodb_uri, settings.mongodb_db, threads=4)
    return settings


@pytest.fixture
async def wechat(stack, storage):
    """A merchant with WeChat Pay credentials registered at the stand-in and kept sealed."""
    tag = uuid.uuid4().hex[:10]
    mchid, appid = str(1900000000 + int(tag[:6], 16) % 99999999), f"wxpa{tag}"
    async with httpx.AsyncClient(base_url=stack.wechat_url, timeout=20) as standin:
        issued = (await standin.post("/_standin/pay/merchants", json={"mchid": mchid, "appid": appid})).json()
        credentials = wechat_pay_store.WechatCredentialStore(Sealer.from_setting(storage.data_key))
        creds = WechatCredentials(
            merchant_id=new_merchant_id(), channel="MINI_PROGRAM", app_id=appid, mch_id=mchid,
            serial_no=issued["serial_no"], platform_public_key_id=issued["platform_public_key_id"],
            api_v3_key=issued["api_v3_key"], private_key_pem=issued["private_key_pem"],
            platform_public_key_pem=issued["platform_public_key_pem"])
        await credentials.put(creds)
        client = WechatPayClient(stack.wechat_url, "https://shop.example/notify")
        try:
            yield creds, credentials, WechatFundsApi(client), standin
        finally:
            await client.close()


async def test_a_transfer_over_http_is_one_bill_however_often_sent(wechat):
    creds, credentials, api, standin = wechat
    transfers = provider_adapters.transfers(credentials, api)
    tid = new_id("wdr")
    request = TransferRequest(merchant_id=creds.merchant_id, transfer_id=tid, member_id="mem_x",
                              openid="o-member", amount=880, remark="佣金提现")
    first, again = await transfers.transfer(request), await transfers.transfer(request)
    assert first == again and first.state == "PROCESSING"
    await standin.post(f"/_standin/funds/transfers/{tid.replace('_', '')}/settle", json={"state": "SUCCESS"})
    assert (await transfers.query(creds.merchant_id, tid)).state == "SUCCEEDED"
    bills = (await standin.get("/_standin/funds/transfers", params={"mchid": creds.mch_id})).json()["bills"]
    assert [b["transfer_amount"] for b in bills] == [880]


async def _paid_trade(api: WechatFundsApi, standin: httpx.AsyncClient, creds: WechatCredentials, total: int) -> str:
    out_trade_no = new_id("pay")
    prepay = await api.client.signed(creds, "POST", "/v3/pay/transactions/jsapi", {
        "appid": creds.app_id, "mchid": creds.mch_id, "description": "goods", "out_trade_no": out_trade_no,
        "notify_url": "https://shop.example/n", "amount": {"total": total, "currency": "CNY"},
        "payer": {"openid": "o-payer"}})
    done = (await standin.post(f"/_standin/pay/{prepay['prepay_id']}/complete", json={"notify": False})).json()
    return done["trade"]["transaction_id"]


async def test_sharing_over_http_stops_at_the_maximum_share_and_the_bill_downloads_whole(wechat):
    creds, credentials, api, standin = wechat
    sharing = provider_adapters.profit_sharing(credentials, api)
    txn = await _paid_trade(api, standin, creds, 20_000)
    share = ShareRequest(merchant_id=creds.merchant_id, provider_txn_id=txn, split_id=new_id("spl"),
                         receivers=[ShareReceiver("MERCHANT_ID", "1900001001", 6_001, "平台服务费")])
    with pytest.raises(FailedPrecondition, match="RULE_LIMIT"):
        await sharing.share(share)
    ok = ShareRequest(merchant_id=creds.merchant_id, provider_txn_id=txn, split_id=new_id("spl"),
                      receivers=[ShareReceiver("MERCHANT_ID", "1900001001", 6_000, "平台服务费")])
    assert (await sharing.share(ok)).state == "PROCESSING"

    statements = provider_adapters.provider_statements(credentials, api)
    rows = await statements.statement(creds.merchant_id, datetime.now(CN).date())
    assert [(r.kind, r.provider_id, r.amount, r.fee) for r in rows] == [("PAYMENT", txn, 20_000, 120)]


async def test_the_sandbox_statement_is_our_own_payments_and_refunds_of_the_day(order, catalog, storage):
    mid = new_merchant_id()
    paid, _, _ = paid_order(order, catalog, mid, (1500, 5, 2))
    refund = order.CreateRefund(OS.CreateRefundRequest(
        order_id=paid.order_id, idempotency_key=new_id("k"),
        lines=[OS.RefundLineInput(line_id=paid.lines[0].line_id, quantity=1)]), metadata=staff(mid)).refund
    [payment] = as_staff(order, mid, paid.order_id).payments
    statements = provider_adapters.provider_statements(
        wechat_pay_store.WechatCredentialStore(Sealer.from_setting(storage.data_key)), None)
    today = datetime.now(CN).date()
    rows = await statements.statement(mid, today)
    assert [(r.kind, r.our_id, r.amount, r.fee) for r in rows] == [
        ("PAYMENT", payment.payment_id, paid.payable.amount, 0), ("REFUND", refund.refund_id, 1500, 0)]
    assert rows[0].provider_id == payment.provider_txn_id and rows[1].provider_id.startswith("sbxrf_")
    assert await statements.statement(mid, today - timedelta(days=1)) == []
    assert await statements.statement(new_merchant_id(), today) == []
