"""The gateway over real HTTP, in front of the real member service (and the rest of the
suite when the full stack runs): identity, transcoding, errors, request ids, CORS, docs."""
from __future__ import annotations

import asyncio
import json

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from siyu.member.v1 import member_pb2_grpc

from siyu_kit import auth, config
from siyu_kit.config import SERVICE_NAMES
from siyu_kit.liveness import LIVENESS_SERVICE
from siyu_kit.ids import new_id
from tests.support import channel, ensure_gateway, metadata, stub_fixture, wait_until
from tests.support.member import merchant_with_key

OPS = metadata(service="test")
SECRET = config.load("gateway").jwt_secret


@pytest.fixture(scope="module")
def gateway(stack) -> str:
    """The suite's gateway; with SIYU_TEST_ONLY it is started here, with the member service."""
    return ensure_gateway(stack, ["member"])


@pytest.fixture
def http(gateway):
    with httpx.Client(base_url=gateway, timeout=15) as client:
        yield client


member_stub = stub_fixture("member", member_pb2_grpc.MemberServiceStub)


def new_merchant(stub) -> tuple[str, str]:
    return merchant_with_key(stub, "gw", "GW Shop")


def error_of(response: httpx.Response) -> dict:
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["error"]


def test_channel_route_needs_a_known_key(http):
    missing = http.get("/v1/auth/refresh")
    assert missing.status_code == 405
    no_key = http.post("/v1/auth/login", json={"code": "sandbox:u1"})
    assert no_key.status_code == 401
    assert error_of(no_key)["reason"] == "API_KEY_MISSING"
    unknown = http.post("/v1/auth/login", json={"code": "sandbox:u1"}, headers={"X-Api-Key": "nobody-" + new_id("k")})
    assert unknown.status_code == 401
    body = error_of(unknown)
    assert (body["code"], body["status"], body["reason"]) == ("UNAUTHENTICATED", 401, "API_KEY_INVALID")
    assert body["request_id"] == unknown.headers["x-request-id"]


def test_login_and_member_route_through_the_gateway(http, member_stub):
    merchant_id, key = new_merchant(member_stub)
    login = http.post("/v1/auth/login", json={"code": "sandbox:" + new_id("u"), "nickname": "小红"},
                      headers={"X-Api-Key": key})
    assert login.status_code == 200, login.text
    data = login.json()
    assert data["created"] is True and data["member"]["nickname"] == "小红"
    assert isinstance(data["expires_in_seconds"], str)  # int64 is a string in proto3 JSON
    token = data["access_token"]
    assert auth.verify(SECRET, token, "member").merchant_id == merchant_id

    no_token = http.get("/v1/me", headers={"X-Api-Key": key})
    assert no_token.status_code == 401 and error_of(no_token)["reason"] == "TOKEN_MISSING"
    me = http.get("/v1/me", headers={"X-Api-Key": key, "Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json()["member"]["member_id"] == data["member"]["member_id"]
    assert "CHANNEL_H5" in me.json()["member"]["channels"]


def test_cross_merchant_token_and_kind_are_refused(http, member_stub):
    merchant_a, key_a = new_merchant(member_stub)
    _, key_b = new_merchant(member_stub)
    token_a = http.post("/v1/auth/login", json={"code": "sandbox:" + new_id("u")},
                        headers={"X-Api-Key": key_a}).json()["access_token"]
    # A's member token with B's key: B's data is never reached.
    crossed = http.get("/v1/me", headers={"X-Api-Key": key_b, "Authorization": f"Bearer {token_a}"})
    assert crossed.status_code == 401 and error_of(crossed)["reason"] == "TOKEN_MERCHANT"
    staff_token = auth.issue(SECRET, auth.TokenClaims("staff", new_id("stf"), merchant_a, ("OWNER",)), 600)
    wrong_kind = http.get("/v1/me", headers={"X-Api-Key": key_a, "Authorization": f"Bearer {staff_token}"})
    assert wrong_kind.status_code == 401 and error_of(wrong_kind)["reason"] == "TOKEN_KIND"
    forged = auth.issue("not-the-secret-but-just-as-long-as-one", auth.TokenClaims("member", new_id("mem"), merchant_a), 600)
    bad_sig = http.get("/v1/me", headers={"X-Api-Key": key_a, "Authorization": f"Bearer {forged}"})
    assert bad_sig.status_code == 401 and error_of(bad_sig)["reason"] == "TOKEN_INVALID"


def test_staff_routes_check_token_and_role(http):
    merchant_id = new_id("mch")
    no_token = http.post("/v1/staff/products", json={"code": "p1"})
    assert no_token.status_code == 401
    guide = auth.issue(SECRET, auth.TokenClaims("staff", new_id("stf"), merchant_id, ("GUIDE",)), 600)
    denied = http.post("/v1/staff/products", json={"code": "p1"}, headers={"Authorization": f"Bearer {guide}"})
    assert denied.status_code == 403
    assert error_of(denied)["code"] == "PERMISSION_DENIED"


def test_bad_json_and_unknown_fields_are_400(http, member_stub):
    _, key = new_merchant(member_stub)
    headers = {"X-Api-Key": key, "Content-Type": "application/json"}
    malformed = http.post("/v1/auth/login", content=b'{"code": ', headers=headers)
    assert malformed.status_code == 400
    assert error_of(malformed)["field_violations"] == [{"field": "body", "description": "not valid JSON"}]
    not_object = http.post("/v1/auth/login", content=b'["a"]', headers=headers)
    assert not_object.status_code == 400
    unknown = http.post("/v1/auth/login", json={"code": "sandbox:x", "merchant_id": "mch_evil"}, headers=headers)
    assert unknown.status_code == 400
    assert [v["field"] for v in error_of(unknown)["field_violations"]] == ["merchant_id"]
    wrong_type = http.post("/v1/auth/login", json={"code": 12}, headers=headers)
    assert wrong_type.status_code == 400
    assert [v["field"] for v in error_of(wrong_type)["field_violations"]] == ["code"]
    query_on_body_route = http.post("/v1/auth/login?code=x", json={}, headers=headers)
    assert query_on_body_route.status_code == 400


def test_service_field_violations_come_through(http, member_stub):
    _, key = new_merchant(member_stub)
    empty = http.post("/v1/auth/login", json={"code": ""}, headers={"X-Api-Key": key})
    assert empty.status_code == 400
    body = error_of(empty)
    assert body["code"] == "INVALID_ARGUMENT" and body["reason"] == "INVALID_FIELDS"
    assert "code" in {v["field"] for v in body["field_violations"]}


def test_request_id_round_trip_reaches_the_service(http, stack, member_stub):
    _, key = new_merchant(member_stub)
    mine = "trace-" + new_id("r")[-12:]
    response = http.post("/v1/auth/login", json={"code": "sandbox:" + new_id("u")},
                         headers={"X-Api-Key": key, "X-Request-Id": mine})
    assert response.status_code == 200 and response.headers["x-request-id"] == mine
    log = stack.data_dir / "log" / "member.log"
    wait_until(lambda: mine in log.read_text(errors="replace"), message="request id in the member log")
    dirty = http.get("/v1/nothing", headers={"X-Request-Id": "a b<script>" + "x" * 100})
    assert dirty.status_code == 404
    rid = dirty.headers["x-request-id"]
    assert rid == ("abscript" + "x" * 100)[:64] and error_of(dirty)["request_id"] == rid
    made = http.get("/healthz")
    assert made.headers["x-request-id"].startswith("req_")


def test_unknown_route_and_wrong_method(http):
    missing = http.get("/v1/no/such/thing")
    assert missing.status_code == 404 and error_of(missing)["code"] == "NOT_FOUND"
    wrong = http.delete("/v1/products")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET"
    assert error_of(wrong)["status"] == 405


def test_cors_preflight_and_exposed_headers(http):
    pre = http.options("/v1/products", headers={"Origin": "https://h5.example.com",
                                                "Access-Control-Request-Method": "GET",
                                                "Access-Control-Request-Headers": "x-api-key, authorization"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] in ("*", "https://h5.example.com")
    assert "GET" in pre.headers["access-control-allow-methods"]
    assert "x-api-key" in pre.headers["access-control-allow-headers"].lower()
    simple = http.get("/healthz", headers={"Origin": "https://h5.example.com"})
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


def test_openapi_and_docs(http):
    doc = http.get("/openapi.json")
    assert doc.status_code == 200
    spec = doc.json()
    assert spec["openapi"].startswith("3.1")
    assert "post" in spec["paths"]["/v1/orders/{order_id}:pay"]
    assert "get" in spec["paths"]["/v1/me"]
    assert "ResolveApiKey" not in json.dumps(spec["paths"])
    assert spec["components"]["securitySchemes"]["apiKey"]["name"] == "X-Api-Key"
    page = http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/v1/orders/{order_id}:pay" in page.text
    # WeChat Pay's callback is no transcoded RPC, yet operators register its URL from here.
    notify = spec["paths"]["/v1/payments/wechat/notify/{merchant_id}"]["post"]
    assert {p["name"] for p in notify["parameters"]} == {
        "merchant_id", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"}
    assert set(notify["responses"]) == {"204", "400", "401", "404", "500"}
    assert "/v1/payments/wechat/notify/{merchant_id}" in page.text


def test_deps_reflect_service_health_and_readiness_is_the_gateways_own(http, stack):
    def serving(name):
        try:
            with channel(stack, name) as ch:
                return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2).status == \
                    health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False
    expected = {name: serving(name) for name in SERVICE_NAMES}
    deps = http.get("/healthz/deps")
    body = deps.json()
    assert set(body["services"]) == set(SERVICE_NAMES)
    assert {n: s == "SERVING" for n, s in body["services"].items()} == expected
    if all(expected.values()):
        assert deps.status_code == 200 and body["status"] == "ready"
    else:
        assert deps.status_code == 503
        assert body["not_ready"] == sorted(n for n, ok in expected.items() if not ok)
    assert http.get("/readyz").json() == {"status": "ready"}
    assert http.get("/healthz").status_code == 200


def test_every_service_answers_its_liveness_probe(stack):
    for name in SERVICE_NAMES:
        with channel(stack, name) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=LIVENESS_SERVICE),
                                                         timeout=2)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name


def test_member_rate_limit_answers_429_with_retry_after(gateway, member_stub):
    _, key = new_merchant(member_stub)
    with httpx.Client(base_url=gateway, timeout=15) as client:
        token = client.post("/v1/auth/login", json={"code": "sandbox:" + new_id("u")},
                            headers={"X-Api-Key": key}).json()["access_token"]
    headers = {"X-Api-Key": key, "Authorization": f"Bearer {token}"}

    async def burst():
        async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
            return await asyncio.gather(*(client.get("/v1/me", headers=headers) for _ in range(100)))
    responses = asyncio.run(burst())
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 429}
    assert codes.count(200) >= 40  # the burst (2 × 20 per second) is served
    limited = [r for r in responses if r.status_code == 429]
    assert limited, "100 requests at once exceed a burst of 40"
    assert int(limited[0].headers["retry-after"]) >= 1
    assert error_of(limited[0])["reason"] == "RATE_LIMITED"
