"""The catalog's staff lists and SKU weights over gRPC against the real servers: SKUs with
their stock, categories and flash sales filtered and paged, scoped to the merchant, refused
for other roles and bad input; a SKU's weight stored, edited on its version and given to
the order service."""
from __future__ import annotations

import grpc
import pytest
from siyu.catalog.v1 import catalog_pb2 as pb, catalog_pb2_grpc

from siyu_kit.ids import new_id
from siyu_kit.protos import timestamp
from tests.support import database_fixture, field_violations, metadata, new_merchant_id, rpc_error, stub_fixture, \
    wait_until
from tests.support.catalog import internal, shopper, sku_input, staff, upsert
from tests.support.flash_sale import create as create_sale, now, reserve_request

stub = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
db = database_fixture("catalog")

LISTS = ("ListStaffSkus", "ListStaffCategories", "ListStaffFlashSales")


def as_role(m, *roles):
    return metadata(m, staff_id="stf_r", roles=roles)


def weighed(code, grams, price=1000, stock=10):
    return pb.SkuInput(code=code, list_price={"amount": price}, initial_stock=stock, weight_g=grams)


# ---- weight

def test_a_skus_weight_is_kept_edited_on_its_version_and_read_by_the_order_service(stub, db):
    m = new_merchant_id()
    made = upsert(stub, m, code="BAG", skus=[weighed("BAG-S", 350), weighed("BAG-L", 0)]).product
    assert [(s.code, s.weight_g) for s in made.skus] == [("BAG-S", 350), ("BAG-L", 0)]
    stale = rpc_error(upsert, stub, m, code="BAG", skus=[weighed("BAG-S", 1)], expected_version=9)
    assert stale.code() == grpc.StatusCode.ABORTED
    edited = upsert(stub, m, code="BAG", skus=[weighed("BAG-S", 400), weighed("BAG-L", 1200)],
                    expected_version=made.version).product
    assert [s.weight_g for s in edited.skus] == [400, 1200] and edited.version == made.version + 1
    ids = [s.sku_id for s in edited.skus]
    got = stub.GetSkus(pb.GetSkusRequest(sku_ids=ids), metadata=internal(m)).skus
    assert [(d.sku.sku_id, d.sku.weight_g) for d in got] == [(ids[0], 400), (ids[1], 1200)]
    shown = stub.GetProduct(pb.GetProductRequest(product_id=made.product_id), metadata=shopper(m)).product
    assert [s.weight_g for s in shown.skus] == [400, 1200]
    # A flash sale's SKU, as the order service reads it for a flash order's line.
    sale = create_sale(stub, m, ids[1], units=2)
    bought = stub.ReserveFlashSale(reserve_request(sale.flash_sale_id), metadata=internal(m))
    assert bought.sku.sku.sku_id == ids[1] and bought.sku.sku.weight_g == 1200


def test_a_weight_out_of_range_is_refused_with_field_violations_and_nothing_is_written(stub, db):
    m = new_merchant_id()
    err = rpc_error(upsert, stub, m, code="HEAVY", skus=[weighed("H-1", 1_000_001), weighed("H-2", -1)])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"skus[0].weight_g", "skus[1].weight_g"} <= set(field_violations(err))
    assert db.products.count_documents({"merchant_id": m}) == 0 and db.stock.count_documents({"merchant_id": m}) == 0
    made = upsert(stub, m, code="HEAVY", skus=[weighed("H-1", 1_000_000)]).product
    err = rpc_error(upsert, stub, m, code="HEAVY", skus=[weighed("H-1", -5)], expected_version=made.version)
    assert "skus[0].weight_g" in field_violations(err)
    stored = db.products.find_one({"_id": made.product_id})
    assert stored["version"] == made.version and stored["skus"][0]["weight_g"] == 1_000_000


# ---- SKUs with stock

def test_staff_list_skus_with_stock_by_filters_and_pages(stub):
    m = new_merchant_id()
    tee = upsert(stub, m, code="TEE", title="T恤", skus=[weighed("TEE-S", 200, stock=5),
                                                        weighed("TEE-M", 220, stock=0)]).product
    mug = upsert(stub, m, code="MUG", title="杯子", skus=[weighed("MUG-1", 400, stock=2)],
                 status=pb.PRODUCT_STATUS_DRAFT).product
    stub.ReserveStock(pb.ReserveStockRequest(
        reservation_id=new_id("rsv"), order_id=new_id("ord"), lines=[pb.ReservationLine(
            sku_id=tee.skus[0].sku_id, quantity=2)], expires_at=timestamp(now().replace(year=now().year + 1))),
        metadata=internal(m))

    def codes(md=None, **filters):
        resp = stub.ListStaffSkus(pb.ListStaffSkusRequest(**filters), metadata=md or staff(m))
        return [r.sku.code for r in resp.skus]

    everything = stub.ListStaffSkus(pb.ListStaffSkusRequest(), metadata=staff(m))
    assert [r.sku.code for r in everything.skus] == ["MUG-1", "TEE-M", "TEE-S"]
    tee_s = everything.skus[2]
    assert (tee_s.product_title, tee_s.product_status, tee_s.sku.product_id, tee_s.sku.weight_g) == \
        ("T恤", pb.PRODUCT_STATUS_ON_SHELF, tee.product_id, 200)
    assert (tee_s.stock.on_hand, tee_s.stock.reserved, tee_s.stock.available, tee_s.sku.available) == (5, 2, 3, 3)
    assert codes(sort=pb.SKU_SORT_SKU_ID) == ["TEE-S", "TEE-M", "MUG-1"]
    assert codes(product_id=tee.product_id) == ["TEE-M", "TEE-S"]
    assert codes(code_prefix="TEE-M") == ["TEE-M"]
    assert codes(max_available=2) == ["MUG-1", "TEE-M"]
    assert codes(product_status=pb.PRODUCT_STATUS_DRAFT) == ["MUG-1"]
    assert codes(md=as_role(m, "FINANCE")) == ["MUG-1", "TEE-M", "TEE-S"]
    first = stub.ListStaffSkus(pb.ListStaffSkusRequest(page_size=2), metadata=staff(m))
    rest = stub.ListStaffSkus(pb.ListStaffSkusRequest(page_size=2, page_token=first.next_page_token),
                              metadata=staff(m))
    assert [r.sku.code for r in [*first.skus, *rest.skus]] == ["MUG-1", "TEE-M", "TEE-S"]
    assert rest.next_page_token == ""
    err = rpc_error(stub.ListStaffSkus, pb.ListStaffSkusRequest(page_size=2, page_token=first.next_page_token,
                                                                max_available=1), metadata=staff(m))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in field_violations(err)
    # Another merchant's staff see none of them, not even by product id.
    other = new_merchant_id()
    assert codes(md=staff(other)) == [] and codes(md=staff(other), product_id=mug.product_id) == []


def test_staff_list_skus_refuses_bad_input(stub):
    m = new_merchant_id()
    err = rpc_error(stub.ListStaffSkus, pb.ListStaffSkusRequest(
        product_id="prd_x", code_prefix="a b", max_available=-1, product_status=9, sort=7, page_size=101,
        page_token="garbage"), metadata=staff(m))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"product_id", "code_prefix", "max_available", "page_size"} <= set(field_violations(err))
    err = rpc_error(stub.ListStaffSkus, pb.ListStaffSkusRequest(product_status=9, sort=7), metadata=staff(m))
    assert {"product_status", "sort"} <= set(field_violations(err))
    err = rpc_error(stub.ListStaffSkus, pb.ListStaffSkusRequest(page_token="garbage"), metadata=staff(m))
    assert set(field_violations(err)) == {"page_token"}


# ---- categories

def test_staff_list_categories_all_by_parent_or_roots_with_a_cursor(stub):
    m = new_merchant_id()

    def create(name, parent=""):
        return stub.CreateCategory(pb.CreateCategoryRequest(name=name, parent_id=parent),
                                   metadata=staff(m)).category.category_id

    women = create("女装")
    dresses = create("连衣裙", women)
    men = create("男装")

    def ids(md=None, **filters):
        resp = stub.ListStaffCategories(pb.ListStaffCategoriesRequest(**filters), metadata=md or staff(m))
        return [c.category_id for c in resp.categories], resp.next_page_token

    assert ids() == ([women, dresses, men], "")
    first, token = ids(page_size=2)
    assert first == [women, dresses] and ids(page_size=2, page_token=token) == ([men], "")
    assert ids(parent_id=women)[0] == [dresses] and ids(roots_only=True)[0] == [women, men]
    assert ids(md=as_role(m, "GUIDE"))[0] == [women, dresses, men]
    assert ids(md=staff(new_merchant_id()), parent_id=women) == ([], "")
    err = rpc_error(stub.ListStaffCategories, pb.ListStaffCategoriesRequest(page_size=2, page_token=token,
                                                                            parent_id=women), metadata=staff(m))
    assert "page_token" in field_violations(err)
    err = rpc_error(stub.ListStaffCategories, pb.ListStaffCategoriesRequest(parent_id="women", page_size=-1),
                    metadata=staff(m))
    assert {"parent_id", "page_size"} <= set(field_violations(err))


# ---- flash sales

def test_staff_list_flash_sales_in_every_state_by_product_and_start(stub):
    m = new_merchant_id()
    tee = upsert(stub, m, code="TEE", skus=[sku_input("TEE-S", price=1000, stock=50)]).product
    bag = upsert(stub, m, code="BAG", skus=[sku_input("BAG-1", price=1000, stock=50)]).product
    ending = create_sale(stub, m, tee.skus[0].sku_id, units=1, starts_in=-60, lasts=61.5)
    running = create_sale(stub, m, tee.skus[0].sku_id, units=1, starts_in=-30, lasts=3600)
    soon = create_sale(stub, m, tee.skus[0].sku_id, units=1, starts_in=3600, lasts=3600)
    later = create_sale(stub, m, bag.skus[0].sku_id, units=1, starts_in=7200, lasts=3600)

    def ids(md=None, **filters):
        resp = stub.ListStaffFlashSales(pb.ListStaffFlashSalesRequest(**filters), metadata=md or staff(m))
        return [s.flash_sale_id for s in resp.flash_sales], resp.next_page_token

    everything = [later.flash_sale_id, soon.flash_sale_id, running.flash_sale_id, ending.flash_sale_id]
    assert ids() == (everything, "")
    assert ids(sort=pb.FLASH_SALE_SORT_EARLIEST_START)[0] == everything[::-1]
    assert ids(state=pb.FLASH_SALE_STATE_SCHEDULED)[0] == everything[:2]
    assert ids(product_id=bag.product_id)[0] == [later.flash_sale_id]

    assert ids(starts_from=timestamp(now()))[0] == everything[:2]
    assert ids(starts_from=soon.starts_at, starts_before=later.starts_at)[0] == [soon.flash_sale_id]
    first, token = ids(page_size=3)
    assert first == everything[:3] and ids(page_size=3, page_token=token) == (everything[3:], "")
    assert ids(md=as_role(m, "GUIDE"))[0] == everything
    assert ids(md=staff(new_merchant_id())) == ([], "")
    # The first sale ends a moment later, and is then listed as ended.
    wait_until(lambda: ids(state=pb.FLASH_SALE_STATE_ENDED)[0] == [ending.flash_sale_id], timeout=10,
               message="the sale ended")
    assert ids(state=pb.FLASH_SALE_STATE_RUNNING)[0] == [running.flash_sale_id]
    state = {s.flash_sale_id: s.state for s in stub.ListStaffFlashSales(
        pb.ListStaffFlashSalesRequest(), metadata=staff(m)).flash_sales}
    assert state[ending.flash_sale_id] == pb.FLASH_SALE_STATE_ENDED


def test_staff_list_flash_sales_refuses_bad_input(stub):
    m = new_merchant_id()
    start = now()
    err = rpc_error(stub.ListStaffFlashSales, pb.ListStaffFlashSalesRequest(
        state=9, product_id="x", starts_from=timestamp(start), starts_before=timestamp(start), sort=5,
        page_size=1000, page_token="bm9wZQ"), metadata=staff(m))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"product_id", "page_size"} <= set(field_violations(err))
    err = rpc_error(stub.ListStaffFlashSales, pb.ListStaffFlashSalesRequest(state=9, sort=5), metadata=staff(m))
    assert {"state", "sort"} <= set(field_violations(err))
    err = rpc_error(stub.ListStaffFlashSales, pb.ListStaffFlashSalesRequest(
        starts_from=timestamp(start), starts_before=timestamp(start), page_token="bm9wZQ"), metadata=staff(m))
    assert set(field_violations(err)) == {"starts_before", "page_token"}


@pytest.mark.parametrize("rpc", LISTS)
def test_staff_lists_refuse_shoppers_members_and_other_roles(stub, rpc):
    m = new_merchant_id()
    request = getattr(pb, f"{rpc}Request")()
    member = metadata(m, channel="MINI_PROGRAM", member_id=new_id("mem"))
    for md in (shopper(m), member):
        assert rpc_error(getattr(stub, rpc), request, metadata=md).code() in (
            grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    wrong = "GUIDE" if rpc == "ListStaffSkus" else "FINANCE"
    assert rpc_error(getattr(stub, rpc), request, metadata=as_role(m, wrong)).code() == \
        grpc.StatusCode.PERMISSION_DENIED
