"""What `make run` adds to the demo merchant so its shop can be tried end to end: a freight
template (by weight, remote regions priced, free shipping above an amount and for GOLD
members and up), WeChat Pay on the mini-program against the local stand-in, and a demo
member signed in through the stand-in's mini-program login with a default address.

Everything is an upsert or idempotent: running `make run` again changes nothing."""
from __future__ import annotations

import httpx
from siyu.common.v1 import common_pb2
from siyu.order.v1 import order_pb2

from scripts.seed import DEMO_KEYS, Clients, _operator

# 新疆, 西藏 and 青海 are priced as remote regions; everywhere else uses the default rule.
REMOTE_REGIONS = ("650000", "540000", "630000")
DEMO_MCHID = "1900000109"
DEMO_MEMBER = {"openid": "o-demo", "unionid": "u-demo"}
DEMO_ADDRESS = {"recipient": "王小美", "phone": "13800138000", "province_code": "310000",
                "city_code": "310100", "district_code": "310115", "detail": "世纪大道 100 号 8 楼"}


def _money(fen: int) -> common_pb2.Money:
    return common_pb2.Money(amount=fen, currency="CNY")


def seed_freight(clients: Clients, merchant_id: str, staff_id: str) -> order_pb2.FreightTemplate:
    """¥8 for the first kilogram and ¥2 per further kilogram; ¥25 + ¥10 to remote regions;
    free above ¥99 and for GOLD and BLACK_GOLD members. A merchant with a template keeps it."""
    as_owner = _operator(merchant_id, staff_id)
    current = clients.order.GetFreightTemplate(order_pb2.GetFreightTemplateRequest(), metadata=as_owner)
    if current.configured:
        return current.template
    by_weight = order_pb2.FREIGHT_BASIS_WEIGHT
    template = order_pb2.FreightTemplate(
        default_rule=order_pb2.FreightRule(name="全国", basis=by_weight, first=1000, first_fee=_money(800),
                                           additional=1000, additional_fee=_money(200)),
        rules=[order_pb2.FreightRule(name="偏远地区", basis=by_weight, first=1000, first_fee=_money(2500),
                                     additional=1000, additional_fee=_money(1000), regions=list(REMOTE_REGIONS))],
        free_over=_money(9900), free_shipping_tiers=["GOLD", "BLACK_GOLD"])
    return clients.order.PutFreightTemplate(order_pb2.PutFreightTemplateRequest(template=template),
                                            metadata=as_owner).template


def seed_wechat_pay(clients: Clients, wechat_url: str, merchant_id: str, staff_id: str, appid: str,
                    mchid: str = DEMO_MCHID) -> str:
    """Registers a WeChat Pay merchant for the mini-program app with the stand-in (which
    issues its keys) and sets them on the demo merchant; the mchid."""
    with httpx.Client(base_url=wechat_url, timeout=10) as standin:
        issued = standin.post("/_standin/pay/merchants", json={"mchid": mchid, "appid": appid})
        issued.raise_for_status()
        keys = issued.json()
    clients.order.SetWechatPayCredentials(order_pb2.SetWechatPayCredentialsRequest(
        channel=common_pb2.CHANNEL_MINI_PROGRAM, app_id=appid, mch_id=mchid, api_v3_key=keys["api_v3_key"],
        private_key_pem=keys["private_key_pem"], serial_no=keys["serial_no"],
        platform_public_key_pem=keys["platform_public_key_pem"],
        platform_public_key_id=keys["platform_public_key_id"]), metadata=_operator(merchant_id, staff_id))
    return mchid


def seed_demo_member(gateway_url: str, wechat_url: str, appid: str, channel_key: str = DEMO_KEYS["MINI_PROGRAM"],
                     member: dict[str, str] = DEMO_MEMBER) -> dict:
    """Signs the demo member in through the mini-program's login by code, as the
    mini-program would, and gives them a default address unless they have one; that
    address."""
    with httpx.Client(timeout=10) as http:
        code = http.post(f"{wechat_url}/_standin/codes", json={"appid": appid, **member})
        code.raise_for_status()
        login = http.post(f"{gateway_url}/v1/auth/login", json={"code": code.json()["code"]},
                          headers={"X-Api-Key": channel_key})
        login.raise_for_status()
        signed_in = {"X-Api-Key": channel_key, "Authorization": f"Bearer {login.json()['access_token']}"}
        book = http.get(f"{gateway_url}/v1/me/addresses", headers=signed_in)
        book.raise_for_status()
        addresses = book.json().get("addresses", [])
        if not addresses:
            added = http.post(f"{gateway_url}/v1/me/addresses", headers=signed_in,
                              json={"idempotency_key": "demo-member-home", **DEMO_ADDRESS})
            added.raise_for_status()
            addresses = [added.json()["address"]]
    return next((a for a in addresses if a.get("is_default")), addresses[0])

