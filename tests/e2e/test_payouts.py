"""PayOutTransfer over the order service's gRPC port (internal: the member service calls it
for approved withdrawals), against the local WeChat stand-in: a sandbox merchant pays out at
once; a WeChat merchant pays the member's openid through 商家转账, a retry never pays twice
(the stand-in's bills count), a failure keeps WeChat's reason, a member without WeChat there
is not paid, and a transfer WeChat made before our write (a crash) is answered, not repeated."""
from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from siyu.common.v1 import common_pb2
from siyu.member.v1 import member_pb2, member_pb2_grpc
from siyu.order.v1 import order_pb2 as OS, order_pb2_grpc

from siyu_kit.ids import new_id
from tests.support import channel, field_violations, metadata, rpc_error
from tests.support.shop import Shop

from services.order.adapters.wechat_funds import WechatFundsApi, out_bill_no
from services.order.adapters.wechat_pay import WechatPayClient
from services.order.domain.payments import WechatCredentials

SHOP_PER_TEST = True
MINI = "MINI_PROGRAM"


@pytest.fixture(scope="module")
def order(stack):
    with channel(stack, "order") as ch:
        yield order_pb2_grpc.OrderServiceStub(ch)


@pytest.fixture(scope="module")
def members(stack):
    with channel(stack, "member") as ch:
        yield member_pb2_grpc.MemberServiceStub(ch)


@pytest.fixture(scope="module")
def standin(stack):
    with httpx.Client(base_url=stack.wechat_url, timeout=20) as client:
        yield client


class Wechat:
    """The shop's WeChat Pay credentials, registered at the stand-in and set over HTTP."""

    def __init__(self, standin: httpx.Client, shop: Shop):
        self.standin = standin
        tag = uuid.uuid4().hex[:10]
        self.appid, self.mchid = f"wxpo{tag}", str(1900000000 + int(tag[:6], 16) % 99999999)
        self.issued = standin.post("/_standin/pay/merchants", json={"mchid": self.mchid, "appid": self.appid}).json()
        put = shop.as_staff("PUT", f"/v1/staff/wechat-pay/credentials/CHANNEL_{MINI}", json={
            "app_id": self.appid, "mch_id": self.mchid, "api_v3_key": self.issued["api_v3_key"],
            "private_key_pem": self.issued["private_key_pem"], "serial_no": self.issued["serial_no"],
            "platform_public_key_pem": self.issued["platform_public_key_pem"],
            "platform_public_key_id": self.issued["platform_public_key_id"]})
        assert put.status_code == 200, put.text
        self.creds = WechatCredentials(
            merchant_id=shop.data["merchant_id"], channel=MINI, app_id=self.appid, mch_id=self.mchid,
            serial_no=self.issued["serial_no"], platform_public_key_id=self.issued["platform_public_key_id"],
            api_v3_key=self.issued["api_v3_key"], private_key_pem=self.issued["private_key_pem"],
            platform_public_key_pem=self.issued["platform_public_key_pem"])

    def bills(self) -> list[dict]:
        return self.standin.get("/_standin/funds/transfers", params={"mchid": self.mchid}).json()["bills"]

    def settle(self, transfer_id: str, state: str, **extra) -> None:
        reply = self.standin.post(f"/_standin/funds/transfers/{out_bill_no(transfer_id)}/settle",
                                  json={"state": state, **extra})
        assert reply.status_code == 200, reply.text


def pay_out(order, shop: Shop, transfer_id: str, member_id: str, amount: int = 1234,
            ch=common_pb2.CHANNEL_MINI_PROGRAM) -> OS.PayOutTransferResponse:
    return order.PayOutTransfer(OS.PayOutTransferRequest(
        transfer_id=transfer_id, member_id=member_id, amount=common_pb2.Money(amount=amount), remark="佣金提现",
        channel=ch), metadata=metadata(shop.data["merchant_id"], service="member"))


def member_on(shop: Shop, channel_name: str) -> str:
    return shop.login(f"union-po-{uuid.uuid4().hex[:10]}", channel=channel_name)["member"]["member_id"]


def test_a_sandbox_merchant_pays_out_at_once_and_only_the_member_service_may_ask(order, shop):
    member_id = member_on(shop, "H5")
    transfer_id = new_id("wdr")
    paid = pay_out(order, shop, transfer_id, member_id)
    assert paid.state == OS.TRANSFER_STATE_SUCCEEDED and paid.provider_transfer_id
    assert pay_out(order, shop, transfer_id, member_id) == paid
    refused = rpc_error(pay_out, order, shop, transfer_id, member_id, amount=999)
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    mid = shop.data["merchant_id"]
    request = OS.PayOutTransferRequest(transfer_id=new_id("wdr"), member_id=member_id,
                                       amount=common_pb2.Money(amount=100))
    for caller in (metadata(mid, channel="H5", member_id=member_id),
                   metadata(mid, staff_id="stf_01J0000000000000000000000A", roles=("FINANCE",))):
        assert rpc_error(order.PayOutTransfer, request, metadata=caller).code() == grpc.StatusCode.PERMISSION_DENIED
    bad = rpc_error(order.PayOutTransfer, OS.PayOutTransferRequest(
        transfer_id="wdr-1", member_id=member_id, amount=common_pb2.Money(amount=0)),
        metadata=metadata(mid, service="member"))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "transfer_id" in field_violations(bad)


def test_a_wechat_merchant_pays_the_members_openid_once_however_often_asked(order, shop, standin):
    wx = Wechat(standin, shop)
    member_id = member_on(shop, MINI)
    transfer_id = new_id("wdr")
    first = pay_out(order, shop, transfer_id, member_id)
    assert first.state == OS.TRANSFER_STATE_PROCESSING and first.provider_transfer_id
    assert pay_out(order, shop, transfer_id, member_id).state == OS.TRANSFER_STATE_PROCESSING
    wx.settle(transfer_id, "SUCCESS")
    done = pay_out(order, shop, transfer_id, member_id)
    assert done.state == OS.TRANSFER_STATE_SUCCEEDED and done.provider_transfer_id == first.provider_transfer_id
    [bill] = wx.bills()
    assert (bill["out_bill_no"], bill["transfer_amount"], bill["state"]) == (out_bill_no(transfer_id), 1234, "SUCCESS")

    # WeChat fails one: the reason comes back and stays.
    failing = new_id("wdr")
    pay_out(order, shop, failing, member_id)
    wx.settle(failing, "FAIL", fail_reason="ACCOUNT_FROZEN")
    failed = pay_out(order, shop, failing, member_id)
    assert (failed.state, failed.failure_reason) == (OS.TRANSFER_STATE_FAILED, "ACCOUNT_FROZEN")
    wx.settle(failing, "SUCCESS")
    assert pay_out(order, shop, failing, member_id).state == OS.TRANSFER_STATE_FAILED

    # Ten calls at once for a new transfer: one bill, and every call answers it.
    racing = new_id("wdr")
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: pay_out(order, shop, racing, member_id), range(10)))
    assert {a.provider_transfer_id for a in answers} == {wx.bills()[-1]["transfer_bill_no"]}

    # A member signed in only on H5 has no openid in the mini-program's app: nothing is paid.
    h5_only = member_on(shop, "H5")
    nobody = pay_out(order, shop, new_id("wdr"), h5_only)
    assert (nobody.state, nobody.failure_reason) == (OS.TRANSFER_STATE_FAILED, "NO_WECHAT_IDENTITY")
    assert len(wx.bills()) == 3


def test_a_transfer_wechat_made_before_our_write_is_answered_not_repeated(order, shop, standin, members):
    wx = Wechat(standin, shop)
    member_id = member_on(shop, MINI)
    openid = members.GetWechatOpenid(member_pb2.GetWechatOpenidRequest(member_id=member_id, channel=MINI),
                                     metadata=metadata(shop.data["merchant_id"], service="order")).openid
    transfer_id = new_id("wdr")

    async def provider_first() -> dict:
        client = WechatPayClient(standin.base_url.__str__(), "https://shop.example/notify")
        try:
            return await WechatFundsApi(client).transfer(wx.creds, transfer_id, openid, 1234, "佣金提现")
        finally:
            await client.close()
    made = asyncio.run(provider_first())
    answered = pay_out(order, shop, transfer_id, member_id)
    assert answered.provider_transfer_id == made["transfer_bill_no"]
    assert len(wx.bills()) == 1
