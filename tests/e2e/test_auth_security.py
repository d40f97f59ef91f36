"""Brute force and stale privileges, through the gateway as a staff console or front end
calls it: staff login lock-out, short staff tokens with refresh and logout, revocation
within seconds, and the limit on unknown API key look-ups."""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace

import httpx
from siyu.common.v1 import common_pb2
from siyu.member.v1 import member_pb2 as pb, member_pb2_grpc

from gateway.app import GatewaySettings, create_app
from siyu_kit.config import SERVICE_NAMES
from tests.support import channel, eventually, metadata, wait_until

# Tests here demote, lock out and log out the shop's owner: a new merchant for each.
SHOP_PER_TEST = True
OPS = metadata(service="ops")
STAFF_ROUTE = "/v1/staff/order-settings"  # OPERATOR


def staff_login(shop, password=None) -> httpx.Response:
    return shop.call("POST", "/v1/staff/login", channel=None, json={
        "merchant_code": shop.data["merchant_code"], "username": shop.data["staff_username"],
        "password": password or shop.data["staff_password"]})


def reason(resp: httpx.Response) -> str:
    return resp.json()["error"].get("reason", "")


def test_a_demoted_staff_users_old_token_is_refused_within_seconds(shop, stack):
    token = staff_login(shop).json()["access_token"]
    assert shop.call("GET", STAFF_ROUTE, channel=None, token=token).status_code == 200
    with channel(stack, "member") as ch:
        member_pb2_grpc.MemberServiceStub(ch).UpsertStaffUser(pb.UpsertStaffUserRequest(
            merchant_id=shop.data["merchant_id"], username=shop.data["staff_username"],
            password=shop.data["staff_password"], roles=[common_pb2.STAFF_ROLE_GUIDE]), metadata=OPS)

    # How soon is the gateway's cache period (VERSION_TTL_S, 2 s), proven with a fake clock in
    # tests/unit/test_gateway_auth.py; here the wiring: the running gateway refuses the token.
    def refused():
        resp = shop.call("GET", STAFF_ROUTE, channel=None, token=token)
        return resp if resp.status_code != 200 else None
    resp = wait_until(refused, timeout=10, interval=0.1, message="the old token refused")
    assert (resp.status_code, reason(resp)) == (401, "TOKEN_REVOKED")
    # A new login carries the new role only.
    guide = staff_login(shop).json()
    assert guide["roles"] == ["STAFF_ROLE_GUIDE"]
    assert shop.call("GET", STAFF_ROUTE, channel=None, token=guide["access_token"]).status_code == 403


def test_the_11th_wrong_password_in_a_minute_is_refused_unchecked_with_retry_after(shop):
    wait_until(lambda: time.time() % 60 < 48, timeout=65, interval=0.2, message="room left in this minute")
    for _ in range(10):
        resp = staff_login(shop, password="wrong-password")
        assert (resp.status_code, reason(resp)) == (401, "LOGIN_FAILED")
    for password in ("wrong-password", shop.data["staff_password"]):  # the right one is not even checked
        resp = staff_login(shop, password=password)
        assert (resp.status_code, reason(resp)) == (429, "LOGIN_LOCKED"), resp.text
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
        assert resp.json()["error"]["code"] == "RESOURCE_EXHAUSTED"


def test_staff_refresh_and_logout(shop):
    login = staff_login(shop).json()
    assert int(login["expires_in_seconds"]) == 15 * 60 and login["refresh_token"]
    refreshed = shop.call("POST", "/v1/staff/refresh", channel=None, json={"refresh_token": login["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    session = refreshed.json()
    assert session["roles"] == ["STAFF_ROLE_OWNER"]
    assert shop.call("GET", STAFF_ROUTE, channel=None, token=session["access_token"]).status_code == 200
    # Rotation: the used refresh token is refused.
    reused = shop.call("POST", "/v1/staff/refresh", channel=None, json={"refresh_token": login["refresh_token"]})
    assert (reused.status_code, reason(reused)) == (401, "TOKEN_REVOKED")

    session = shop.call("POST", "/v1/staff/login", channel=None, json={
        "merchant_code": shop.data["merchant_code"], "username": shop.data["staff_username"],
        "password": shop.data["staff_password"]}).json()
    out = shop.call("POST", "/v1/staff/logout", channel=None, token=session["access_token"],
                    json={"refresh_token": session["refresh_token"]})
    assert out.status_code == 200, out.text
    resp = wait_until(lambda: (r := shop.call("GET", STAFF_ROUTE, channel=None, token=session["access_token"]))
                      .status_code != 200 and r, timeout=10, interval=0.1, message="logged-out token refused")
    assert (resp.status_code, reason(resp)) == (401, "TOKEN_REVOKED")
    again = shop.call("POST", "/v1/staff/refresh", channel=None, json={"refresh_token": session["refresh_token"]})
    assert again.status_code == 401


def test_member_logout_ends_the_members_tokens(shop):
    login = shop.login("u-" + uuid.uuid4().hex[:8])
    token = login["access_token"]
    assert shop.call("GET", "/v1/me", token=token).status_code == 200
    out = shop.call("POST", "/v1/auth/logout", token=token, json={"refresh_token": login["refresh_token"]})
    assert out.status_code == 200, out.text
    resp = wait_until(lambda: (r := shop.call("GET", "/v1/me", token=token)).status_code != 200 and r,
                      timeout=10, interval=0.1, message="logged-out member token refused")
    assert (resp.status_code, reason(resp)) == (401, "TOKEN_REVOKED")
    refresh = shop.call("POST", "/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
    assert refresh.status_code == 401


def test_unknown_api_key_lookups_are_limited_per_client_address(shop, stack):
    """A gateway of its own, in front of the suite's member service, reached from two
    client addresses (the suite's gateway serves every test from one loopback address)."""
    settings = replace(GatewaySettings.load(), key_lookup_rps=2,
                       service_addrs={n: f"127.0.0.1:{stack.ports[n]}" for n in SERVICE_NAMES})
    app = create_app(settings)

    async def run():
        guesser = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 4000)),
                                    base_url="http://gw", timeout=15)
        other = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("198.51.100.8", 4000)),
                                  base_url="http://gw", timeout=15)
        try:
            def login(client, key):
                return client.post("/v1/auth/login", json={"code": "sandbox:u1"}, headers={"X-Api-Key": key})
            guesses = [await login(guesser, f"guess-{uuid.uuid4().hex}") for _ in range(12)]
            statuses = [r.status_code for r in guesses]
            # A burst of 4 look-ups, then about 2 a second: most guesses never reach the member service.
            assert statuses[:4] == [401] * 4 and statuses.count(429) >= 6, statuses
            limited = next(r for r in guesses if r.status_code == 429)
            assert reason(limited) == "RATE_LIMITED" and int(limited.headers["Retry-After"]) >= 1
            # The negative cache still answers a key already refused, without a look-up.
            assert (await login(guesser, guesses[0].request.headers["x-api-key"])).status_code == 401
            # Another address is not affected, and a real key works from it.
            assert (await login(other, f"guess-{uuid.uuid4().hex}")).status_code == 401
            assert (await login(other, shop.key())).status_code == 200
            # Time gives the guesser its allowance back; a refused call takes none of it.
            async def real_key_works():
                return (await login(guesser, shop.key())).status_code == 200
            await eventually(real_key_works, timeout=5, interval=0.3, message="the real key accepted")
        finally:
            await guesser.aclose()
            await other.aclose()
            await app.state.gateway.close()
    asyncio.run(run())
