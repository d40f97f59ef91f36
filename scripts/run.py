"""`make run`: the whole suite on its fixed ports, seeded with the demo merchant once it
is ready, with the demo's keys and logins printed next to the gateway's address.

    python -m scripts.run
"""
from __future__ import annotations

from scripts import seed
from scripts.wechat import seed_wechat_apps
from siyu_kit import devstack


def demo_merchant(stack: devstack.Stack) -> list[str]:
    """Seed the demo merchant into the ready suite; the lines that tell how to use it."""
    demo = seed.seed(stack.env())
    apps = seed_wechat_apps(seed.Clients.from_env(stack.env()), stack.wechat_url, demo["merchant_id"],
                            demo["staff_id"])
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
    ]


if __name__ == "__main__":
    devstack.run(seed=demo_merchant)
