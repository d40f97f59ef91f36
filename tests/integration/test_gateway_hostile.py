"""Hostile HTTP input against the real gateway in front of the real services: every case is
refused with a 4xx and the JSON error body (never a 500, never plain text, never Python's
own wording), and nothing is written."""
from __future__ import annotations

import json
import re
import socket
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.routes import Table
from siyu_kit.config import DEV_PLATFORM_TOKEN, SERVICE_NAMES
from tests.support.shop import Shop, make_shop
from tests.support import ensure_gateway, wait_until

INTERNALS = ("int()", "literal", "Couldn't", "Failed to parse", "has type", "Error", "base 10", "Traceback")
DEEP = b'{"a":' + b"[" * 1000 + b"]" * 1000 + b"}"


@pytest.fixture(scope="module")
def shop(stack) -> Shop:
    """A seeded merchant; with SIYU_TEST_ONLY the services and gateway it needs start here."""
    ensure_gateway(stack, SERVICE_NAMES)
    return make_shop(stack)


@pytest.fixture(scope="module")
def member(shop) -> str:
    return shop.login("hostile-" + uuid.uuid4().hex[:8])["access_token"]


def refused(resp: httpx.Response, status: int, reason: str) -> dict:
    """The JSON error body of a refusal, checked for its shape and for leaked internals."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.text
    error = resp.json()["error"]
    assert (error["status"], error["reason"]) == (status, reason), error
    assert error["request_id"] == resp.headers["x-request-id"]
    text = json.dumps(error, ensure_ascii=False)
    assert not any(word in text for word in INTERNALS), text
    return error


def staff_token(shop: Shop) -> str:
    """The owner's token, logged in once per module so no login limit is reached."""
    if not shop.staff:
        shop.staff = shop.staff_token()
    return shop.staff


def stock(shop: Shop, sku_id: str) -> dict:
    resp = shop.call("GET", f"/v1/staff/skus/{sku_id}/stock", channel=None, token=staff_token(shop))
    assert resp.status_code == 200, resp.text
    return {k: int(v) for k, v in resp.json()["stock"].items() if k != "sku_id"}


def violations(error: dict) -> dict[str, str]:
    return {v["field"]: v["description"] for v in error.get("field_violations", [])}


def raw_exchange(url: str, request: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """One request over a plain socket, for what an HTTP client library would not send;
    reads the response by its Content-Length, so a connection left open does not block."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before a response: {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed mid-body"
            body += chunk
    return status, headers, body[:length]


def fill(template_path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", template_path)


def test_deep_json_is_400_on_every_route_with_a_body(shop, member):
    staff = staff_token(shop)
    routes = [r for r in Table.from_protos().routes if r.body]
    assert len(routes) > 20
    for route in routes:
        headers = {"Content-Type": "application/json"}
        if route.rule.access in ("CHANNEL", "MEMBER"):
            headers["X-Api-Key"] = shop.key()
        if route.rule.access == "MEMBER":
            headers["Authorization"] = f"Bearer {member}"
        if route.rule.access == "STAFF":
            headers["Authorization"] = f"Bearer {staff}"
        if route.rule.access == "PLATFORM":
            headers["Authorization"] = f"Bearer {DEV_PLATFORM_TOKEN}"
        resp = httpx.request(route.http_method, shop.url + fill(route.template.openapi_path), content=DEEP,
                             headers=headers, timeout=30)
        error = refused(resp, 400, "BODY_TOO_DEEP")
        assert violations(error) == {"body": "at most 32 levels of arrays and objects"}, route.label
    # The two routes that need no credentials at all.
    for path in ("/v1/staff/login", "/v1/payments/sandbox/callback"):
        refused(httpx.post(shop.url + path, content=b"[" * 100000, timeout=30), 400, "BODY_TOO_DEEP")
    assert httpx.get(shop.url + "/healthz", timeout=5).status_code == 200


def test_a_declared_oversized_body_is_413_before_it_is_sent(shop):
    status, headers, body = raw_exchange(shop.url, (
        b"POST /v1/staff/login HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        b"Content-Length: 52428800\r\n\r\n{\"merchant_code\": \""))
    assert status == 413 and headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert (error["code"], error["status"], error["reason"]) == ("PAYLOAD_TOO_LARGE", 413, "BODY_TOO_LARGE")


def test_a_sent_50_mb_body_is_413(shop):
    # The gateway refuses it from Content-Length and lets the server discard the rest unread.
    resp = httpx.post(shop.url + "/v1/staff/login", content=b"{" + b" " * (50 << 20) + b"}",
                      headers={"Content-Type": "application/json"}, timeout=60)
    refused(resp, 413, "BODY_TOO_LARGE")


def test_a_streamed_oversized_body_is_413(shop, member):
    sku = shop.new_sku(stock=3)
    before = stock(shop, sku)

    def chunks():  # no Content-Length: the limit is counted while the body arrives
        yield b'{"idempotency_key": "big", "lines": [{"sku_id": "' + sku.encode() + b'", "quantity": 1}], "remark": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'
    resp = shop.call("POST", "/v1/orders", token=member, content=chunks())
    refused(resp, 413, "BODY_TOO_LARGE")
    one_over = shop.call("POST", "/v1/orders", token=member, content=b" " * (1 << 20) + b"{}")
    refused(one_over, 413, "BODY_TOO_LARGE")
    assert stock(shop, sku) == before
    assert shop.call("GET", "/v1/orders", token=member).json().get("orders", []) == []


def test_a_caller_hanging_up_mid_body_is_no_500(shop, stack):
    request_id = "hangup-" + uuid.uuid4().hex[:12]
    parts = urlsplit(shop.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/staff/login HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000\r\n"
                     b"X-Request-Id: " + request_id.encode() + b"\r\n\r\n{\"merchant")
    log = stack.data_dir / "log" / "gateway.log"

    def entries() -> list[dict]:
        return [json.loads(line) for line in log.read_text(errors="replace").splitlines()
                if request_id in line and line.startswith("{")]
    wait_until(lambda: any(e.get("event") == "http" for e in entries()), timeout=10,
               message="the access log line of the hung-up request")
    assert {(e["event"], e.get("status")) for e in entries()} == {("http", 400)}


@pytest.mark.parametrize("quantity", ["１", "+1", " 1", "1_000", "٣", 1.5, True, "99999999999999999999"])
def test_hostile_quantities_change_nothing(shop, quantity):
    token = shop.login("qty-" + uuid.uuid4().hex[:8])["access_token"]
    sku = shop.new_sku(stock=5)
    before = stock(shop, sku)
    placed = shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": quantity}]})
    error = refused(placed, 400, "INVALID_FIELDS")
    assert list(violations(error)) == ["lines[0].quantity"]
    assert violations(error)["lines[0].quantity"].startswith("must be an integer")
    carted = shop.call("POST", "/v1/cart/items", token=token, json={"sku_id": sku, "quantity": quantity})
    assert list(violations(refused(carted, 400, "INVALID_FIELDS"))) == ["quantity"]
    assert stock(shop, sku) == before
    assert shop.call("GET", "/v1/orders", token=token).json().get("orders", []) == []
    assert shop.call("GET", "/v1/cart", token=token).json()["cart"].get("items", []) == []
    # The same order written plainly goes through: the refusals above were the input's.
    ok = shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": "1"}]})
    assert ok.status_code == 200, ok.text
    assert stock(shop, sku)["available"] == before["available"] - 1


@pytest.mark.parametrize("query,field,description", [
    ("page_size=%EF%BC%91", "page_size", "must be an integer written with the digits 0-9"),
    ("page_size=+1", "page_size", "must be an integer written with the digits 0-9"),
    ("page_size=abc", "page_size", "must be an integer written with the digits 0-9"),
    ("page_size=2147483648", "page_size", "must be an integer from -2147483648 to 2147483647"),
    ("in_stock_only=1", "in_stock_only", "must be true or false"),
])
def test_query_values_are_strict(shop, query, field, description):
    error = refused(shop.call("GET", "/v1/products?" + query), 400, "INVALID_FIELDS")
    assert violations(error) == {field: description}


def test_times_are_rfc3339_with_real_offsets(shop):
    sku = shop.new_sku(stock=10, price=10000)
    title = "hostile-" + uuid.uuid4().hex[:8]

    def create(starts_at, ends_at="2099-01-02T00:00:00Z"):
        return shop.as_staff("POST", "/v1/staff/flash-sales", json={
            "title": title, "sku_id": sku, "price": {"amount": "5000", "currency": "CNY"}, "units": "2",
            "starts_at": starts_at, "ends_at": ends_at, "idempotency_key": uuid.uuid4().hex})
    for bad, description in [
            ("2099-01-01T10:00:00+24:00", "has a time-zone offset beyond ±23:59"),
            ("2099-01-01T10:00:00-99:59", "has a time-zone offset beyond ±23:59"),
            ("２099-01-01T10:00:00Z", "must be an RFC 3339 time such as 2026-05-01T10:00:00+08:00"),
            ("2099-02-30T10:00:00Z", "is not a real date and time"),
            ("2099-01-01 10:00:00", "must be an RFC 3339 time such as 2026-05-01T10:00:00+08:00")]:
        assert violations(refused(create(bad), 400, "INVALID_FIELDS")) == {"starts_at": description}
    listed = shop.call("GET", "/v1/flash-sales").json().get("flash_sales", [])
    assert title not in {s["title"] for s in listed}
    made = create("2099-01-01T10:00:00+08:00")
    assert made.status_code == 200, made.text
    assert made.json()["flash_sale"]["starts_at"] == "2099-01-01T02:00:00Z"


def test_messages_never_show_python_internals(shop, member):
    cases = [
        shop.call("POST", "/v1/orders", token=member, json={"idempotency_key": "k", "lines": [
            {"sku_id": "sku_x", "quantity": "zz"}]}),
        shop.call("POST", "/v1/auth/login", json={"code": 12}),
        shop.call("POST", "/v1/auth/login", json={"code": ["a"]}),
        shop.call("POST", "/v1/orders", token=member, json={"idempotency_key": "k", "lines": "x"}),
        shop.call("POST", "/v1/orders", token=member, json={"idempotency_key": "k", "attribution": {"channel": 7}}),
        shop.call("GET", "/v1/products?page_size=1.5"),
    ]
    for resp in cases:
        error = refused(resp, 400, "INVALID_FIELDS")
        assert error["field_violations"], error


def test_null_and_missing_bodies_are_refused(shop, member):
    null = refused(shop.call("POST", "/v1/auth/login", json={"code": None}), 400, "INVALID_FIELDS")
    assert violations(null) == {"code": "must not be null; leave the field out instead"}
    order_null = shop.call("POST", "/v1/orders", token=member, json={"idempotency_key": None, "lines": None})
    assert set(violations(refused(order_null, 400, "INVALID_FIELDS"))) == {"idempotency_key", "lines"}
    for path in ("/v1/orders", "/v1/orders/ord_x:pay", "/v1/sandbox/payments/pay_x:complete"):
        missing = refused(shop.call("POST", path, token=member), 400, "BODY_REQUIRED")
        assert violations(missing) == {"body": "is required"}
    assert shop.call("GET", "/v1/orders", token=member).json().get("orders", []) == []


def test_duplicate_keys_are_malformed(shop):
    resp = shop.call("POST", "/v1/auth/login", content=b'{"code": "sandbox:a", "code": "sandbox:b"}',
                     headers={"Content-Type": "application/json"})
    assert violations(refused(resp, 400, "MALFORMED_JSON")) == {"body": "the key 'code' appears twice in one object"}


def test_allow_header_of_an_action_path(shop, member):
    wrong = shop.call("GET", "/v1/orders/ord_x:pay", token=member)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["error"]["message"] == "this path accepts POST"
    assert shop.call("DELETE", "/v1/staff/skus/s1/stock:audit", channel=None).headers["allow"] == "GET"


@pytest.mark.parametrize("request_bytes", [
    b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Evil: a\x00b\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX Evil: a\r\n\r\n",
    "POST /v1/staff/login HTTP/1.1\r\nHost: gw\r\nContent-Length: １\r\n\r\n{}".encode(),
    b"HELLO THERE\r\n\r\n",
])
def test_what_the_http_parser_refuses_gets_the_json_error_body(shop, request_bytes):
    status, headers, body = raw_exchange(shop.url, request_bytes)
    assert status == 400 and headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert (error["code"], error["status"], error["reason"]) == ("INVALID_ARGUMENT", 400, "MALFORMED_HTTP")
    assert error["request_id"] == headers["x-request-id"]
    assert httpx.get(shop.url + "/healthz", timeout=5).status_code == 200
