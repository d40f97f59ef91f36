"""WeChat login through the gateway against the local WeChat stand-in, as the mini-program
and the H5 shop call it: login by code on both channels reaching one member by unionid,
phone binding across channels, refused codes that write nothing, the merchant's WeChat
app credentials that nothing shows, and the new calls' access and input checks."""
from __future__ import annotations

import statistics
import time
import uuid

import httpx
import pytest
from siyu.common.v1 import common_pb2
from siyu.member.v1 import member_pb2 as pb, member_pb2_grpc

from tests.support import channel as grpc_channel, metadata
from tests.support.shop import Shop

OPS = metadata(service="ops")
APPS = "/v1/staff/wechat-apps"


def violations(resp) -> dict[str, str]:
    return {v["field"]: v["description"] for v in resp.json()["error"].get("field_violations", [])}


def reason(resp) -> str:
    return resp.json()["error"].get("reason", "")


class WeChat:
    """The stand-in's test controls, for one shop's two WeChat apps."""

    def __init__(self, url: str, shop: Shop):
        self.client = httpx.Client(base_url=url, timeout=10)
        tag = uuid.uuid4().hex[:10]
        self.apps = {"MINI_PROGRAM": (f"wxmini{tag}", f"mini_secret_{tag}_x"),
                     "H5": (f"wxweb{tag}", f"web_secret_{tag}_xx")}
        for channel, (appid, secret) in self.apps.items():
            assert self.client.post("/_standin/apps", json={"appid": appid, "secret": secret}).status_code == 200
            resp = shop.as_staff("PUT", APPS, json={"channel": f"CHANNEL_{channel}", "appid": appid,
                                                     "app_secret": secret})
            assert resp.status_code == 200, resp.text

    def code(self, channel: str, openid: str, unionid: str = "", **extra) -> str:
        kind = "login" if channel == "MINI_PROGRAM" else "oauth"
        resp = self.client.post("/_standin/codes", json={"appid": self.apps[channel][0], "kind": kind,
                                                         "openid": openid, "unionid": unionid, **extra})
        assert resp.status_code == 200, resp.text
        return resp.json()["code"]

    def phone_code(self, phone: str) -> str:
        resp = self.client.post("/_standin/codes", json={"appid": self.apps["MINI_PROGRAM"][0], "kind": "phone",
                                                         "phone": phone})
        return resp.json()["code"]

    def sms(self, phone: str) -> str:
        """The code in the latest SMS to the phone."""
        messages = self.client.get("/_standin/sms", params={"phone": phone}).json()["messages"]
        return "".join(ch for ch in messages[-1] if ch.isdigit())[:6]


@pytest.fixture
def wechat(shop, stack) -> WeChat:
    return WeChat(stack.wechat_url, shop)


def login(shop: Shop, channel: str, code: str) -> httpx.Response:
    return shop.call("POST", "/v1/auth/login", channel=channel, json={"code": code})


def new_phone() -> str:
    return "139" + str(uuid.uuid4().int)[:8]


def test_mini_program_and_h5_codes_reach_one_member_by_unionid_with_refresh_and_logout(shop, wechat):
    unionid = "u" + uuid.uuid4().hex[:12]
    mini = login(shop, "MINI_PROGRAM", wechat.code("MINI_PROGRAM", "o-mini-" + unionid, unionid))
    assert mini.status_code == 200, mini.text
    assert mini.json()["created"] is True
    h5 = login(shop, "H5", wechat.code("H5", "o-web-" + unionid, unionid))
    assert h5.status_code == 200, h5.text
    assert h5.json()["created"] is False
    assert h5.json()["member"]["member_id"] == mini.json()["member"]["member_id"]
    assert set(h5.json()["member"]["channels"]) == {"CHANNEL_MINI_PROGRAM", "CHANNEL_H5"}
    # the same person again on the mini-program: the same member
    again = login(shop, "MINI_PROGRAM", wechat.code("MINI_PROGRAM", "o-mini-" + unionid, unionid))
    assert again.json()["member"]["member_id"] == mini.json()["member"]["member_id"]

    refreshed = shop.call("POST", "/v1/auth/refresh", channel="H5", json={"refresh_token": h5.json()["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    tokens = refreshed.json()
    assert shop.call("GET", "/v1/me", token=tokens["access_token"]).status_code == 200
    out = shop.call("POST", "/v1/auth/logout", token=tokens["access_token"],
                    json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 200, out.text
    revoked = shop.call("POST", "/v1/auth/refresh", channel="H5", json={"refresh_token": tokens["refresh_token"]})
    assert (revoked.status_code, reason(revoked)) == (401, "TOKEN_REVOKED")


def test_a_login_without_unionid_stays_on_its_own_app(shop, wechat):
    openid = "o-only-" + uuid.uuid4().hex[:8]
    mini = login(shop, "MINI_PROGRAM", wechat.code("MINI_PROGRAM", openid))
    h5 = login(shop, "H5", wechat.code("H5", openid))
    assert mini.status_code == h5.status_code == 200
    assert mini.json()["member"]["member_id"] != h5.json()["member"]["member_id"]


def test_a_used_expired_or_forged_code_is_refused_and_writes_nothing(shop, wechat, stack):
    unionid = "u" + uuid.uuid4().hex[:12]
    openid = "o-mini-" + unionid
    used = wechat.code("MINI_PROGRAM", "o-other-" + unionid, "other-" + unionid)
    assert login(shop, "MINI_PROGRAM", used).status_code == 200
    # A code minted with no time to live has expired already.
    expired = wechat.code("MINI_PROGRAM", openid, unionid, ttl_s=0)
    for code in (used, expired, "forged-" + uuid.uuid4().hex, "sandbox-looking:" + unionid):
        resp = login(shop, "MINI_PROGRAM", code)
        assert resp.status_code == 400, resp.text
        assert "code" in violations(resp)
    # an H5 code sent on the mini-program is no wx.login code
    resp = login(shop, "MINI_PROGRAM", wechat.code("H5", openid, unionid))
    assert resp.status_code == 400 and "code" in violations(resp)
    # nothing was written: the first good code creates the member
    first = login(shop, "MINI_PROGRAM", wechat.code("MINI_PROGRAM", openid, unionid))
    assert first.status_code == 200 and first.json()["created"] is True
    # the sandbox login stays for the demo and tests
    assert shop.login("sb-" + unionid)["created"] is True


def test_phone_binding_links_channels_and_never_merges_two_members(shop, wechat):
    unionid = "u" + uuid.uuid4().hex[:12]
    phone = new_phone()
    mini = login(shop, "MINI_PROGRAM", wechat.code("MINI_PROGRAM", "o-mini-" + unionid, unionid)).json()
    bound = shop.call("POST", "/v1/me/phone/wechat", channel="MINI_PROGRAM", token=mini["access_token"],
                      json={"code": wechat.phone_code(phone)})
    assert bound.status_code == 200, bound.text
    masked = f"{phone[:3]}****{phone[-4:]}"
    assert bound.json()["member"]["phone_masked"] == masked
    assert phone not in bound.text
    # the same person on H5 sees the phone
    h5 = login(shop, "H5", wechat.code("H5", "o-web-" + unionid, unionid)).json()
    assert h5["member"]["phone_masked"] == masked
    me = shop.call("GET", "/v1/me", token=h5["access_token"])
    assert me.json()["member"]["phone_masked"] == masked and phone not in me.text

    # another person on H5 cannot take the phone: PHONE_TAKEN, nothing changes
    stranger = login(shop, "H5", wechat.code("H5", "o-web-x" + unionid, "x" + unionid)).json()
    sent = shop.call("POST", "/v1/me/phone/sms-code", token=stranger["access_token"], json={"phone": phone})
    assert sent.status_code == 200, sent.text
    taken = shop.call("POST", "/v1/me/phone/sms", token=stranger["access_token"],
                      json={"phone": phone, "code": wechat.sms(phone)})
    assert (taken.status_code, reason(taken)) == (409, "PHONE_TAKEN")
    assert shop.call("GET", "/v1/me", token=stranger["access_token"]).json()["member"].get("phone_masked", "") == ""

    # the stranger binds a phone of their own by SMS: wrong code refused, right one binds
    own = new_phone()
    assert shop.call("POST", "/v1/me/phone/sms-code", token=stranger["access_token"],
                     json={"phone": own}).status_code == 200
    again = shop.call("POST", "/v1/me/phone/sms-code", token=stranger["access_token"], json={"phone": own})
    assert (again.status_code, reason(again)) == (429, "SMS_TOO_SOON")
    code = wechat.sms(own)
    wrong = shop.call("POST", "/v1/me/phone/sms", token=stranger["access_token"],
                      json={"phone": own, "code": "000000" if code != "000000" else "111111"})
    assert wrong.status_code == 400 and "code" in violations(wrong)
    ok = shop.call("POST", "/v1/me/phone/sms", token=stranger["access_token"], json={"phone": own, "code": code})
    assert ok.status_code == 200, ok.text
    assert ok.json()["member"]["phone_masked"] == f"{own[:3]}****{own[-4:]}"
    # a used phone-number code is refused
    reused = wechat.phone_code(new_phone())
    other = login(shop, "MINI_PROGRAM", wechat.code("MINI_PROGRAM", "o-mini-y" + unionid, "y" + unionid)).json()
    assert shop.call("POST", "/v1/me/phone/wechat", channel="MINI_PROGRAM", token=other["access_token"],
                     json={"code": reused}).status_code == 200
    third = login(shop, "MINI_PROGRAM", wechat.code("MINI_PROGRAM", "o-mini-z" + unionid, "z" + unionid)).json()
    resp = shop.call("POST", "/v1/me/phone/wechat", channel="MINI_PROGRAM", token=third["access_token"],
                     json={"code": reused})
    assert resp.status_code == 400 and "code" in violations(resp)


def test_staff_find_a_member_by_the_last_digits_of_a_phone_bound_by_sms(shop, wechat):
    member = shop.login("find-" + uuid.uuid4().hex[:8])
    phone = new_phone()
    suffix = phone[-4:]
    assert shop.call("POST", "/v1/me/phone/sms-code", token=member["access_token"],
                     json={"phone": phone}).status_code == 200
    code = wechat.sms(phone)
    bound = shop.call("POST", "/v1/me/phone/sms", token=member["access_token"], json={"phone": phone, "code": code})
    assert bound.status_code == 200, bound.text
    # the same request again (a client's retry) answers the same
    again = shop.call("POST", "/v1/me/phone/sms", token=member["access_token"], json={"phone": phone, "code": code})
    assert again.status_code == 200, again.text
    assert again.json()["member"]["phone_masked"] == bound.json()["member"]["phone_masked"]
    found = shop.as_staff("GET", f"/v1/staff/members?phone_suffix={suffix}")
    assert found.status_code == 200, found.text
    rows = {m["member_id"]: m for m in found.json()["members"]}
    assert member["member"]["member_id"] in rows
    assert rows[member["member"]["member_id"]]["phone_masked"] == f"{phone[:3]}****{suffix}"
    assert phone not in found.text
    other = f"{(int(suffix) + 1) % 10000:04d}"
    elsewhere = shop.as_staff("GET", f"/v1/staff/members?phone_suffix={other}").json().get("members", [])
    assert member["member"]["member_id"] not in {m["member_id"] for m in elsewhere}


def test_app_secrets_and_phones_are_never_readable_through_the_api_or_the_logs(shop, wechat, stack):
    listed = shop.as_staff("GET", APPS)
    assert listed.status_code == 200, listed.text
    apps = {a["channel"]: a for a in listed.json()["apps"]}
    for channel, (appid, secret) in wechat.apps.items():
        assert apps[f"CHANNEL_{channel}"]["appid"] == appid and apps[f"CHANNEL_{channel}"]["secret_set"] is True
        assert secret not in listed.text
    # rotating answers without the secret too
    rotated = shop.as_staff("PUT", APPS, json={"channel": "CHANNEL_H5", "appid": wechat.apps["H5"][0],
                                                "app_secret": "rotated_secret_" + uuid.uuid4().hex[:8]})
    assert rotated.status_code == 200 and "rotated_secret_" not in rotated.text
    shop.as_staff("PUT", APPS, json={"channel": "CHANNEL_H5", "appid": wechat.apps["H5"][0],
                                      "app_secret": wechat.apps["H5"][1]})
    phone = new_phone()
    unionid = "u" + uuid.uuid4().hex[:12]
    mini = login(shop, "MINI_PROGRAM", wechat.code("MINI_PROGRAM", "o-" + unionid, unionid)).json()
    assert shop.call("POST", "/v1/me/phone/wechat", channel="MINI_PROGRAM", token=mini["access_token"],
                     json={"code": wechat.phone_code(phone)}).status_code == 200
    logs = "".join(p.read_text(errors="replace") for p in (stack.data_dir / "log").glob("*.log")
                   if p.name != "wechat.log")
    for secret in (s for _, s in wechat.apps.values()):
        assert secret not in logs
    assert phone not in logs


def _staff_with(stack, shop: Shop, role) -> str:
    username = "s-" + uuid.uuid4().hex[:8]
    with grpc_channel(stack, "member") as ch:
        member_pb2_grpc.MemberServiceStub(ch).UpsertStaffUser(pb.UpsertStaffUserRequest(
            merchant_id=shop.data["merchant_id"], username=username, password="pass-" + username, roles=[role]),
            metadata=OPS)
    resp = shop.call("POST", "/v1/staff/login", channel=None, json={
        "merchant_code": shop.data["merchant_code"], "username": username, "password": "pass-" + username})
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def test_wechat_app_calls_need_the_merchants_owner(shop, other_shop, wechat, stack):
    body = {"channel": "CHANNEL_H5", "appid": "wxintruder01", "app_secret": "intruder_secret_123"}
    for role in (common_pb2.STAFF_ROLE_OPERATOR, common_pb2.STAFF_ROLE_GUIDE, common_pb2.STAFF_ROLE_FINANCE):
        token = _staff_with(stack, shop, role)
        assert shop.call("PUT", APPS, channel=None, token=token, json=body).status_code == 403
        assert shop.call("GET", APPS, channel=None, token=token).status_code == 403
    member = shop.login("m-" + uuid.uuid4().hex[:8])
    assert shop.call("GET", APPS, token=member["access_token"]).status_code in (401, 403)
    assert shop.call("PUT", APPS, token=member["access_token"], json=body).status_code in (401, 403)
    # the other merchant's owner sees and changes only its own apps
    theirs = other_shop.as_staff("GET", APPS)
    assert all(a.get("appid", "") == "" for a in theirs.json()["apps"])
    assert other_shop.as_staff("PUT", APPS, json=body).status_code == 200
    mine = {a["channel"]: a["appid"] for a in shop.as_staff("GET", APPS).json()["apps"]}
    assert mine["CHANNEL_H5"] == wechat.apps["H5"][0]
    # a member of the other merchant cannot bind a phone here
    stranger = other_shop.login("o-" + uuid.uuid4().hex[:8])
    resp = shop.call("POST", "/v1/me/phone/sms-code", token=stranger["access_token"], json={"phone": new_phone()})
    assert resp.status_code in (401, 403)


def test_bad_input_is_refused_with_field_violations_and_nothing_written(shop, wechat):
    before = shop.as_staff("GET", APPS).json()
    for body, field in (({"channel": "CHANNEL_H5", "appid": "not-an-appid", "app_secret": "good_secret_1234567"}, "appid"),
                        ({"channel": "CHANNEL_H5", "appid": "wxgoodappid1", "app_secret": "short"}, "app_secret"),
                        ({"appid": "wxgoodappid1", "app_secret": "good_secret_1234567"}, "channel"),
                        ({"channel": "CHANNEL_LIVE", "appid": "wxgoodappid1", "app_secret": "good_secret_1234567"},
                         "channel")):
        resp = shop.as_staff("PUT", APPS, json=body)
        assert resp.status_code == 400, resp.text
        assert field in violations(resp), resp.text
    assert shop.as_staff("GET", APPS).json() == before
    member = shop.login("m-" + uuid.uuid4().hex[:8])
    token = member["access_token"]
    for path, body, field in (("/v1/me/phone/sms-code", {"phone": "12345"}, "phone"),
                              ("/v1/me/phone/sms", {"phone": new_phone(), "code": "12ab"}, "code"),
                              ("/v1/me/phone/wechat", {"code": ""}, "code"),
                              ("/v1/me/phone/wechat", {"code": "x" * 300}, "code")):
        resp = shop.call("POST", path, token=token, json=body)
        assert resp.status_code == 400, resp.text
        assert field in violations(resp), resp.text
    assert shop.call("GET", "/v1/me", token=token).json()["member"].get("phone_masked", "") == ""


def test_login_by_code_latency_through_the_gateway(shop, wechat):
    timings = []
    with httpx.Client(base_url=shop.url, timeout=30, headers={"X-Api-Key": shop.key("MINI_PROGRAM")}) as client:
        for i in range(20):  # enough for a median; make bench measures load
            unionid = f"lat{i}" + uuid.uuid4().hex[:8]
            code = wechat.code("MINI_PROGRAM", "o-" + unionid, unionid)
            started = time.perf_counter()
            resp = client.post("/v1/auth/login", json={"code": code})
            timings.append(time.perf_counter() - started)
            assert resp.status_code == 200, resp.text
    p50 = statistics.median(timings) * 1000
    p95 = sorted(timings)[int(len(timings) * 0.95) - 1] * 1000
    print(f"\nlogin by code (new member, mini-program) through the gateway: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    assert p50 < 1000


def test_the_demo_seed_sets_stand_in_apps_that_log_members_in(shop, stack):
    from scripts.seed import Clients
    from scripts.wechat import seed_wechat_apps

    clients = Clients.from_env(stack.env())
    apps = seed_wechat_apps(clients, stack.wechat_url, shop.data["merchant_id"], shop.data["staff_id"])
    assert seed_wechat_apps(clients, stack.wechat_url, shop.data["merchant_id"], shop.data["staff_id"]) == apps
    listed = {a["channel"]: a for a in shop.as_staff("GET", APPS).json()["apps"]}
    assert {ch: listed[f"CHANNEL_{ch}"]["appid"] for ch in apps} == apps
    code = httpx.post(stack.wechat_url + "/_standin/codes", json={
        "appid": apps["MINI_PROGRAM"], "openid": "o-demo-" + uuid.uuid4().hex[:6], "unionid": "u-demo"}).json()["code"]
    assert login(shop, "MINI_PROGRAM", code).status_code == 200
