"""The finance desk end to end: suppliers and their SKU links, an order that settles by the
settle job once its after-sales window (0 days here) closes, its payment split, what the
supplier is owed, and the day's settlement statement as JSON and as CSV; every new RPC
refuses bad input (400), other merchants (404) and the wrong role (403)."""
from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

from siyu.order.v1 import order_pb2, order_pb2_grpc

from siyu_kit.ids import new_id
from tests.support import channel, metadata, wait_until
from tests.support.shop import Shop, ok, refused, staff_with



def shanghai_today() -> date:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


def fen(m: dict | None) -> int:
    return int((m or {}).get("amount", 0))


def cny(amount: int) -> dict:
    return {"amount": str(amount), "currency": "CNY"}


def supplier_input(name: str = "苏州丝绸", account: str = "1900012345", kind: str = "PROVIDER_MERCHANT") -> dict:
    return {"name": name, "contact": "王经理", "phone": "13800138000",
            "account_kind": f"SETTLEMENT_ACCOUNT_KIND_{kind}", "settlement_account": account}


def new_supplier(shop: Shop, **kw) -> dict:
    return ok(shop.as_staff("POST", "/v1/staff/suppliers", json={
        "idempotency_key": uuid.uuid4().hex, "supplier": supplier_input(**kw)}))["supplier"]


def test_a_completed_order_settles_by_the_job_and_its_split_shows_where_the_money_goes(stack, shop: Shop):
    shop.update_order_settings(after_sales_days=0)
    ok(shop.as_staff("PUT", "/v1/staff/split-settings", json={"settings": {
        "platform_fee_bp": 100, "provider_fee_bp": 60, "max_share_bp": 3000}}))
    supplier = new_supplier(shop)
    assert supplier["settlement_account"].endswith("2345") and "19000" not in supplier["settlement_account"]
    sku = shop.new_sku(stock=10, price=10000)
    ok(shop.as_staff("PUT", f"/v1/staff/supplier-links/{sku}", json={
        "supplier_id": supplier["supplier_id"], "supply_price": cny(4000)}))

    token = shop.login(f"fin-{uuid.uuid4().hex[:8]}")["access_token"]
    placed = ok(shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": "2"}]}))["order"]
    order_id, line = placed["order_id"], placed["lines"][0]
    shop.pay(token, order_id)
    ok(shop.as_staff("POST", f"/v1/staff/orders/{order_id}:ship", json={"carrier": "SF", "tracking_number": "SF1"}))
    # A refund before the split: one unit back before receipt is confirmed.
    ok(shop.as_staff("POST", f"/v1/staff/orders/{order_id}/refunds", json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"line_id": line["line_id"], "quantity": "1"}]}))
    refunded = wait_until(lambda: (o := ok(shop.as_staff("GET", f"/v1/staff/orders/{order_id}"))["order"])
                          .get("refunded_amount") and o, message="the refund applied")
    ok(shop.call("POST", f"/v1/orders/{order_id}:confirmReceipt", token=token, json={}))

    def split():
        resp = shop.as_staff("GET", f"/v1/staff/orders/{order_id}/split")
        return resp.status_code == 200 and resp.json()["split"]
    s = wait_until(split, timeout=20, message="the order settled and its split written")

    paid, back = fen(placed["payable"]), fen(refunded["refunded_amount"])
    gross = paid - back
    parts = {(p["kind"], p.get("party_id", "")): fen(p["amount"]) for p in s["parts"]}
    assert fen(s["gross"]) == gross and s["ledger_matches"] is True
    assert parts[("SUPPLIER", supplier["supplier_id"])] == 4000  # one unit kept
    assert parts[("PLATFORM", "")] == gross * 100 // 10000
    assert fen(s["provider_fee"]) == gross * 60 // 10000
    assert fen(s["gross"]) + fen(s.get("merchant_shortfall")) == \
        sum(parts.values()) + fen(s["provider_fee"]) + fen(s["merchant_net"])
    assert [(x["sku_id"], x["supplier_id"], fen(x["supply_price"]), int(x["refunded_quantity"]))
            for x in s["lines"]] == [(sku, supplier["supplier_id"], 4000, 1)]
    # Paid through the provider with a supplier account: the execution job shares the
    # supplier's part through the provider (the sandbox, which finishes at once).
    assert [x["kind"] for x in s["shares"]] == ["SUPPLIER"]
    wait_until(lambda: split()["share_state"] == "FINISHED", timeout=20, message="the share carried out")
    assert ok(shop.as_staff("GET", f"/v1/staff/orders/{order_id}"))["order"]["settled_at"]

    today = shanghai_today().isoformat()
    payable = ok(shop.as_staff("GET", f"/v1/staff/suppliers/{supplier['supplier_id']}/payable",
                               params={"from_day": today, "to_day": today}))
    assert (fen(payable["payable"]), payable["order_count"]) == (4000, 1)
    assert fen(payable["shared"]) + fen(payable["off_platform"]) == 4000

    statement = ok(shop.as_staff("GET", f"/v1/staff/finance/statements/{today}"))["statement"]
    assert fen(statement["sales"]) >= paid and fen(statement["refunds"]) >= back
    assert fen(statement["supplier_payables"]) == 4000 and statement["settled_orders"] == 1
    assert fen(statement["platform_fee"]) == parts[("PLATFORM", "")]
    assert fen(statement["net"]) == fen(s["merchant_net"])

    # The CSV export over gRPC: one row per day, the same figures in yuan.
    with channel(stack, "order") as ch:
        body = order_pb2_grpc.OrderServiceStub(ch).ExportSettlementStatement(
            order_pb2.ExportSettlementStatementRequest(from_day=today, to_day=today),
            metadata=metadata(shop.data["merchant_id"], staff_id=new_id("stf"), roles=("FINANCE",)))
    assert body.content_type == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(body.data.decode("utf-8"))))
    assert [r["day"] for r in rows] == [today]
    assert rows[0]["supplier_payables"] == "40.00" and rows[0]["settled_orders"] == "1"


def test_the_csv_export_over_http_is_a_csv_file(shop: Shop):
    """Needs the gateway's HttpBody support (the body is the file, not JSON)."""
    today = shanghai_today().isoformat()
    resp = shop.as_staff("GET", "/v1/staff/finance/statements:export", params={"from_day": today, "to_day": today})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    assert resp.text.splitlines()[0].startswith("day,sales,refunds,commissions,supplier_payables")


def test_suppliers_are_listed_updated_disabled_and_links_paged(shop: Shop):
    first, second = new_supplier(shop, name="甲"), new_supplier(shop, name="乙", kind="BANK", account="6222 0000 1111")
    # The same idempotency key answers the first supplier.
    key = uuid.uuid4().hex
    once = ok(shop.as_staff("POST", "/v1/staff/suppliers", json={"idempotency_key": key,
                                                                 "supplier": supplier_input("丙")}))["supplier"]
    again = ok(shop.as_staff("POST", "/v1/staff/suppliers", json={"idempotency_key": key,
                                                                  "supplier": supplier_input("丙")}))["supplier"]
    assert once["supplier_id"] == again["supplier_id"]
    page = ok(shop.as_staff("GET", "/v1/staff/suppliers", params={"page_size": 2}))
    assert len(page["suppliers"]) == 2 and page["next_page_token"]
    rest = ok(shop.as_staff("GET", "/v1/staff/suppliers", params={"page_token": page["next_page_token"]}))
    seen = [s["supplier_id"] for s in page["suppliers"] + rest["suppliers"]]
    assert len(seen) == len(set(seen)) and {first["supplier_id"], second["supplier_id"], once["supplier_id"]} <= set(seen)

    renamed = ok(shop.as_staff("PATCH", f"/v1/staff/suppliers/{second['supplier_id']}", json={
        "supplier": supplier_input("乙二", kind="BANK", account="6222 0000 2222")}))["supplier"]
    assert renamed["name"] == "乙二" and renamed["settlement_account"].endswith("2222")
    disabled = ok(shop.as_staff("PATCH", f"/v1/staff/suppliers/{second['supplier_id']}", json={"disable": True}))
    assert disabled["supplier"]["state"] == "SUPPLIER_STATE_DISABLED"
    sku_a, sku_b = shop.new_sku(stock=1), shop.new_sku(stock=1)
    refused(shop.as_staff("PUT", f"/v1/staff/supplier-links/{sku_a}", json={
        "supplier_id": second["supplier_id"], "supply_price": cny(100)}), 400, "SUPPLIER_DISABLED")
    for sku in (sku_a, sku_b):
        ok(shop.as_staff("PUT", f"/v1/staff/supplier-links/{sku}", json={
            "supplier_id": first["supplier_id"], "supply_price": cny(100)}))
    links = ok(shop.as_staff("GET", "/v1/staff/supplier-links", params={
        "supplier_id": first["supplier_id"], "page_size": 1}))
    assert len(links["links"]) == 1 and links["next_page_token"]
    ok(shop.as_staff("DELETE", f"/v1/staff/supplier-links/{sku_a}"))
    refused(shop.as_staff("DELETE", f"/v1/staff/supplier-links/{sku_a}"), 404)
    left = ok(shop.as_staff("GET", "/v1/staff/supplier-links", params={"supplier_id": first["supplier_id"]}))
    assert [x["sku_id"] for x in left["links"]] == [sku_b]


def test_every_new_rpc_refuses_bad_input_other_merchants_and_the_wrong_role(shop: Shop, other_shop: Shop):
    theirs = new_supplier(other_shop)
    their_sku = other_shop.new_sku(stock=1)
    sup = theirs["supplier_id"]
    day = shanghai_today().isoformat()
    # Bad input: 400 with the field named, nothing written.
    bad = [
        ("POST", "/v1/staff/suppliers", {"json": {"idempotency_key": "k", "supplier": {"name": ""}}}, "supplier.name"),
        ("PATCH", "/v1/staff/suppliers/sup_x", {"json": {}}, "supplier_id"),
        ("GET", "/v1/staff/suppliers", {"params": {"page_size": 500}}, "page_size"),
        ("PUT", "/v1/staff/supplier-links/sku_x", {"json": {"supplier_id": sup, "supply_price": cny(1)}}, "sku_id"),
        ("DELETE", "/v1/staff/supplier-links/nope", {}, "sku_id"),
        ("GET", "/v1/staff/supplier-links", {"params": {"supplier_id": "x"}}, "supplier_id"),
        ("GET", f"/v1/staff/suppliers/{sup}/payable", {"params": {"from_day": "2026-13", "to_day": day}}, "from_day"),
        ("GET", "/v1/staff/orders/ord_x/split", {}, "order_id"),
        ("PUT", "/v1/staff/split-settings", {"json": {"settings": {"platform_fee_bp": 20000}}},
         "settings.platform_fee_bp"),
        ("GET", "/v1/staff/finance/statements/yesterday", {}, "day"),
        ("GET", "/v1/staff/finance/statements:export", {"params": {"from_day": day}}, "to_day"),
        ("GET", "/v1/staff/finance/reconciliations/x", {}, "day"),
    ]
    for method, path, kw, field in bad:
        refused(shop.as_staff(method, path, **kw), 400, fields={field})
    refused(shop.as_staff("GET", "/v1/staff/finance/statements:export",
                          params={"from_day": "2026-01-01", "to_day": "2026-06-30"}), 400, "DAY_RANGE_TOO_LONG")
    refused(shop.as_staff("GET", f"/v1/staff/suppliers/{sup}/payable",
                          params={"from_day": "2026-01-01", "to_day": "2026-06-30"}), 400, "DAY_RANGE_TOO_LONG")
    # Another merchant's supplier, link and order: not found.
    other_order = new_id("ord")
    for method, path, kw in [
        ("PATCH", f"/v1/staff/suppliers/{sup}", {"json": {"disable": True}}),
        ("PUT", f"/v1/staff/supplier-links/{their_sku}", {"json": {"supplier_id": sup, "supply_price": cny(1)}}),
        ("DELETE", f"/v1/staff/supplier-links/{their_sku}", {}),
        ("GET", "/v1/staff/supplier-links", {"params": {"supplier_id": sup}}),
        ("GET", f"/v1/staff/suppliers/{sup}/payable", {"params": {"from_day": day, "to_day": day}}),
        ("GET", f"/v1/staff/orders/{other_order}/split", {}),
    ]:
        refused(shop.as_staff(method, path, **kw), 404)
    assert ok(other_shop.as_staff("GET", f"/v1/staff/suppliers/{sup}/payable",
                                  params={"from_day": day, "to_day": day}))["order_count"] == 0
    # The wrong role: a GUIDE reaches none of them; FINANCE reads but does not onboard
    # suppliers or change the split settings.
    guide, finance = (staff_with(shop, r) for r in ("GUIDE", "FINANCE"))
    mine = new_supplier(shop)["supplier_id"]
    sku = shop.new_sku(stock=1)
    every_rpc = [
        ("POST", "/v1/staff/suppliers", {"json": {"idempotency_key": "k", "supplier": supplier_input()}}),
        ("PATCH", f"/v1/staff/suppliers/{mine}", {"json": {"disable": True}}),
        ("GET", "/v1/staff/suppliers", {}),
        ("PUT", f"/v1/staff/supplier-links/{sku}", {"json": {"supplier_id": mine, "supply_price": cny(1)}}),
        ("DELETE", f"/v1/staff/supplier-links/{sku}", {}),
        ("GET", "/v1/staff/supplier-links", {}),
        ("GET", f"/v1/staff/suppliers/{mine}/payable", {"params": {"from_day": day, "to_day": day}}),
        ("GET", f"/v1/staff/orders/{other_order}/split", {}),
        ("GET", "/v1/staff/split-settings", {}),
        ("PUT", "/v1/staff/split-settings", {"json": {"settings": {}}}),
        ("GET", f"/v1/staff/finance/statements/{day}", {}),
        ("GET", "/v1/staff/finance/statements:export", {"params": {"from_day": day, "to_day": day}}),
        ("GET", f"/v1/staff/finance/reconciliations/{day}", {}),
    ]
    for method, path, kw in every_rpc:
        refused(shop.call(method, path, channel=None, token=guide, **kw), 403)
    for method, path, kw in every_rpc[:2] + every_rpc[3:5] + every_rpc[9:10]:
        refused(shop.call(method, path, channel=None, token=finance, **kw), 403)
    ok(shop.call("GET", "/v1/staff/suppliers", channel=None, token=finance))
    assert ok(shop.call("GET", "/v1/staff/split-settings", channel=None, token=finance))["settings"]
    assert ok(shop.as_staff("GET", f"/v1/staff/suppliers/{mine}"
                            "/payable", params={"from_day": day, "to_day": day}))["order_count"] == 0
