"""`make run`: the whole suite on its fixed ports, seeded with the demo merchant once it
is ready, with the demo's keys and logins printed next to the gateway's address.

    python -m scripts.run
"""
from __future__ import annotations

from scripts import seed
from scripts.demo_journey import run_journey
from scripts.demo_shop import DEMO_MEMBER, seed_demo_member, seed_freight, seed_wechat_pay
from scripts.wechat import seed_wechat_apps
from siyu_kit import devstack


def demo_merchant(stack: devstack.Stack) -> list[str]:
    """Seed the demo merchant into the ready suite; the lines that tell how to use it."""
    demo = seed.seed(stack.env())
    clients = seed.Clients.from_env(stack.env())
    apps = seed_wechat_apps(clients, stack.wechat_url, demo["merchant_id"], demo["staff_id"])
    seed_freight(clients, demo["merchant_id"], demo["staff_id"])
    mchid = seed_wechat_pay(clients, stack.wechat_url, demo["merchant_id"], demo["staff_id"], apps["MINI_PROGRAM"])
    home = seed_demo_member(stack.gateway_url, stack.wechat_url, apps["MINI_PROGRAM"])
    journey = run_journey(stack.gateway_url, stack.wechat_url, apps["MINI_PROGRAM"], demo, DEMO_MEMBER)
    return [
        "Demo channel keys: " + ", ".join(f"{ch}={key}" for ch, key in demo["api_keys"].items()),
        f"Demo staff: merchant {demo['merchant_code']}, user {demo['staff_username']}, "
        f"password {demo['staff_password']}",
        f"Platform operator token (onboards merchants at POST /v1/platform/merchants): {demo['platform_token']}",
        "Try:",
        f"  curl -s -H 'X-Api-Key: {demo['api_keys']['H5']}' {stack.gateway_url}/v1/products",
        f"WeChat stand-in: {stack.wechat_url} (apps: " + ", ".join(f"{ch}={a}" for ch, a in apps.items()) + ")",
        "  a mini-program login code:  curl -s -X POST -d '{\"appid\": \"" + apps["MINI_PROGRAM"]
        + "\", \"openid\": \"o-demo\", \"unionid\": \"u-demo\"}' " + stack.wechat_url + "/_standin/codes",
        "  then: POST /v1/auth/login {\"code\": …} with the MINI_PROGRAM key; \"sandbox:<unionid>\" still works",
        f"  the demo member (openid {DEMO_MEMBER['openid']}, unionid {DEMO_MEMBER['unionid']}) ships by default to "
        f"{''.join(dict.fromkeys([home['province_name'], home['city_name'], home['district_name']]))} {home['detail']}",
        f"WeChat Pay (mini-program, mchid {mchid}) pays through the stand-in: PayOrder with PAYMENT_METHOD_WECHAT,",
        f"  then: curl -s -X POST -d '{{\"notify\": true}}' {stack.wechat_url}/_standin/pay/<prepay_id>/complete",
        "Freight: ¥8 first kg + ¥2 per kg, remote regions ¥25 + ¥10, free above ¥99 and for GOLD members and up",
        *journey.lines(),
    ]


if __name__ == "__main__":
    devstack.run(seed=demo_merchant)
