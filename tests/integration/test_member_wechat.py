"""The member service's WeChat adapters against the real stand-in process, over HTTP as
they would call api.weixin.qq.com: login codes, web authorisation, phone numbers with the
app's access token, WeChat's refusals mapped to the use cases' errors, and the sandbox SMS."""
from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from services.member.adapters.wechat import SandboxSms, WeChatHttpApi
from services.member.domain.identity import InvalidLoginCode
from services.member.domain.wechat import WeChatApp
from siyu_kit.devstack import Stack, free_port
from siyu_kit.errors import FailedPrecondition, Unavailable


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    servers = Stack.on_free_ports(Path(tmp_path_factory.mktemp("wechat-adapter")))
    try:
        servers.start_wechat()
        yield servers.wechat_url
    finally:
        servers.stop_all()


@pytest.fixture
def app(standin) -> WeChatApp:
    tag = uuid.uuid4().hex[:8]
    appid, secret = f"wxtest{tag}", f"secret_{tag}_abcdefgh"
    httpx.post(standin + "/_standin/apps", json={"appid": appid, "secret": secret}).raise_for_status()
    return WeChatApp("mch_test", "MINI_PROGRAM", appid, secret)


def mint(standin: str, app: WeChatApp, **fields) -> str:
    resp = httpx.post(standin + "/_standin/codes", json={"appid": app.appid, **fields})
    resp.raise_for_status()
    return resp.json()["code"]


async def test_login_codes_give_the_identity_once(standin, app):
    api = WeChatHttpApi(standin)
    code = mint(standin, app, openid="o-1", unionid="u-1")
    identity = await api.code2session(app, code)
    assert (identity.openid, identity.unionid) == ("o-1", "u-1")
    with pytest.raises(InvalidLoginCode, match="used"):
        await api.code2session(app, code)
    with pytest.raises(InvalidLoginCode):
        await api.code2session(app, "forged")
    web = await api.web_authorise(app, mint(standin, app, kind="oauth", openid="o-2", unionid="u-1"))
    assert (web.openid, web.unionid) == ("o-2", "u-1")
    alone = await api.code2session(app, mint(standin, app, openid="o-3"))
    assert alone.unionid == f"app-{app.appid}-o-3"


async def test_a_wrong_secret_is_the_merchants_to_fix_and_an_absent_wechat_unavailable(standin, app):
    wrong = WeChatApp(app.merchant_id, app.channel, app.appid, "not_the_secret_123")
    with pytest.raises(FailedPrecondition) as refused:
        await WeChatHttpApi(standin).code2session(wrong, mint(standin, app, openid="o", unionid="u"))
    assert refused.value.reason == "WECHAT_APP_REJECTED"
    assert "40125" in str(refused.value) and wrong.secret not in str(refused.value)
    with pytest.raises(Unavailable):
        await WeChatHttpApi(f"http://127.0.0.1:{free_port()}").code2session(app, "c")


async def test_phone_numbers_use_a_cached_app_token_renewed_when_stale(standin, app):
    api = WeChatHttpApi(standin)
    assert await api.phone_number(app, mint(standin, app, kind="phone", phone="13800138000")) == "13800138000"
    token = api._tokens[app.appid][0]
    assert await api.phone_number(app, mint(standin, app, kind="phone", phone="13900139000")) == "13900139000"
    assert api._tokens[app.appid][0] == token
    api._tokens[app.appid] = ("stale-token", api._tokens[app.appid][1], app.secret)
    assert await api.phone_number(app, mint(standin, app, kind="phone", phone="13700137000")) == "13700137000"
    assert api._tokens[app.appid][0] not in ("stale-token", token)
    with pytest.raises(InvalidLoginCode):
        await api.phone_number(app, "forged")


async def test_the_sandbox_sms_lands_in_the_stand_ins_inbox(standin):
    await SandboxSms(standin).send("mch_test", "13600136000", "验证码 123456")
    inbox = httpx.get(standin + "/_standin/sms", params={"phone": "13600136000"}).json()["messages"]
    assert inbox[-1] == "验证码 123456"
