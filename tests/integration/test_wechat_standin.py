"""The local WeChat stand-in as its own process: WeChat's documented answers and error
shapes for the identity endpoints, and codes that work once and expire."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from siyu_kit.devstack import Stack

APPID, SECRET = "wx_standin_test", "standin_secret_1"


@pytest.fixture(scope="module")
def wechat(tmp_path_factory):
    servers = Stack.on_free_ports(Path(tmp_path_factory.mktemp("wechat")))
    try:
        servers.start_wechat()
        with httpx.Client(base_url=servers.wechat_url, timeout=5) as client:
            assert client.post("/_standin/apps", json={"appid": APPID, "secret": SECRET}).status_code == 200
            yield client
    finally:
        servers.stop_all()


def mint(client: httpx.Client, **fields) -> str:
    resp = client.post("/_standin/codes", json={"appid": APPID, **fields})
    assert resp.status_code == 200, resp.text
    return resp.json()["code"]


def session(client: httpx.Client, code: str, secret: str = SECRET) -> dict:
    return client.get("/sns/jscode2session", params={"appid": APPID, "secret": secret, "js_code": code,
                                                     "grant_type": "authorization_code"}).json()


def test_code2session_answers_once_then_says_the_code_was_used(wechat):
    code = mint(wechat, openid="o-mini-1", unionid="u-1")
    first = session(wechat, code)
    assert first["openid"] == "o-mini-1" and first["unionid"] == "u-1" and first["session_key"]
    assert "errcode" not in first
    assert session(wechat, code) == {"errcode": 40163, "errmsg": "code been used rid: standin"}


def test_unknown_expired_and_wrong_secret_refused_in_wechats_shape(wechat):
    assert session(wechat, "forged")["errcode"] == 40029
    # A code minted with no time to live has expired already.
    expired = mint(wechat, openid="o-mini-2", unionid="u-2", ttl_s=0)
    assert session(wechat, expired)["errcode"] == 40029
    assert session(wechat, mint(wechat, openid="o", unionid="u"), secret="wrong")["errcode"] == 40125
    resp = wechat.get("/sns/jscode2session", params={"appid": "nobody", "secret": "x", "js_code": "c",
                                                     "grant_type": "authorization_code"})
    assert resp.status_code == 200 and resp.json()["errcode"] == 40013


def test_phone_number_needs_an_app_access_token(wechat):
    token = wechat.post("/cgi-bin/stable_token", json={"grant_type": "client_credential", "appid": APPID,
                                                       "secret": SECRET}).json()
    assert token["expires_in"] > 0
    again = wechat.post("/cgi-bin/stable_token", json={"grant_type": "client_credential", "appid": APPID,
                                                       "secret": SECRET}).json()
    assert again["access_token"] == token["access_token"]
    code = mint(wechat, kind="phone", phone="13800138000")
    answer = wechat.post("/wxa/business/getuserphonenumber", params={"access_token": token["access_token"]},
                         json={"code": code}).json()
    assert answer["errcode"] == 0 and answer["phone_info"]["purePhoneNumber"] == "13800138000"
    assert answer["phone_info"]["watermark"]["appid"] == APPID
    assert wechat.post("/wxa/business/getuserphonenumber", params={"access_token": "nope"},
                       json={"code": code}).json()["errcode"] == 40001


def test_h5_web_authorisation_gives_openid_unionid_and_profile(wechat):
    code = mint(wechat, kind="oauth", openid="o-h5-1", unionid="u-1", nickname="阿梅")
    token = wechat.get("/sns/oauth2/access_token", params={"appid": APPID, "secret": SECRET, "code": code,
                                                           "grant_type": "authorization_code"}).json()
    assert token["openid"] == "o-h5-1" and token["unionid"] == "u-1"
    profile = wechat.get("/sns/userinfo", params={"access_token": token["access_token"],
                                                  "openid": "o-h5-1"}).json()
    assert profile["nickname"] == "阿梅" and profile["unionid"] == "u-1"
    # a login (wx.login) code is not a web-authorisation code
    login_code = mint(wechat, openid="o-mini-3", unionid="u-3")
    assert wechat.get("/sns/oauth2/access_token", params={"appid": APPID, "secret": SECRET, "code": login_code,
                                                          "grant_type": "authorization_code"}).json()["errcode"] == 40029
