"""The catalog's staff lists and SKU weights over HTTP through the gateway: a weight set
and edited by the staff and shown with the SKU; SKUs with stock, categories and flash
sales listed, filtered and paged; another merchant's staff, members and wrong roles
refused; bad input answered 400 with field violations and nothing written."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx

from tests.support.shop import Shop, ok, staff_with



def violations(resp: httpx.Response) -> set[str]:
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    return {v["field"] for v in error.get("field_violations", [])}


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")



def weighed_product(shop: Shop, code: str, **skus: tuple[int, int]) -> dict:
    """skus: code → (grams, stock)."""
    return ok(shop.as_staff("POST", "/v1/staff/products", json={
        "code": code, "title": f"Bag {code}", "status": "PRODUCT_STATUS_ON_SHELF",
        "skus": [{"code": c, "list_price": {"amount": "5000", "currency": "CNY"}, "initial_stock": str(n),
                  "weight_g": str(g)} for c, (g, n) in skus.items()]}))["product"]


def test_a_weight_is_set_edited_on_its_version_shown_and_refused_out_of_range(shop: Shop):
    code = "w-" + uuid.uuid4().hex[:8]
    made = weighed_product(shop, code, **{f"{code}-S": (350, 5), f"{code}-L": (0, 5)})
    assert [s.get("weight_g", "0") for s in made["skus"]] == ["350", "0"]
    bad = shop.as_staff("POST", "/v1/staff/products", json={
        "code": code, "title": "Bag", "expected_version": made["version"],
        "skus": [{"code": f"{code}-S", "list_price": {"amount": "5000", "currency": "CNY"}, "weight_g": "1000001"}]})
    assert violations(bad) == {"skus[0].weight_g"}
    shown = ok(shop.call("GET", f"/v1/products/{made['product_id']}"))["product"]
    assert shown["version"] == made["version"] and shown["skus"][0]["weight_g"] == "350"
    edited = ok(shop.as_staff("POST", "/v1/staff/products", json={
        "code": code, "title": "Bag", "expected_version": made["version"],
        "skus": [{"code": f"{code}-S", "list_price": {"amount": "5000", "currency": "CNY"}, "weight_g": "420"}]}))
    assert edited["product"]["skus"][0]["weight_g"] == "420"
    stale = shop.as_staff("POST", "/v1/staff/products", json={
        "code": code, "title": "Bag", "expected_version": made["version"],
        "skus": [{"code": f"{code}-S", "list_price": {"amount": "5000", "currency": "CNY"}, "weight_g": "1"}]})
    assert stale.status_code == 409, stale.text
    listed = ok(shop.as_staff("GET", "/v1/staff/skus", params={"product_id": made["product_id"]}))["skus"]
    assert {r["sku"]["code"]: r["sku"].get("weight_g", "0") for r in listed} == {f"{code}-S": "420",
                                                                                   f"{code}-L": "0"}


def test_staff_list_skus_with_stock_filters_and_pages(shop: Shop, other_shop: Shop):
    code = "s-" + uuid.uuid4().hex[:8]
    made = weighed_product(shop, code, **{f"{code}-A": (100, 0), f"{code}-B": (200, 7), f"{code}-C": (300, 1)})

    def listed(token: str | None = None, **params) -> list[str]:
        params = {"page_size": 100, **params}
        resp = shop.call("GET", "/v1/staff/skus", channel=None, token=token, params=params) if token else \
            shop.as_staff("GET", "/v1/staff/skus", params=params)
        return [r["sku"]["code"] for r in ok(resp).get("skus", [])]

    assert listed(code_prefix=code) == [f"{code}-C", f"{code}-B", f"{code}-A"]
    assert listed(code_prefix=code, sort="SKU_SORT_SKU_ID") == [f"{code}-A", f"{code}-B", f"{code}-C"]
    assert listed(product_id=made["product_id"], max_available="1") == [f"{code}-C", f"{code}-A"]
    assert listed(code_prefix=code, product_status="PRODUCT_STATUS_DRAFT") == []
    row = ok(shop.as_staff("GET", "/v1/staff/skus", params={"code_prefix": f"{code}-B"}))["skus"][0]
    assert row["product_title"] == f"Bag {code}" and row["product_status"] == "PRODUCT_STATUS_ON_SHELF"
    assert row["stock"]["on_hand"] == "7" and row["stock"]["available"] == "7" and row["sku"]["weight_g"] == "200"
    first = ok(shop.as_staff("GET", "/v1/staff/skus", params={"product_id": made["product_id"], "page_size": 2}))
    rest = ok(shop.as_staff("GET", "/v1/staff/skus", params={"product_id": made["product_id"], "page_size": 2,
                                                             "page_token": first["next_page_token"]}))
    assert len(first["skus"]) == 2 and len(rest["skus"]) == 1 and rest.get("next_page_token", "") == ""
    moved = shop.as_staff("GET", "/v1/staff/skus", params={"page_size": 2, "page_token": first["next_page_token"]})
    assert violations(moved) == {"page_token"}
    finance = staff_with(shop, "FINANCE")
    assert listed(token=finance, code_prefix=code) == [f"{code}-C", f"{code}-B", f"{code}-A"]
    theirs = ok(other_shop.as_staff("GET", "/v1/staff/skus", params={"product_id": made["product_id"]}))
    assert theirs.get("skus", []) == []


def test_staff_list_categories_and_flash_sales(shop: Shop, other_shop: Shop):
    root = ok(shop.as_staff("POST", "/v1/staff/categories", json={"name": "Root " + uuid.uuid4().hex[:6]}))[
        "category"]["category_id"]
    child = ok(shop.as_staff("POST", "/v1/staff/categories", json={"name": "Child", "parent_id": root}))[
        "category"]["category_id"]
    children = ok(shop.as_staff("GET", "/v1/staff/categories", params={"parent_id": root}))["categories"]
    assert [c["category_id"] for c in children] == [child]
    roots = ok(shop.as_staff("GET", "/v1/staff/categories", params={"roots_only": "true", "page_size": 100}))
    assert root in {c["category_id"] for c in roots["categories"]} and child not in str(roots)
    product = shop.new_product(stock=20, price=5000)
    now = datetime.now(timezone.utc)
    sales = []
    for hours in (1, 3):
        sales.append(ok(shop.as_staff("POST", "/v1/staff/flash-sales", json={
            "title": f"In {hours}h", "sku_id": product["skus"][0]["sku_id"], "price": {"amount": "3000",
                                                                                         "currency": "CNY"},
            "units": "2", "starts_at": rfc3339(now + timedelta(hours=hours)),
            "ends_at": rfc3339(now + timedelta(hours=hours + 1)), "idempotency_key": uuid.uuid4().hex}))[
            "flash_sale"]["flash_sale_id"])

    def sale_ids(**params) -> list[str]:
        found = ok(shop.as_staff("GET", "/v1/staff/flash-sales", params={"product_id": product["product_id"],
                                                                         **params}))
        return [f["flash_sale_id"] for f in found.get("flash_sales", [])]

    assert sale_ids() == sales[::-1]
    assert sale_ids(sort="FLASH_SALE_SORT_EARLIEST_START") == sales
    assert sale_ids(state="FLASH_SALE_STATE_SCHEDULED") == sales[::-1]
    assert sale_ids(state="FLASH_SALE_STATE_RUNNING") == []
    assert sale_ids(starts_from=rfc3339(now + timedelta(hours=2))) == [sales[1]]
    guide = staff_with(shop, "GUIDE")
    as_guide = shop.call("GET", "/v1/staff/flash-sales", channel=None, token=guide,
                         params={"product_id": product["product_id"]})
    assert [f["flash_sale_id"] for f in ok(as_guide)["flash_sales"]] == sales[::-1]
    assert ok(other_shop.as_staff("GET", "/v1/staff/flash-sales", params={"product_id": product["product_id"]})).get(
        "flash_sales", []) == []
    assert ok(other_shop.as_staff("GET", "/v1/staff/categories", params={"parent_id": root})).get(
        "categories", []) == []


def test_wrong_roles_members_and_channel_keys_are_refused_and_bad_input_writes_nothing(shop: Shop):
    calls = ["/v1/staff/skus", "/v1/staff/categories", "/v1/staff/flash-sales"]
    guide, finance = staff_with(shop, "GUIDE"), staff_with(shop, "FINANCE")
    wrong = {"/v1/staff/skus": guide, "/v1/staff/categories": finance, "/v1/staff/flash-sales": finance}
    member = shop.login("m-" + uuid.uuid4().hex[:8])["access_token"]
    for path in calls:
        assert shop.call("GET", path, channel=None, token=wrong[path]).status_code == 403
        assert shop.call("GET", path, token=member).status_code == 401
        assert shop.call("GET", path).status_code == 401
    before = {path: ok(shop.as_staff("GET", path, params={"page_size": 100})) for path in calls}
    assert violations(shop.as_staff("GET", "/v1/staff/skus", params={"max_available": "10000001"})) == \
        {"max_available"}
    assert violations(shop.as_staff("GET", "/v1/staff/categories", params={"page_token": "nope"})) == {"page_token"}
    assert violations(shop.as_staff("GET", "/v1/staff/flash-sales", params={"state": "PAUSED"})) == {"state"}
    assert {path: ok(shop.as_staff("GET", path, params={"page_size": 100})) for path in calls} == before
