"""The WeChat Pay RPCs of OrderService: proto ⇄ use case only. The secrets of a
merchant's credentials never leave the service: the messages carry what is set, not what
it is."""
from __future__ import annotations

from siyu.common.v1 import common_pb2
from siyu.order.v1 import order_pb2

from siyu_kit.protos import CHANNEL_NAME, timestamp

from services.order.adapters import messages
from services.order.application.wechat_pay import CredentialsInput, NotificationHeaders, WechatPayUseCases
from services.order.domain.payments import JsapiParams, WechatCredentials


def wechat_params(p: JsapiParams) -> order_pb2.WechatPayParams:
    return order_pb2.WechatPayParams(
        app_id=p.app_id, time_stamp=p.time_stamp, nonce_str=p.nonce_str, package=p.package, sign_type=p.sign_type,
        pay_sign=p.pay_sign, request_payment={"timeStamp": p.time_stamp, "nonceStr": p.nonce_str,
                                              "package": p.package, "signType": p.sign_type, "paySign": p.pay_sign})


def credentials_msg(c: WechatCredentials) -> order_pb2.WechatPayCredentials:
    msg = order_pb2.WechatPayCredentials(
        channel=common_pb2.Channel.Value(f"CHANNEL_{c.channel}"), app_id=c.app_id, mch_id=c.mch_id,
        serial_no=c.serial_no, platform_public_key_id=c.platform_public_key_id,
        api_v3_key_set=bool(c.api_v3_key), private_key_set=bool(c.private_key_pem),
        platform_public_key_set=bool(c.platform_public_key_pem), updated_by=c.updated_by)
    if c.updated_at is not None:
        msg.updated_at.CopyFrom(timestamp(c.updated_at))
    return msg


class WechatPayRpcs:
    """Mixed into OrderServicer; `self.wechat` is the WeChat Pay use cases."""
    wechat: WechatPayUseCases

    async def _pay_wechat(self, request) -> order_pb2.PayOrderResponse:
        payment, params = await self.wechat.pay(request.order_id, request.idempotency_key,
                                                use_balance=request.use_balance)
        if params is None:  # the balance paid the whole order: nothing for WeChat to take
            return order_pb2.PayOrderResponse(payment=messages.payment(payment))
        return order_pb2.PayOrderResponse(payment=messages.payment(payment), wechat_pay=wechat_params(params))

    async def HandleWechatPayNotification(self, request, context):
        payment, applied = await self.wechat.notify(
            request.merchant_id, NotificationHeaders(timestamp=request.timestamp, nonce=request.nonce,
                                                     signature=request.signature, serial=request.serial),
            request.body)
        return order_pb2.HandleWechatPayNotificationResponse(payment=messages.payment(payment), applied=applied)

    async def SetWechatPayCredentials(self, request, context):
        channel = CHANNEL_NAME.get(request.channel, "")
        creds = await self.wechat.set_credentials(CredentialsInput(
            channel=channel, app_id=request.app_id, mch_id=request.mch_id, api_v3_key=request.api_v3_key,
            private_key_pem=request.private_key_pem, serial_no=request.serial_no,
            platform_public_key_pem=request.platform_public_key_pem,
            platform_public_key_id=request.platform_public_key_id))
        return order_pb2.SetWechatPayCredentialsResponse(credentials=credentials_msg(creds))

    async def ListWechatPayCredentials(self, request, context):
        found = await self.wechat.list_credentials()
        return order_pb2.ListWechatPayCredentialsResponse(credentials=[credentials_msg(c) for c in found])
