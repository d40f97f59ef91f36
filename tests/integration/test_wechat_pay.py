"""WeChat Pay in the order service over its real gRPC port, with the real catalog,
embedded MongoDB and the local WeChat stand-in: credentials sealed at rest, the internal
notification RPC's access and input checks, prepay and a notification applied once, and
the stand-in's own refusals of unsigned or wrongly signed calls."""
from __future__ import annotations

import json

import grpc
import httpx
import pytest
from siyu.common.v1 import common_pb2
from siyu.order.v1 import order_pb2 as OS, order_pb2_grpc
from siyu.catalog.v1 import catalog_pb2_grpc
from siyu.member.v1 import member_pb2_grpc

from siyu_kit.ids import new_id
from tests.support import (database_fixture, field_violations, metadata, new_merchant_id, reason, rpc_error,
                           stub_fixture)
from tests.support.member import login
from tests.support.order import make_skus, member, place, staff

order = stub_fixture("order", order_pb2_grpc.OrderServiceStub)
catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
members = stub_fixture("member", member_pb2_grpc.MemberServiceStub)
order_db = database_fixture("order")


@pytest.fixture(scope="module")
def standin(stack):
    with httpx.Client(base_url=stack.wechat_url, timeout=20) as client:
        yield client


def set_up(order, standin, mid: str, channel=common_pb2.CHANNEL_MINI_PROGRAM) -> dict:
    tag = new_id("x")[-8:].lower()
    issued = standin.post("/_standin/pay/merchants", json={"mchid": f"19{tag[:6]}".replace("_", "0"),
                                                           "appid": f"wx{tag}"}).json()
    order.SetWechatPayCredentials(OS.SetWechatPayCredentialsRequest(
        channel=channel, app_id=issued["appid"], mch_id=issued["mchid"], api_v3_key=issued["api_v3_key"],
        private_key_pem=issued["private_key_pem"], serial_no=issued["serial_no"],
        platform_public_key_pem=issued["platform_public_key_pem"],
        platform_public_key_id=issued["platform_public_key_id"]), metadata=staff(mid))
    return issued


def test_credentials_are_sealed_at_rest_and_bound_to_the_merchant(order, standin, order_db):
    mid = new_merchant_id()
    issued = set_up(order, standin, mid)
    doc = order_db.wechat_pay_credentials.find_one({"merchant_id": mid})
    stored = json.dumps(doc, default=str)
    assert issued["api_v3_key"] not in stored
    assert issued["private_key_pem"].splitlines()[1] not in stored
    assert doc["app_id"] == issued["appid"] and set(doc["sealed"]) == {"api_v3_key", "private_key_pem",
                                                                      "platform_public_key_pem"}
    # Copied to another merchant, the sealed values do not open: that merchant cannot pay.
    other = new_merchant_id()
    order_db.wechat_pay_credentials.insert_one({**doc, "_id": f"{other}:MINI_PROGRAM", "merchant_id": other})
    listed = order.ListWechatPayCredentials(OS.ListWechatPayCredentialsRequest(), metadata=staff(mid))
    [shown] = listed.credentials
    assert shown.private_key_set and shown.api_v3_key_set and shown.mch_id == issued["mchid"]
    assert issued["api_v3_key"] not in str(listed)
    error = rpc_error(order.ListWechatPayCredentials, OS.ListWechatPayCredentialsRequest(), metadata=staff(other))
    assert error.code() is grpc.StatusCode.INTERNAL
    # A member, an operator or finance cannot set them; finance may read what is shown.
    for md in (member(mid), metadata(mid, staff_id=new_id("stf"), roles=("OPERATOR",)),
               metadata(mid, staff_id=new_id("stf"), roles=("FINANCE",))):
        error = rpc_error(order.SetWechatPayCredentials, OS.SetWechatPayCredentialsRequest(
            channel=common_pb2.CHANNEL_H5, app_id="wx1"), metadata=md)
        assert error.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED,
                                grpc.StatusCode.INVALID_ARGUMENT)
    assert order_db.wechat_pay_credentials.count_documents({"merchant_id": mid}) == 1


def test_the_notification_rpc_is_internal_and_checks_its_input(order):
    request = OS.HandleWechatPayNotificationRequest(merchant_id=new_merchant_id(), body="{}")
    error = rpc_error(order.HandleWechatPayNotification, request, metadata=member(request.merchant_id))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    error = rpc_error(order.HandleWechatPayNotification, OS.HandleWechatPayNotificationRequest(
        merchant_id="nope", body=""), metadata=metadata(service="gateway"))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert {"merchant_id", "body"} <= set(field_violations(error))
    error = rpc_error(order.HandleWechatPayNotification, request, metadata=metadata(service="gateway"))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED and reason(error) == "BAD_SIGNATURE"


def test_prepay_then_a_notification_pays_once(order, catalog, members, standin, order_db):
    mid = new_merchant_id()
    set_up(order, standin, mid)
    [sku] = make_skus(catalog, mid, (1999, 5))
    # A member signed in on the mini-program: the member service knows their openid there.
    member_id = login(members, mid, "u-" + new_id("x")[-10:], "MINI_PROGRAM").member.member_id
    md = member(mid, member_id, ch="MINI_PROGRAM")
    placed = place(order, md, "k-wx", (sku, 1))
    # The request's payer_openid is ignored: the payer is who the token says.
    request = OS.PayOrderRequest(order_id=placed.order_id, idempotency_key="p1", method=OS.PAYMENT_METHOD_WECHAT,
                                 payer_openid="o-someone-else")
    first = order.PayOrder(request, metadata=md)
    again = order.PayOrder(request, metadata=md)
    assert first.payment.payment_id == again.payment.payment_id
    assert first.wechat_pay.package == again.wechat_pay.package and first.wechat_pay.package.startswith("prepay_id=")
    # A member who never signed in on the mini-program, or a channel without credentials:
    # refused, nothing written.
    stranger = member(mid, ch="MINI_PROGRAM")
    payments_before = order_db.payments.count_documents({"merchant_id": mid})
    error = rpc_error(order.PayOrder, OS.PayOrderRequest(order_id=place(order, stranger, "k-st", (sku, 1)).order_id,
                                                         idempotency_key="p2", method=OS.PAYMENT_METHOD_WECHAT),
                      metadata=stranger)
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "WECHAT_LOGIN_REQUIRED"
    assert order_db.payments.count_documents({"merchant_id": mid}) == payments_before
    h5 = member(mid, member_id, ch="H5")
    error = rpc_error(order.PayOrder, OS.PayOrderRequest(order_id=place(order, h5, "k-h5", (sku, 1)).order_id,
                                                         idempotency_key="p3", method=OS.PAYMENT_METHOD_WECHAT,
                                                         payer_openid="o"), metadata=h5)
    assert reason(error) == "WECHAT_PAY_NOT_CONFIGURED"

    prepay_id = first.wechat_pay.package.removeprefix("prepay_id=")
    note = standin.post(f"/_standin/pay/{prepay_id}/complete", json={"notify": False}).json()["notification"]
    h = {k.lower(): v for k, v in note["headers"].items()}
    notify = OS.HandleWechatPayNotificationRequest(
        merchant_id=mid, body=note["body"], timestamp=h["wechatpay-timestamp"], nonce=h["wechatpay-nonce"],
        signature=h["wechatpay-signature"], serial=h["wechatpay-serial"])
    done = order.HandleWechatPayNotification(notify, metadata=metadata(service="gateway"))
    assert done.applied and done.payment.state == OS.PAYMENT_STATE_SUCCEEDED
    assert order.GetOrder(OS.GetOrderRequest(order_id=placed.order_id), metadata=md).order.state == \
        OS.ORDER_STATE_PAID
    error = rpc_error(order.HandleWechatPayNotification, notify, metadata=metadata(service="gateway"))
    assert reason(error) == "NOTIFICATION_REPLAYED"


def test_the_standin_refuses_unsigned_calls_in_wechats_shape(standin):
    resp = standin.post("/v3/pay/transactions/jsapi", json={"appid": "wx"})
    assert resp.status_code == 401 and resp.json()["code"] == "SIGN_ERROR"
    assert resp.headers["wechatpay-signature"] and resp.headers["wechatpay-serial"].startswith("PUB_KEY_ID_")
    resp = standin.get("/v3/pay/transactions/out-trade-no/x123456?mchid=1", headers={
        "Authorization": 'WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",signature="s",timestamp="1",'
                         'serial_no="x"'})
    assert resp.status_code == 401 and resp.json()["code"] == "SIGN_ERROR"
