"""The stand-in's 商家转账, 分账 and trade bill, called through the order service's WeChat
adapters in process (real signatures both ways): idempotency by the merchant's numbers, the
maximum share, the bill's format and the discrepancies a test injects."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from siyu_kit.errors import FailedPrecondition
from siyu_kit.ids import new_id
from tests.fakes.sandbox_ledger import MemoryDatabase
from tests.fakes.wechat_pay import FakeWechatCredentials

from services.order.adapters import provider_adapters
from services.order.adapters.sandbox_ledger import SandboxLedger
from services.order.adapters.wechat_funds import WechatFundsApi, out_bill_no, parse_trade_bill
from services.order.adapters.wechat_pay import WechatPayClient
from services.order.application.provider_ports import (ShareReceiver, ShareRequest, ShareReturnRequest,
                                                       TransferRequest)
from services.order.domain.payments import WechatCredentials
from wechat_standin.app import build_app
from wechat_standin.funds import BILL_HEADER, SUMMARY_HEADER, fee_of

MERCHANT = "mch_01J00000000000000000000001"
MCHID, APPID = "1900000109", "wx8888888888888888"
CN = timezone(timedelta(hours=8))


class World:
    def __init__(self):
        self.standin = build_app()
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.standin), base_url="http://standin")
        self.client = WechatPayClient("http://standin", "https://shop.example/v1/payments/wechat/notify",
                                      transport=httpx.ASGITransport(app=self.standin))
        self.api = WechatFundsApi(self.client)
        self.credentials = FakeWechatCredentials()
        self.sandbox = MemoryDatabase()
        self.transfers = provider_adapters.transfers(self.credentials, self.api, SandboxLedger(self.sandbox))
        self.sharing = provider_adapters.profit_sharing(self.credentials, self.api, SandboxLedger(self.sandbox))

    async def set_up(self) -> WechatCredentials:
        m = (await self.http.post("/_standin/pay/merchants", json={"mchid": MCHID, "appid": APPID})).json()
        self.creds = WechatCredentials(
            merchant_id=MERCHANT, channel="MINI_PROGRAM", app_id=APPID, mch_id=MCHID, serial_no=m["serial_no"],
            platform_public_key_id=m["platform_public_key_id"], api_v3_key=m["api_v3_key"],
            private_key_pem=m["private_key_pem"], platform_public_key_pem=m["platform_public_key_pem"])
        await self.credentials.put(self.creds)
        return self.creds

    async def paid_trade(self, total: int) -> str:
        """A JSAPI trade of `total` fen the payer paid; its transaction_id."""
        out_trade_no = new_id("pay")
        await self.client.signed(self.creds, "POST", "/v3/pay/transactions/jsapi", {
            "appid": APPID, "mchid": MCHID, "description": "goods", "out_trade_no": out_trade_no,
            "notify_url": "https://shop.example/n", "amount": {"total": total, "currency": "CNY"},
            "payer": {"openid": "o-payer"}})
        trade = self.standin.state.standin_pay.trades[(MCHID, out_trade_no)]
        done = (await self.http.post(f"/_standin/pay/{trade.prepay_id}/complete", json={"notify": False})).json()
        return done["trade"]["transaction_id"]

    def transfer_request(self, transfer_id: str, amount: int = 500, openid: str = "o-member") -> TransferRequest:
        return TransferRequest(merchant_id=MERCHANT, transfer_id=transfer_id, member_id="mem_x", openid=openid,
                               amount=amount, remark="佣金提现")


@pytest.fixture
async def world():
    w = World()
    await w.set_up()
    yield w
    await w.http.aclose()
    await w.client.close()


# ---- 商家转账 ------------------------------------------------------------------------------

async def test_an_unsigned_transfer_is_refused_with_wechats_sign_error(world):
    reply = await world.http.post("/v3/fund-app/mch-transfer/transfer-bills", json={"out_bill_no": "x"})
    assert reply.status_code == 401 and reply.json()["code"] == "SIGN_ERROR"
    assert reply.headers["Wechatpay-Signature"]  # even a refusal is signed


async def test_a_transfer_waits_for_the_member_and_the_same_bill_answers_a_retry(world):
    tid = new_id("wdr")
    first = await world.transfers.transfer(world.transfer_request(tid))
    again = await world.transfers.transfer(world.transfer_request(tid))
    assert first.state == again.state == "PROCESSING"
    assert first.provider_transfer_id == again.provider_transfer_id
    listed = (await world.http.get("/_standin/funds/transfers", params={"mchid": MCHID})).json()
    [bill] = listed["bills"]
    assert bill["out_bill_no"] == out_bill_no(tid) == tid.replace("_", "")
    assert bill["state"] == "WAIT_USER_CONFIRM" and bill["transfer_amount"] == 500


async def test_the_same_out_bill_no_with_another_amount_is_refused(world):
    tid = new_id("wdr")
    await world.transfers.transfer(world.transfer_request(tid, amount=500))
    with pytest.raises(FailedPrecondition, match="INVALID_REQUEST"):
        await world.transfers.transfer(world.transfer_request(tid, amount=501))


async def test_transfer_states_map_to_ours_and_a_failure_keeps_wechats_reason(world):
    ok, failed, cancelled = new_id("wdr"), new_id("wdr"), new_id("wdr")
    for tid in (ok, failed, cancelled):
        await world.transfers.transfer(world.transfer_request(tid))
    assert await world.transfers.query(MERCHANT, new_id("wdr")) is None
    await world.http.post(f"/_standin/funds/transfers/{out_bill_no(ok)}/settle", json={"state": "SUCCESS"})
    await world.http.post(f"/_standin/funds/transfers/{out_bill_no(failed)}/settle",
                          json={"state": "FAIL", "fail_reason": "ACCOUNT_FROZEN"})
    await world.http.post(f"/_standin/funds/transfers/{out_bill_no(cancelled)}/settle", json={"state": "CANCELLED"})
    assert (await world.transfers.query(MERCHANT, ok)).state == "SUCCEEDED"
    bad = await world.transfers.query(MERCHANT, failed)
    assert (bad.state, bad.failure_reason) == ("FAILED", "ACCOUNT_FROZEN")
    assert (await world.transfers.query(MERCHANT, cancelled)).state == "FAILED"


async def test_the_fail_next_switch_fails_one_new_transfer(world):
    await world.http.post("/_standin/funds/transfers/fail-next", json={"mchid": MCHID, "reason": "ACCOUNT_FROZEN"})
    first = await world.transfers.transfer(world.transfer_request(new_id("wdr")))
    second = await world.transfers.transfer(world.transfer_request(new_id("wdr")))
    assert (first.state, first.failure_reason) == ("FAILED", "ACCOUNT_FROZEN")
    assert second.state == "PROCESSING"


async def test_a_merchant_without_wechat_pays_out_in_the_sandbox_without_an_openid(world):
    other = "mch_01J00000000000000000000002"
    assert not await world.transfers.needs_openid(other, "MINI_PROGRAM")
    assert await world.transfers.needs_openid(MERCHANT, "MINI_PROGRAM")
    result = await world.transfers.transfer(TransferRequest(merchant_id=other, transfer_id=new_id("wdr"),
                                                            member_id="mem_x", openid="", amount=100))
    assert result.state == "SUCCEEDED"
    assert (await world.http.get("/_standin/funds/transfers", params={"mchid": MCHID})).json()["requests"] == 0


# ---- 分账 ---------------------------------------------------------------------------------

def _share(txn: str, split_id: str, *amounts: int, unfreeze: bool = False) -> ShareRequest:
    return ShareRequest(merchant_id=MERCHANT, provider_txn_id=txn, split_id=split_id, unfreeze_rest=unfreeze,
                        receivers=[ShareReceiver("MERCHANT_ID", f"19000{i:05d}", a, "供应商货款")
                                   for i, a in enumerate(amounts)])


async def test_sharing_is_refused_past_the_maximum_share_of_the_transaction(world):
    txn = await world.paid_trade(10_000)
    with pytest.raises(FailedPrecondition, match="RULE_LIMIT"):
        await world.sharing.share(_share(txn, new_id("spl"), 2000, 1001))
    done = await world.sharing.share(_share(txn, new_id("spl"), 2000, 1000))
    assert done.state == "PROCESSING" and set(done.receivers.values()) == {"PENDING"}
    # The maximum counts what was shared before.
    with pytest.raises(FailedPrecondition, match="RULE_LIMIT"):
        await world.sharing.share(_share(txn, new_id("spl"), 1))


async def test_the_same_split_id_answers_the_first_share(world):
    txn = await world.paid_trade(10_000)
    split = new_id("spl")
    first = await world.sharing.share(_share(txn, split, 500))
    again = await world.sharing.share(_share(txn, split, 500))
    assert first.provider_order_id == again.provider_order_id
    shared = (await world.http.get("/_standin/funds/profitsharing", params={"mchid": MCHID})).json()
    assert len(shared["orders"]) == 1
    # WeChat finishes it later; the query says so, and a receiver it could not pay is CLOSED.
    await world.http.post(f"/_standin/funds/profitsharing/{split}/finish",
                          json={"result": "CLOSED", "fail_reason": "RECEIVER_RISK"})
    found = await world.api.query_share(world.creds, split, txn)
    assert found["state"] == "FINISHED" and found["receivers"][0]["result"] == "CLOSED"
    assert found["receivers"][0]["fail_reason"] == "RECEIVER_RISK"
    assert await world.api.query_share(world.creds, split, "4200000000000000000000000000") is None


async def test_a_finished_share_can_be_returned_up_to_what_the_receiver_got(world):
    await world.http.post("/_standin/funds/profitsharing/settings", json={"mchid": MCHID, "finish_at_once": True})
    txn = await world.paid_trade(10_000)
    split = new_id("spl")
    done = await world.sharing.share(_share(txn, split, 800))
    assert done.state == "FINISHED" and done.receivers == {"1900000000": "SUCCESS"}
    back = await world.sharing.return_share(ShareReturnRequest(MERCHANT, split, new_id("rtn"), "1900000000", 300,
                                                               "退款回退"))
    assert back.state == "SUCCESS"
    return_no = (await world.http.get("/_standin/funds/profitsharing", params={"mchid": MCHID})).json()[
        "returns"][0]["out_return_no"]
    found = await world.client.signed(world.creds, "GET",
                                      f"/v3/profitsharing/return-orders/{return_no}?out_order_no={split}")
    assert (found["amount"], found["result"]) == (300, "SUCCESS")
    with pytest.raises(FailedPrecondition, match="INVALID_REQUEST"):
        await world.sharing.return_share(ShareReturnRequest(MERCHANT, split, new_id("rtn"), "1900000000", 501,
                                                            "退款回退"))


async def test_unfreezing_releases_the_rest_and_ends_sharing(world):
    txn = await world.paid_trade(10_000)
    await world.sharing.share(_share(txn, new_id("spl"), 1000))
    released = await world.sharing.unfreeze(MERCHANT, txn, new_id("spl"))
    assert released.state == "FINISHED" and released.receivers == {MCHID: "SUCCESS"}
    with pytest.raises(FailedPrecondition, match="INVALID_REQUEST"):
        await world.sharing.share(_share(txn, new_id("spl"), 1))


async def test_a_sandbox_transaction_is_shared_in_the_sandbox(world):
    done = await world.sharing.share(_share("sbx_txn_01J0000000000000000000000A", new_id("spl"), 100))
    assert done.state == "FINISHED"


# ---- 账单 ---------------------------------------------------------------------------------

async def _paid_and_refunded(world) -> tuple[str, str]:
    txn = await world.paid_trade(12_345)
    trade = next(t for t in world.standin.state.standin_pay.trades.values() if t.transaction_id == txn)
    refund_no = new_id("rfd")
    await world.client.signed(world.creds, "POST", "/v3/refund/domestic/refunds", {
        "out_trade_no": trade.out_trade_no, "out_refund_no": refund_no,
        "amount": {"refund": 2_345, "total": 12_345, "currency": "CNY"}})
    return trade.out_trade_no, refund_no


async def test_the_trade_bill_lists_the_days_payments_and_refunds_with_the_fee(world):
    out_trade_no, refund_no = await _paid_and_refunded(world)
    today = datetime.now(CN).date()
    rows = await world.api.trade_bill(world.creds, today)
    payment = next(r for r in rows if r.kind == "PAYMENT")
    refund = next(r for r in rows if r.kind == "REFUND")
    assert (payment.our_id, payment.amount, payment.fee) == (out_trade_no, 12_345, fee_of(12_345, 60)) == (
        out_trade_no, 12_345, 74)
    assert (refund.our_id, refund.amount, refund.fee) == (refund_no, 2_345, 14)
    assert payment.at.date() == today


async def test_the_bill_file_is_wechats_csv_with_backticks_and_the_summary(world):
    await _paid_and_refunded(world)
    day = datetime.now(CN).date().isoformat()
    data = await world.client.signed(world.creds, "GET", f"/v3/bill/tradebill?bill_date={day}&bill_type=ALL")
    assert data["hash_type"] == "SHA1"
    text = (await world.client.download(world.creds, data["download_url"])).decode()
    lines = text.split("\r\n")
    assert lines[0] == BILL_HEADER and lines[3] == SUMMARY_HEADER
    assert all(field.startswith("`") for field in lines[1].split(","))
    # 2 rows; 123.45 paid, 23.45 refunded; fees 0.74 charged, 0.14 returned.
    assert lines[4].split(",")[:5] == ["`2", "`123.45", "`23.45", "`0.00", "`0.60"]
    assert len(parse_trade_bill(text)) == 2


async def test_a_day_without_trades_has_no_bill(world):
    assert await world.api.trade_bill(world.creds, datetime.now(CN).date() - timedelta(days=3)) == []


async def test_injected_discrepancies_change_the_bill_of_that_day_only(world):
    out_trade_no, refund_no = await _paid_and_refunded(world)
    day = datetime.now(CN).date().isoformat()
    for body in ({"kind": "DROP", "out_no": refund_no}, {"kind": "AMOUNT", "out_no": out_trade_no, "amount": 12_000},
                 {"kind": "EXTRA", "out_no": "UNKNOWN1", "amount": 999}):
        reply = await world.http.post("/_standin/funds/bills/discrepancy", json={"mchid": MCHID, "bill_date": day,
                                                                                 **body})
        assert reply.status_code == 200
    rows = {r.our_id: r for r in await world.api.trade_bill(world.creds, datetime.now(CN).date())}
    assert refund_no not in rows
    assert rows[out_trade_no].amount == 12_000
    assert rows["UNKNOWN1"].amount == 999 and rows["UNKNOWN1"].kind == "PAYMENT"


async def test_a_statement_of_the_merchant_joins_wechats_bill(world):
    out_trade_no, _ = await _paid_and_refunded(world)
    statements = provider_adapters.MerchantStatements(world.credentials,
                                                      provider_adapters.WechatStatements(world.credentials, world.api),
                                                      _NoSandbox())
    rows = await statements.statement(MERCHANT, datetime.now(CN).date())
    assert [r.kind for r in rows] == ["PAYMENT", "REFUND"] and rows[0].our_id == out_trade_no


class _NoSandbox:
    async def statement(self, merchant_id, day):
        return []


async def test_a_call_signed_with_another_key_is_refused(world):
    from dataclasses import replace

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    with pytest.raises(FailedPrecondition, match="SIGN_ERROR"):
        await world.api.transfer(replace(world.creds, private_key_pem=other), new_id("wdr"), "o-member", 1, "")
    assert (await world.http.get("/_standin/funds/transfers", params={"mchid": MCHID})).json()["bills"] == []


def test_the_bill_is_read_by_its_header_names_whatever_their_order():
    header = "商户退款单号,交易状态,微信订单号,商户订单号,微信退款单号,交易时间,退款金额,应结订单金额,手续费,新字段"
    text = "\r\n".join([
        header,
        "`,`SUCCESS,`4200001,`pay_1,`0,`2026-12-01 09:30:00,`0.00,`10.05,`0.06,`x",
        "`rfd_1,`REFUND,`4200001,`pay_1,`5000001,`2026-12-01 10:00:00,`3.00,`0.00,`-0.02,`y",
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额",
        "`2,`10.05,`3.00,`0.00,`0.04,`10.05,`3.00", ""])
    rows = parse_trade_bill(text)
    assert [(r.kind, r.our_id, r.provider_id, r.amount, r.fee) for r in rows] == [
        ("PAYMENT", "pay_1", "4200001", 1005, 6), ("REFUND", "rfd_1", "5000001", 300, 2)]
    assert rows[0].at == datetime(2026, 12, 1, 9, 30, tzinfo=CN)


# ---- the stand-in keys every money-moving call as WeChat does ------------------------------

async def _refund(world, out_trade_no: str, out_refund_no: str, amount: int, total: int) -> dict:
    return await world.client.signed(world.creds, "POST", "/v3/refund/domestic/refunds", {
        "out_trade_no": out_trade_no, "out_refund_no": out_refund_no,
        "amount": {"refund": amount, "total": total, "currency": "CNY"}})


async def test_the_same_out_refund_no_answers_the_refund_made_and_refuses_another_amount(world):
    txn = await world.paid_trade(10_000)
    trade = next(t for t in world.standin.state.standin_pay.trades.values() if t.transaction_id == txn)
    other = await world.paid_trade(10_000)
    other_trade = next(t for t in world.standin.state.standin_pay.trades.values() if t.transaction_id == other)
    no = new_id("rfd")
    first = await _refund(world, trade.out_trade_no, no, 2_500, 10_000)
    again = await _refund(world, trade.out_trade_no, no, 2_500, 10_000)
    assert again["refund_id"] == first["refund_id"] and again["amount"]["refund"] == 2_500
    for amount, out_trade_no in ((2_501, trade.out_trade_no), (2_500, other_trade.out_trade_no)):
        with pytest.raises(FailedPrecondition, match="INVALID_REQUEST 参数与首次请求时不一致"):
            await _refund(world, out_trade_no, no, amount, 10_000)
    assert [r["amount"]["refund"] for r in trade.refunds] == [2_500] and other_trade.refunds == []
    held = (await world.http.get("/_standin/pay/refunds", params={"mchid": MCHID,
                                                                  "out_trade_no": trade.out_trade_no})).json()
    assert len(held["refunds"]) == 1


async def test_the_same_out_order_no_with_other_receivers_or_another_transaction_is_refused(world):
    txn, other = await world.paid_trade(10_000), await world.paid_trade(10_000)
    split = new_id("spl")
    await world.sharing.share(_share(txn, split, 500))
    for asked in (_share(txn, split, 501), _share(txn, split, 500, 1), _share(other, split, 500)):
        with pytest.raises(FailedPrecondition, match="INVALID_REQUEST 参数与首次请求时不一致"):
            await world.sharing.share(asked)
    shared = (await world.http.get("/_standin/funds/profitsharing", params={"mchid": MCHID})).json()
    assert [[r["amount"] for r in o["receivers"]] for o in shared["orders"]] == [[500]]


async def test_the_same_out_return_no_answers_the_return_made_and_refuses_another_amount(world):
    await world.http.post("/_standin/funds/profitsharing/settings", json={"mchid": MCHID, "finish_at_once": True})
    txn = await world.paid_trade(10_000)
    split, back = new_id("spl"), new_id("rtn")
    await world.sharing.share(_share(txn, split, 800))
    for _ in range(2):
        answer = await world.sharing.return_share(ShareReturnRequest(MERCHANT, split, back, "1900000000", 300, "退款"))
        assert answer.state == "SUCCESS"
    with pytest.raises(FailedPrecondition, match="INVALID_REQUEST 参数与首次请求时不一致"):
        await world.sharing.return_share(ShareReturnRequest(MERCHANT, split, back, "1900000000", 200, "退款"))
    returns = (await world.http.get("/_standin/funds/profitsharing", params={"mchid": MCHID})).json()["returns"]
    assert [r["amount"] for r in returns] == [300]


async def test_an_unfreeze_repeated_answers_the_first_and_refuses_another_transaction(world):
    txn, other = await world.paid_trade(10_000), await world.paid_trade(10_000)
    split = new_id("spl")
    first = await world.sharing.unfreeze(MERCHANT, txn, split)
    assert (await world.sharing.unfreeze(MERCHANT, txn, split)).provider_order_id == first.provider_order_id
    with pytest.raises(FailedPrecondition, match="INVALID_REQUEST"):
        await world.sharing.unfreeze(MERCHANT, other, split)
