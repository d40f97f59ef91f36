"""WeChat Pay without servers: the signing, verification and decryption vectors, the
HTTP adapter against the stand-in (in process), and the use cases with in-memory
repositories — prepay, notifications (forged, stale, replayed, tampered), the query of a
payment whose notification never came, refunds keyed by our refund id, credentials."""
from __future__ import annotations

import asyncio
import base64
import copy
import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256

from siyu_kit.ids import new_id
from siyu_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unauthenticated, Unavailable
from tests.fakes.order import FakeOrders
from tests.fakes.order_money import (MEMBER, MERCHANT, ORD_1, FakeLedger, FakePayments, FakeProvider, FakeRefunds,
                                     acting, an_order)
from tests.fakes.wechat_pay import FakeSeenNotifications, FakeWechatCredentials, FakeWechatIdentities

from services.order.adapters import wechat_pay_crypto as crypto
from services.order.adapters.wechat_pay import WechatPayClient, WechatRefunds, key_problems
from services.order.application.payments import PaymentUseCases, auto_refund_id
from services.order.application.wechat_pay import CredentialsInput, NotificationHeaders, WechatPayUseCases
from services.order.domain.orders import AppliedRefund, OrderState
from services.order.domain.refunds import Refund, RefundState
from services.order.domain.payments import (PaymentMethod, PaymentState, WechatCredentials, notification_fresh)
from wechat_standin.app import build_app

APPID, MCHID = "wxa1b2c3d4e5f60001", "1900000109"


def _keypair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return _keypair()


# ---- vectors ---------------------------------------------------------------------------


def test_request_signature_covers_the_documented_message_and_verifies(keys):
    private, public = keys
    header = crypto.authorization(mchid=MCHID, serial_no="ABC123", private_key_pem=private, method="POST",
                                  url="/v3/pay/transactions/jsapi", body='{"a":1}', timestamp="1554208460",
                                  nonce="593BEC0C930BF1AFEB40B4A08C8FB242")
    fields = crypto.parse_authorization(header)
    assert header.startswith("WECHATPAY2-SHA256-RSA2048 ")
    assert fields["mchid"] == MCHID and fields["serial_no"] == "ABC123" and fields["timestamp"] == "1554208460"
    message = "POST\n/v3/pay/transactions/jsapi\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n{\"a\":1}\n"
    assert crypto.verify(public, message, fields["signature"])
    assert not crypto.verify(public, message.replace("{\"a\":1}", "{\"a\":2}"), fields["signature"])
    assert crypto.parse_authorization("Bearer x") == {}


def test_pay_sign_is_rsa_over_appid_timestamp_nonce_and_package(keys):
    private, public = keys
    params = crypto.jsapi_params(app_id=APPID, prepay_id="wx201410272009395522657a690389285100",
                                 private_key_pem=private, time_stamp="1414561699", nonce_str="5K8264ILTKCH16CQ")
    assert set(params) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["package"] == "prepay_id=wx201410272009395522657a690389285100" and params["signType"] == "RSA"
    raw = base64.b64decode(params["paySign"])
    serialization.load_pem_public_key(public.encode()).verify(
        raw, f"{APPID}\n1414561699\n5K8264ILTKCH16CQ\nprepay_id=wx201410272009395522657a690389285100\n".encode(),
        padding.PKCS1v15(), SHA256())


def test_platform_signature_over_timestamp_nonce_body(keys):
    private, public = keys
    body = '{"id":"EV-1"}'
    sig = crypto.sign(private, f"1700000000\nabc\n{body}\n")
    assert crypto.verify_platform(public, "1700000000", "abc", body, sig)
    assert not crypto.verify_platform(public, "1700000001", "abc", body, sig)
    assert not crypto.verify_platform(public, "1700000000", "abc", body + " ", sig)
    assert not crypto.verify_platform(public, "1700000000", "abc", body, "not base64!")
    assert not crypto.verify_platform("not a key", "1700000000", "abc", body, sig)


def test_aead_resource_opens_with_the_key_nonce_and_associated_data_only():
    key, nonce = "0123456789abcdef0123456789abcdef", "fdasflkja484"
    # An independent AES-256-GCM of the same inputs: the vector the decryption must match.
    box = base64.b64encode(AESGCM(key.encode()).encrypt(nonce.encode(), b'{"trade_state":"SUCCESS"}',
                                                        b"transaction")).decode()
    assert crypto.encrypt(key, nonce, '{"trade_state":"SUCCESS"}', "transaction") == box
    assert crypto.decrypt(key, nonce, box, "transaction") == '{"trade_state":"SUCCESS"}'
    tampered = base64.b64encode(bytes([base64.b64decode(box)[0] ^ 1]) + base64.b64decode(box)[1:]).decode()
    assert crypto.decrypt(key, nonce, tampered, "transaction") is None
    assert crypto.decrypt(key, nonce, box, "certificate") is None
    assert crypto.decrypt(key, "fdasflkja485", box, "transaction") is None
    assert crypto.decrypt("f" * 32, nonce, box, "transaction") is None
    assert crypto.decrypt("short", nonce, box, "transaction") is None
    assert crypto.decrypt(key, nonce, "%%%", "transaction") is None


def test_the_notification_window_is_five_minutes_either_side():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    ts = int(now.timestamp())
    assert notification_fresh(str(ts - 300), now) and notification_fresh(str(ts + 300), now)
    assert not notification_fresh(str(ts - 301), now)
    assert not notification_fresh(str(ts - 30 * 86400), now)
    assert not notification_fresh("", now) and not notification_fresh("-5", now) and not notification_fresh("1e9", now)


def test_credentials_never_print_their_secrets(keys):
    creds = WechatCredentials(merchant_id=MERCHANT, channel="MINI_PROGRAM", app_id=APPID, mch_id=MCHID,
                              serial_no="S", platform_public_key_id="P", api_v3_key="k" * 32,
                              private_key_pem=keys[0], platform_public_key_pem=keys[1])
    shown = repr(creds)
    assert "k" * 32 not in shown and "PRIVATE" not in shown and "PUBLIC" not in shown and APPID in shown


def test_key_problems_name_keys_that_do_not_load(keys):
    assert key_problems(keys[0], keys[1]) == []
    assert [f for f, _ in key_problems("nope", "nope")] == ["private_key_pem", "platform_public_key_pem"]


# ---- the adapter against the stand-in, and the use cases -------------------------------


class World:
    def __init__(self):
        self.now = datetime.now(timezone.utc).replace(microsecond=0)
        self.standin = build_app()
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.standin), base_url="http://standin")
        self.client = WechatPayClient("http://standin", "https://shop.example/v1/payments/wechat/notify",
                                      transport=httpx.ASGITransport(app=self.standin))
        self.orders, self.payments, self.ledger = FakeOrders(), FakePayments(), FakeLedger()
        self.credentials, self.seen = FakeWechatCredentials(), FakeSeenNotifications()
        self.identities = FakeWechatIdentities({(MEMBER, "MINI_PROGRAM"): "o-openid-1"})
        self.refund_repo = FakeRefunds()
        self.refunds = WechatRefunds(self.credentials, self.client)
        self.base = PaymentUseCases(orders=self.orders, payments=self.payments, provider=FakeProvider(),
                                    entries=self.ledger, clock=lambda: self.now,
                                    refunders={PaymentMethod.WECHAT: self.refunds})
        self.cases = WechatPayUseCases(base=self.base, payments=self.payments, credentials=self.credentials,
                                       wechat=self.client, seen=self.seen, identities=self.identities,
                                       refunds=self.refund_repo, clock=lambda: self.now,
                                       key_problems=lambda c: key_problems(c.private_key_pem,
                                                                           c.platform_public_key_pem))
        self.order = an_order(ORD_1, created_at=self.now)
        self.orders.orders[self.order.id] = self.order

    async def register(self) -> dict:
        reply = await self.http.post("/_standin/pay/merchants", json={"mchid": MCHID, "appid": APPID})
        self.merchant = reply.json()
        return self.merchant

    async def set_up(self) -> None:
        m = await self.register()
        with acting(staff="stf_owner", roles=("OWNER",)):
            await self.cases.set_credentials(CredentialsInput(
                channel="MINI_PROGRAM", app_id=APPID, mch_id=MCHID, api_v3_key=m["api_v3_key"],
                private_key_pem=m["private_key_pem"], serial_no=m["serial_no"],
                platform_public_key_pem=m["platform_public_key_pem"],
                platform_public_key_id=m["platform_public_key_id"]))

    async def pay(self, key: str = "k1"):
        from siyu_kit import context
        token = context.use(context.RequestContext(request_id="req_t", merchant_id=MERCHANT, caller_kind="member",
                                                   caller_id=MEMBER, channel="MINI_PROGRAM"))
        try:
            return await self.cases.pay(ORD_1, key)
        finally:
            context.reset(token)

    async def notification(self, prepay_id: str, **options) -> tuple[NotificationHeaders, str]:
        note = (await self.http.post(f"/_standin/pay/{prepay_id}/notification", json=options)).json()
        h = note["headers"]
        return NotificationHeaders(timestamp=h["Wechatpay-Timestamp"], nonce=h["Wechatpay-Nonce"],
                                   signature=h["Wechatpay-Signature"], serial=h["Wechatpay-Serial"]), note["body"]

    async def complete(self, prepay_id: str) -> tuple[NotificationHeaders, str]:
        note = (await self.http.post(f"/_standin/pay/{prepay_id}/complete", json={"notify": False})).json()
        n = note["notification"]
        h = n["headers"]
        return NotificationHeaders(timestamp=h["Wechatpay-Timestamp"], nonce=h["Wechatpay-Nonce"],
                                   signature=h["Wechatpay-Signature"], serial=h["Wechatpay-Serial"]), n["body"]


@pytest.fixture
async def world():
    w = World()
    yield w
    await w.http.aclose()
    await w.client.close()


async def test_pay_returns_what_wx_request_payment_needs(world):
    await world.set_up()
    payment, params = await world.pay()
    assert payment.method is PaymentMethod.WECHAT and payment.state is PaymentState.PENDING
    assert payment.prepay_id.startswith("wx") and params.package == f"prepay_id={payment.prepay_id}"
    assert params.sign_type == "RSA" and params.app_id == APPID
    merchant_public = serialization.load_pem_private_key(world.merchant["private_key_pem"].encode(),
                                                          None).public_key()
    merchant_public.verify(base64.b64decode(params.pay_sign),
                           f"{APPID}\n{params.time_stamp}\n{params.nonce_str}\n{params.package}\n".encode(),
                           padding.PKCS1v15(), SHA256())
    again, params2 = await world.pay()
    assert again.id == payment.id and params2.package == params.package


async def test_pay_without_credentials_or_a_wechat_identity_is_refused(world):
    with pytest.raises(FailedPrecondition) as e:
        await world.pay()
    assert e.value.reason == "WECHAT_PAY_NOT_CONFIGURED" and not world.payments.payments
    await world.set_up()
    world.identities.openids.clear()  # the member never signed in with WeChat on the mini-program
    with pytest.raises(FailedPrecondition) as e:
        await world.pay()
    assert e.value.reason == "WECHAT_LOGIN_REQUIRED" and "MINI_PROGRAM" in e.value.message
    assert not world.payments.payments and not world.ledger.entries


async def test_the_payer_is_the_members_openid_in_the_paying_channel(world):
    await world.set_up()
    world.identities.openids[(MEMBER, "H5")] = "o-web-other"
    payment, _ = await world.pay()
    assert world.identities.calls == [(MEMBER, "MINI_PROGRAM")]
    assert world.standin.state.standin_pay.trades[(MCHID, payment.id)].openid == "o-openid-1"


async def test_only_a_member_pays_by_wechat(world):
    await world.set_up()
    with acting(staff="stf_owner", roles=("OWNER",)), pytest.raises(Unauthenticated):
        await world.cases.pay(ORD_1, "k1")
    assert not world.payments.payments and not world.identities.calls


async def test_a_verified_notification_pays_the_order_once(world):
    await world.set_up()
    payment, _ = await world.pay()
    headers, body = await world.complete(payment.prepay_id)
    paid, applied = await world.cases.notify(MERCHANT, headers, body)
    assert applied and paid.state is PaymentState.SUCCEEDED and paid.provider_txn_id.startswith("42")
    assert world.orders.orders[ORD_1].state is OrderState.PAID


async def _unchanged(world, payment_id: str) -> None:
    assert world.payments.stored(payment_id).state is PaymentState.PENDING
    assert world.orders.orders[ORD_1].state is OrderState.PENDING_PAYMENT


async def test_forged_stale_replayed_and_tampered_notifications_change_nothing(world):
    await world.set_up()
    payment, _ = await world.pay()
    # Forged: signed with another key.
    headers, body = await world.notification(payment.prepay_id)
    other, _ = _keypair()
    forged = NotificationHeaders(headers.timestamp, headers.nonce,
                                 crypto.sign(other, f"{headers.timestamp}\n{headers.nonce}\n{body}\n"), headers.serial)
    with pytest.raises(Unauthenticated) as e:
        await world.cases.notify(MERCHANT, forged, body)
    assert e.value.reason == "BAD_SIGNATURE"
    # Tampered: the body changed after signing.
    data = json.loads(body)
    data["resource"]["associated_data"] = "transactionX"
    with pytest.raises(Unauthenticated) as e:
        await world.cases.notify(MERCHANT, headers, json.dumps(data))
    assert e.value.reason == "BAD_SIGNATURE"
    # Stale: correctly signed, thirty days old.
    old = int((world.now - timedelta(days=30)).timestamp())
    stale_headers, stale_body = await world.notification(payment.prepay_id, timestamp=old)
    with pytest.raises(Unauthenticated) as e:
        await world.cases.notify(MERCHANT, stale_headers, stale_body)
    assert e.value.reason == "NOTIFICATION_STALE"
    # Another merchant's path, or an unknown platform key.
    with pytest.raises(Unauthenticated):
        await world.cases.notify("mch_01JAAAAAAAAAAAAAAAAAAAAAAA", headers, body)
    with pytest.raises(Unauthenticated):
        await world.cases.notify(MERCHANT, NotificationHeaders(headers.timestamp, headers.nonce,
                                                               headers.signature, "PUB_KEY_ID_OTHER"), body)
    await _unchanged(world, payment.id)
    # Replayed: the first delivery is taken (the trade is not paid at WeChat: nothing
    # changes), the identical second one is refused.
    await world.cases.notify(MERCHANT, *(await world.notification(payment.prepay_id, trade_state="NOTPAY")))
    h2, b2 = await world.notification(payment.prepay_id, trade_state="NOTPAY")
    await world.cases.notify(MERCHANT, h2, b2)
    with pytest.raises(Unauthenticated) as e:
        await world.cases.notify(MERCHANT, h2, b2)
    assert e.value.reason == "NOTIFICATION_REPLAYED"
    await _unchanged(world, payment.id)


async def test_a_notification_for_another_amount_is_refused(world):
    await world.set_up()
    payment, _ = await world.pay()
    stored = world.payments.payments[payment.id]
    stored.amount = 999  # as if WeChat's statement and ours disagree
    headers, body = await world.complete(payment.prepay_id)
    with pytest.raises(InvalidArgument) as e:
        await world.cases.notify(MERCHANT, headers, body)
    assert e.value.reason == "NOTIFICATION_MISMATCH"
    assert world.payments.stored(payment.id).state is PaymentState.PENDING


async def test_the_query_confirms_a_payment_whose_notification_never_came(world):
    await world.set_up()
    payment, _ = await world.pay()
    assert await world.cases.query_due() == 0  # not yet due
    world.now += timedelta(seconds=31)
    assert await world.cases.query_due() == 0  # due, but WeChat says NOTPAY
    assert world.payments.stored(payment.id).query_ms > 0
    await world.complete(payment.prepay_id)  # paid; the notification is lost
    world.now += timedelta(seconds=31)
    assert await world.cases.query_due() == 1
    assert world.payments.stored(payment.id).state is PaymentState.SUCCEEDED
    assert world.orders.orders[ORD_1].state is OrderState.PAID
    world.now += timedelta(seconds=31)
    assert await world.cases.query_due() == 0


async def test_refunds_are_keyed_by_our_refund_id_so_retries_refund_once(world):
    await world.set_up()
    payment, _ = await world.pay()
    headers, body = await world.complete(payment.prepay_id)
    paid, _ = await world.cases.notify(MERCHANT, headers, body)
    receipts = [await world.refunds.refund(paid, "rfd_01JAAAAAAAAAAAAAAAAAAAAAAA", 500) for _ in range(3)]
    assert len({r.provider_refund_id for r in receipts}) == 1 and receipts[0].amount == 500
    made = (await world.http.get("/_standin/pay/refunds", params={"mchid": MCHID, "out_trade_no": paid.id})).json()
    assert len(made["refunds"]) == 1 and made["requests"] == 3


async def test_a_second_caller_finds_wechats_refund_by_our_refund_id_and_another_amount_is_refused(world):
    await world.set_up()
    payment, _ = await world.pay()
    headers, body = await world.complete(payment.prepay_id)
    paid, _ = await world.cases.notify(MERCHANT, headers, body)
    refund_id = "rfd_01JBBBBBBBBBBBBBBBBBBBBBBB"
    assert await world.refunds.find(paid, refund_id) is None
    made = await world.refunds.refund(paid, refund_id, 500)
    found = await world.refunds.find(paid, refund_id)
    assert (found.provider_refund_id, found.amount, found.status) == (made.provider_refund_id, 500, "PROCESSING")
    with pytest.raises(FailedPrecondition) as refused:
        await world.refunds.refund(paid, refund_id, 501)
    assert refused.value.reason == "WECHAT_PAY_REFUSED" and "INVALID_REQUEST" in refused.value.message
    listed = (await world.http.get("/_standin/pay/refunds", params={"mchid": MCHID, "out_trade_no": paid.id})).json()
    assert [r["amount"]["refund"] for r in listed["refunds"]] == [500]


async def test_a_payment_the_order_cannot_take_goes_back_through_wechat(world):
    await world.set_up()
    payment, _ = await world.pay()
    world.orders.orders[ORD_1] = an_order(ORD_1, created_at=world.now, state=OrderState.CANCELLED)
    headers, body = await world.complete(payment.prepay_id)
    back, _ = await world.cases.notify(MERCHANT, headers, body)
    assert back.state is PaymentState.REFUNDED
    made = (await world.http.get("/_standin/pay/refunds", params={"mchid": MCHID, "out_trade_no": back.id})).json()
    assert [r["out_refund_no"] for r in made["refunds"]] == [auto_refund_id(back.id)]


async def test_setting_credentials_needs_an_owner_and_valid_keys(world):
    m = await world.register()
    cmd = CredentialsInput(channel="MINI_PROGRAM", app_id=APPID, mch_id=MCHID, api_v3_key=m["api_v3_key"],
                           private_key_pem=m["private_key_pem"], serial_no=m["serial_no"],
                           platform_public_key_pem=m["platform_public_key_pem"],
                           platform_public_key_id=m["platform_public_key_id"])
    for roles in (("OPERATOR",), ("FINANCE",)):
        with acting(staff="stf_x", roles=roles), pytest.raises(PermissionDenied):
            await world.cases.set_credentials(cmd)
    bad = CredentialsInput(**{**cmd.__dict__, "private_key_pem": "nope", "api_v3_key": "short", "channel": "X"})
    with acting(staff="stf_o", roles=("OWNER",)), pytest.raises(InvalidArgument) as e:
        await world.cases.set_credentials(bad)
    assert {v.field for v in e.value.violations} == {"api_v3_key", "channel"}
    with acting(staff="stf_o", roles=("OWNER",)), pytest.raises(InvalidArgument) as e:
        await world.cases.set_credentials(CredentialsInput(**{**cmd.__dict__, "private_key_pem": "nope"}))
    assert [v.field for v in e.value.violations] == ["private_key_pem"]
    assert not world.credentials.stored
    with acting(staff="stf_o", roles=("OWNER",)):
        await world.cases.set_credentials(cmd)
    with acting(staff="stf_f", roles=("FINANCE",)):
        listed = await world.cases.list_credentials()
    assert [c.app_id for c in listed] == [APPID]


async def test_wechat_refusals_and_unsigned_answers_are_errors_not_guesses(world):
    m = await world.register()
    wrong_key, _ = _keypair()
    creds = WechatCredentials(merchant_id=MERCHANT, channel="MINI_PROGRAM", app_id=APPID, mch_id=MCHID,
                              serial_no=m["serial_no"], platform_public_key_id=m["platform_public_key_id"],
                              api_v3_key=m["api_v3_key"], private_key_pem=wrong_key,
                              platform_public_key_pem=m["platform_public_key_pem"])
    with pytest.raises(FailedPrecondition) as e:
        await world.client.query(creds, "pay_01JAAAAAAAAAAAAAAAAAAAAAAA")
    assert e.value.reason == "WECHAT_PAY_REFUSED" and "SIGN_ERROR" in e.value.message
    _, other_public = _keypair()
    creds = WechatCredentials(**{**creds.__dict__, "private_key_pem": m["private_key_pem"],
                                 "platform_public_key_pem": other_public})
    with pytest.raises(Unavailable) as e:
        await world.client.query(creds, "pay_01JAAAAAAAAAAAAAAAAAAAAAAA")
    assert e.value.reason == "WECHAT_PAY_UNAVAILABLE"
    creds = WechatCredentials(**{**creds.__dict__, "platform_public_key_pem": m["platform_public_key_pem"]})
    assert await world.client.query(creds, "pay_01JAAAAAAAAAAAAAAAAAAAAAAA") is None


# ---- WeChat's refund status: PROCESSING first, confirmed by notification or query -------

async def processing_refund(world, amount: int = 500) -> Refund:
    """A paid WeChat payment and our REFUNDED refund of part of it, which WeChat accepted
    and answered PROCESSING (as the refund use cases leave it)."""
    await world.set_up()
    payment, _ = await world.pay()
    headers, body = await world.complete(payment.prepay_id)
    paid, _ = await world.cases.notify(MERCHANT, headers, body)
    refund_id = new_id("rfd")
    receipt = await world.refunds.refund(paid, refund_id, amount)
    assert receipt.status == "PROCESSING"
    refund = Refund(id=refund_id, merchant_id=MERCHANT, version=1, order_id=ORD_1, member_id=MEMBER,
                    requested_by="STAFF", idempotency_key="k", state=RefundState.APPROVED,
                    lines=(), amount=amount, currency="CNY", created_at=world.now)
    refund.finish(AppliedRefund(amount=amount, shipping_fee_refund=0, restock=False, lines=()),
                  receipt.provider_refund_id, world.now, receipt.status, timedelta(seconds=30))
    refund.changed.clear()
    world.refund_repo.refunds[refund.id] = refund
    return refund


async def settle(world, refund_id: str, status: str = "SUCCESS", **options) -> tuple[NotificationHeaders, str]:
    reply = (await world.http.post(f"/_standin/pay/refunds/{refund_id}/settle",
                                   json={"status": status, "notify": False, **options})).json()
    n = reply["notification"]
    h = n["headers"]
    return NotificationHeaders(timestamp=h["Wechatpay-Timestamp"], nonce=h["Wechatpay-Nonce"],
                               signature=h["Wechatpay-Signature"], serial=h["Wechatpay-Serial"]), n["body"]


async def test_a_refund_retried_three_times_is_one_refund_at_wechat_answered_processing(world):
    refund = await processing_refund(world)
    payment = (await world.payments.of_order(MERCHANT, ORD_1))[0]
    again = [await world.refunds.refund(payment, refund.id, 500) for _ in range(2)]
    assert {r.provider_refund_id for r in again} == {refund.provider_refund_id}
    assert {r.status for r in again} == {"PROCESSING"}
    made = (await world.http.get("/_standin/pay/refunds", params={"mchid": MCHID, "out_trade_no": payment.id})).json()
    assert len(made["refunds"]) == 1 and made["requests"] == 3
    stored = world.refund_repo.stored(refund.id)
    assert (stored.state, stored.provider_status) == (RefundState.REFUNDED, "PROCESSING")
    assert stored.provider_query_ms == int((world.now + timedelta(seconds=30)).timestamp() * 1000)


async def test_processing_becomes_succeeded_by_the_query_job(world):
    refund = await processing_refund(world)
    assert await world.cases.query_refunds_due() == 0  # not due yet
    world.now += timedelta(seconds=31)
    assert await world.cases.query_refunds_due() == 0  # due: WeChat still says PROCESSING
    assert world.refund_repo.stored(refund.id).provider_status == "PROCESSING"
    await settle(world, refund.id)  # WeChat finishes it; its notification is lost
    assert await world.cases.query_refunds_due() == 0  # asked a moment ago: not again yet
    world.now += timedelta(seconds=31)
    assert await world.cases.query_refunds_due() == 1
    stored = world.refund_repo.stored(refund.id)
    assert (stored.provider_status, stored.provider_query_ms, stored.state) == ("SUCCEEDED", 0, RefundState.REFUNDED)
    world.now += timedelta(seconds=31)
    assert await world.cases.query_refunds_due() == 0


async def test_three_job_runs_at_once_ask_wechat_once_and_act_once(world):
    refund = await processing_refund(world)
    await settle(world, refund.id)
    world.now += timedelta(seconds=31)
    runs = [WechatPayUseCases(base=world.base, payments=world.payments, credentials=world.credentials,
                              wechat=world.client, seen=world.seen, identities=world.identities,
                              refunds=world.refund_repo, clock=lambda: world.now) for _ in range(3)]
    results = await asyncio.gather(*(r.query_refunds_due() for r in runs))
    assert sorted(results) == [0, 0, 1]
    made = (await world.http.get("/_standin/pay/refunds", params={"mchid": MCHID})).json()
    assert made["queries"] == 1
    assert world.refund_repo.stored(refund.id).provider_status == "SUCCEEDED"


async def test_processing_becomes_succeeded_by_wechats_notification_once(world):
    refund = await processing_refund(world)
    headers, body = await settle(world, refund.id)
    assert json.loads(body)["event_type"] == "REFUND.SUCCESS"
    payment, applied = await world.cases.notify(MERCHANT, headers, body)
    assert applied and payment.id == refund_payment_id(world)
    stored = world.refund_repo.stored(refund.id)
    assert (stored.provider_status, stored.provider_query_ms) == ("SUCCEEDED", 0)
    with pytest.raises(Unauthenticated) as replayed:
        await world.cases.notify(MERCHANT, headers, body)
    assert replayed.value.reason == "NOTIFICATION_REPLAYED"
    # A later CLOSED word cannot take a SUCCEEDED refund back.
    note = (await world.http.post(f"/_standin/pay/refunds/{refund.id}/notification", json={"status": "CLOSED"})).json()
    h = note["headers"]
    _, applied = await world.cases.notify(MERCHANT, NotificationHeaders(
        h["Wechatpay-Timestamp"], h["Wechatpay-Nonce"], h["Wechatpay-Signature"], h["Wechatpay-Serial"]), note["body"])
    assert not applied and world.refund_repo.stored(refund.id).provider_status == "SUCCEEDED"


def refund_payment_id(world) -> str:
    return next(iter(world.payments.payments))


async def test_an_abnormal_refund_is_logged_loudly_and_kept_for_staff(world):
    from structlog.testing import capture_logs
    refund = await processing_refund(world)
    headers, body = await settle(world, refund.id, "ABNORMAL")
    with capture_logs() as logs:
        _, applied = await world.cases.notify(MERCHANT, headers, body)
    assert applied and world.refund_repo.stored(refund.id).provider_status == "ABNORMAL"
    assert [(e["event"], e["log_level"]) for e in logs if e["event"] == "refund.provider_abnormal"] == [
        ("refund.provider_abnormal", "error")]


async def test_forged_stale_or_tampered_refund_notifications_change_nothing(world):
    refund = await processing_refund(world)
    headers, body = await settle(world, refund.id)
    before = copy.deepcopy(world.refund_repo.stored(refund.id))
    other, _ = _keypair()
    forged = crypto.sign(other, f"{headers.timestamp}\n{headers.nonce}\n{body}\n")
    tampered = json.loads(body)
    tampered["resource"]["ciphertext"] = tampered["resource"]["ciphertext"][:-4] + "AAA="
    retyped = json.loads(body)
    retyped["event_type"] = "REFUND.CLOSED"  # the envelope is signed: changing it breaks the signature
    stale = NotificationHeaders(str(int(world.now.timestamp()) - 30 * 86400), headers.nonce, headers.signature,
                                headers.serial)
    for h, b, reason in ((NotificationHeaders(headers.timestamp, headers.nonce, forged, headers.serial), body,
                          "BAD_SIGNATURE"),
                         (headers, json.dumps(tampered, separators=(",", ":")), "BAD_SIGNATURE"),
                         (headers, json.dumps(retyped, separators=(",", ":")), "BAD_SIGNATURE"),
                         (stale, body, "BAD_SIGNATURE")):
        with pytest.raises(Unauthenticated) as refused:
            await world.cases.notify(MERCHANT, h, b)
        assert refused.value.reason == reason
    assert world.refund_repo.stored(refund.id) == before and world.refund_repo.stored(refund.id).version == 1
    # Correctly signed but thirty days old: stale.
    old = (await world.http.post(f"/_standin/pay/refunds/{refund.id}/notification",
                                 json={"timestamp": int(world.now.timestamp()) - 30 * 86400})).json()
    h = old["headers"]
    with pytest.raises(Unauthenticated) as refused:
        await world.cases.notify(MERCHANT, NotificationHeaders(h["Wechatpay-Timestamp"], h["Wechatpay-Nonce"],
                                                               h["Wechatpay-Signature"], h["Wechatpay-Serial"]),
                                 old["body"])
    assert refused.value.reason == "NOTIFICATION_STALE"
    assert world.refund_repo.stored(refund.id).provider_status == "PROCESSING"


async def test_the_refund_notification_of_a_payment_sent_back_whole_is_taken(world):
    await world.set_up()
    payment, _ = await world.pay()
    world.orders.orders[ORD_1] = an_order(ORD_1, created_at=world.now, state=OrderState.CANCELLED)
    headers, body = await world.complete(payment.prepay_id)
    back, _ = await world.cases.notify(MERCHANT, headers, body)
    headers, body = await settle(world, auto_refund_id(back.id))
    taken, applied = await world.cases.notify(MERCHANT, headers, body)
    assert taken.id == back.id and not applied and world.refund_repo.refunds == {}
