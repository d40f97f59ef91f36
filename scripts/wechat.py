"""The demo merchant's WeChat apps for `make run`: registered with the local WeChat stand-in
and set on the merchant (SetWeChatApp, as its owner), so the mini-program and H5 logins by
code work against the stand-in. These credentials exist only in the stand-in."""
from __future__ import annotations

import httpx
from siyu.common.v1 import common_pb2
from siyu.member.v1 import member_pb2

from scripts.seed import Clients, _operator

# Stand-in credentials only: the stand-in accepts them, WeChat does not know them.
DEMO_APPS = {"MINI_PROGRAM": ("wxdemominiprogram", "standin_demo_mini_secret"),
             "H5": ("wxdemoh5web", "standin_demo_h5_web_secret")}


def seed_wechat_apps(clients: Clients, wechat_url: str, merchant_id: str, staff_id: str) -> dict[str, str]:
    """channel → appid of the demo apps, registered and set."""
    as_owner = _operator(merchant_id, staff_id)
    with httpx.Client(base_url=wechat_url, timeout=10) as standin:
        for channel, (appid, secret) in DEMO_APPS.items():
            standin.post("/_standin/apps", json={"appid": appid, "secret": secret}).raise_for_status()
            clients.member.SetWeChatApp(member_pb2.SetWeChatAppRequest(
                channel=common_pb2.Channel.Value(f"CHANNEL_{channel}"), appid=appid, app_secret=secret),
                metadata=as_owner)
    return {channel: appid for channel, (appid, _) in DEMO_APPS.items()}
