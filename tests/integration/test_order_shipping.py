"""Shipping over the real order, catalog and member services: quotes and orders take the
member's address (named or default) and keep a copy of it, the merchant's freight
template prices by region, free-shipping thresholds, an excluded region refused with
nothing reserved, the staff template RPCs, and the phone shown in full only to those who
ship."""
from __future__ import annotations

import grpc
from siyu.catalog.v1 import catalog_pb2_grpc
from siyu.common.v1 import common_pb2
from siyu.member.v1 import member_pb2 as MS, member_pb2_grpc
from siyu.order.v1 import order_pb2 as OS, order_pb2_grpc

from siyu_kit.ids import new_id
from tests.support import field_violations, metadata, new_merchant_id, reason, rpc_error, stub_fixture
from tests.support.member import login
from tests.support.order import make_skus, place, staff, stock

order = stub_fixture("order", order_pb2_grpc.OrderServiceStub)
catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
members = stub_fixture("member", member_pb2_grpc.MemberServiceStub)

PHONE = "13812348000"


def cny(amount: int) -> common_pb2.Money:
    return common_pb2.Money(amount=amount, currency="CNY")


def rule(name: str, first_fee: int, additional_fee: int, *regions: str, **more) -> OS.FreightRule:
    return OS.FreightRule(name=name, first=more.pop("first", 1), first_fee=cny(first_fee), additional=1,
                          additional_fee=cny(additional_fee), regions=list(regions), **more)


TEMPLATE = OS.FreightTemplate(
    default_rule=rule("default", 1000, 500),
    rules=[rule("广东省", 800, 200, "440000"), rule("新疆", 3000, 1500, "650000")],
    excluded_regions=["540000"], free_over=cny(9900))


def staff_as(mid: str, *roles: str):
    return metadata(mid, staff_id=new_id("stf"), roles=roles)


def shopper(members, mid: str):
    member_id = login(members, mid, f"u-{new_id('x')}").member.member_id
    return member_id, metadata(mid, channel="H5", member_id=member_id)


def add_address(members, md, province="440000", city="440300", district="440305", **more) -> MS.Address:
    return members.CreateAddress(MS.CreateAddressRequest(
        idempotency_key=new_id("k"), recipient="张三", phone=PHONE, province_code=province, city_code=city,
        district_code=district, detail="科技园 1 号", **more), metadata=md).address


def quote(order, md, *lines, address_id: str = "") -> OS.CheckoutQuote:
    return order.QuoteCheckout(OS.QuoteCheckoutRequest(
        lines=[OS.OrderLineInput(sku_id=s, quantity=q) for s, q in lines], address_id=address_id), metadata=md).quote


def put_template(order, mid: str, template=TEMPLATE, expected_version: int = 0) -> OS.FreightTemplate:
    return order.PutFreightTemplate(OS.PutFreightTemplateRequest(template=template, expected_version=expected_version),
                                    metadata=staff(mid)).template


def test_a_quote_and_an_order_ship_to_the_default_address_priced_by_region(order, catalog, members):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (2000, 50))
    _, md = shopper(members, mid)
    home = add_address(members, md)
    put_template(order, mid)

    q = quote(order, md, (sku, 3))
    assert (q.shipping_fee.amount, q.payable.amount) == (800 + 2 * 200, 6000 + 1200)
    assert q.shipping_rule.startswith("广东省: first 1 unit ¥8")
    assert q.shipping_address.address_id == home.address_id and q.shipping_address.phone == "138****8000"

    placed = place(order, md, "k1", (sku, 3))
    assert (placed.shipping_fee.amount, placed.payable.amount, placed.shipping_rule) == (
        q.shipping_fee.amount, q.payable.amount, q.shipping_rule)
    a = placed.shipping_address
    assert (a.address_id, a.recipient, a.phone, a.province_name, a.city_name, a.district_name) == (
        home.address_id, "张三", "138****8000", "广东省", "深圳市", "南山区")
    assert PHONE not in str(placed)

    # Editing the book later does not change the order.
    members.UpdateAddress(MS.UpdateAddressRequest(
        address_id=home.address_id, recipient="李四", province_code="110000", city_code="110100",
        district_code="110101", detail="别处"), metadata=md)
    again = order.GetOrder(OS.GetOrderRequest(order_id=placed.order_id), metadata=md).order
    assert again.shipping_address == placed.shipping_address


def test_a_named_address_free_over_and_the_default_rule(order, catalog, members):
    mid = new_merchant_id()
    cheap, dear = make_skus(catalog, mid, (1000, 50), (5000, 50))
    _, md = shopper(members, mid)
    add_address(members, md)
    beijing = add_address(members, md, "110000", "110100", "110101")
    xinjiang = add_address(members, md, "650000", "650100", "650102")
    put_template(order, mid)

    assert quote(order, md, (cheap, 2), address_id=beijing.address_id).shipping_fee.amount == 1500
    assert quote(order, md, (cheap, 1), address_id=xinjiang.address_id).shipping_fee.amount == 3000
    free = quote(order, md, (dear, 2), address_id=xinjiang.address_id)
    assert (free.shipping_fee.amount, free.shipping_rule) == (0, "free over ¥99")
    placed = place(order, md, "k", (cheap, 2), address_id=beijing.address_id)
    assert placed.shipping_fee.amount == 1500 and placed.shipping_address.city_code == "110100"


def test_an_excluded_region_or_an_unknown_address_is_refused_with_nothing_reserved(order, catalog, members):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 5))
    _, md = shopper(members, mid)
    tibet = add_address(members, md, "540000", "540100", "540102")
    put_template(order, mid)

    for call in (lambda: quote(order, md, (sku, 1)), lambda: place(order, md, "k", (sku, 1)),
                 lambda: place(order, md, "k2", (sku, 1), address_id=tibet.address_id)):
        error = rpc_error(call)
        assert (error.code(), reason(error)) == (grpc.StatusCode.FAILED_PRECONDITION, "REGION_NOT_SHIPPED")
    error = rpc_error(place, order, md, "k3", (sku, 1), address_id=new_id("adr"))
    assert (error.code(), reason(error)) == (grpc.StatusCode.NOT_FOUND, "ADDRESS_NOT_FOUND")
    error = rpc_error(place, order, md, "k4", (sku, 1), address_id="home")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "address_id" in field_violations(error)
    assert stock(catalog, mid, sku).available == 5
    assert not order.ListMyOrders(OS.ListMyOrdersRequest(), metadata=md).orders


def test_without_an_address_or_a_template_orders_work_as_before(order, catalog, members):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 5))
    _, md = shopper(members, mid)
    order.UpdateOrderSettings(OS.UpdateOrderSettingsRequest(settings=OS.OrderSettings(
        unpaid_expiry_seconds=1800, flash_sale_expiry_seconds=600, auto_confirm_days=10, after_sales_days=7,
        shipping_fee=cny(600))), metadata=staff(mid))
    placed = place(order, md, "k", (sku, 1))
    assert (placed.shipping_fee.amount, placed.shipping_rule, placed.HasField("shipping_address")) == (
        600, "flat ¥6", False)
    put_template(order, mid)  # no address: the template's default rule
    placed = place(order, md, "k2", (sku, 2))
    assert (placed.shipping_fee.amount, placed.shipping_rule) == (1500, TEMPLATE.default_rule.name + ": first 1 unit "
                                                                  "¥10 + ¥5 per 1 unit more")


def test_staff_see_the_full_phone_only_when_they_ship(order, catalog, members):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 5))
    _, md = shopper(members, mid)
    add_address(members, md)
    placed = place(order, md, "k", (sku, 1))
    for roles, phone in ((("OWNER",), PHONE), (("OPERATOR",), PHONE), (("FINANCE",), "138****8000")):
        seen = order.GetOrderAsStaff(OS.GetOrderAsStaffRequest(order_id=placed.order_id),
                                     metadata=staff_as(mid, *roles)).order
        assert seen.shipping_address.phone == phone
    listed = order.SearchOrders(OS.SearchOrdersRequest(), metadata=staff_as(mid, "OPERATOR")).orders
    assert [o.shipping_address.phone for o in listed] == ["138****8000"]


def test_a_guide_reads_orders_with_the_address_masked(order, catalog, members):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 5))
    _, md = shopper(members, mid)
    add_address(members, md)
    placed = place(order, md, "k", (sku, 1))
    guide = staff_as(mid, "GUIDE")
    seen = order.GetOrderAsStaff(OS.GetOrderAsStaffRequest(order_id=placed.order_id), metadata=guide).order
    [listed] = order.SearchOrders(OS.SearchOrdersRequest(), metadata=guide).orders
    for a in (seen.shipping_address, listed.shipping_address):
        assert (a.recipient, a.phone, a.detail) == ("张*", "138****8000", "")
        assert (a.province_name, a.city_name, a.district_name, a.district_code) == ("广东省", "深圳市", "南山区", "440305")
    for roles in (("FINANCE",), ("OPERATOR",)):
        full = order.GetOrderAsStaff(OS.GetOrderAsStaffRequest(order_id=placed.order_id),
                                     metadata=staff_as(mid, *roles)).order.shipping_address
        assert (full.recipient, full.detail) == ("张三", "科技园 1 号")
    # Another merchant's guide finds nothing.
    other = staff_as(new_merchant_id(), "GUIDE")
    assert rpc_error(order.GetOrderAsStaff, OS.GetOrderAsStaffRequest(order_id=placed.order_id),
                     metadata=other).code() == grpc.StatusCode.NOT_FOUND
    assert order.SearchOrders(OS.SearchOrdersRequest(), metadata=other).orders == []


def test_the_template_rpcs_check_roles_versions_merchants_and_input(order):
    mid, other = new_merchant_id(), new_merchant_id()
    got = order.GetFreightTemplate(OS.GetFreightTemplateRequest(), metadata=staff_as(mid, "OPERATOR"))
    assert not got.configured
    saved = put_template(order, mid)
    assert saved.version == 1 and list(saved.excluded_regions) == ["540000"]
    got = order.GetFreightTemplate(OS.GetFreightTemplateRequest(), metadata=staff_as(mid, "OPERATOR"))
    assert got.configured and got.template == saved
    assert not order.GetFreightTemplate(OS.GetFreightTemplateRequest(), metadata=staff(other)).configured

    error = rpc_error(put_template, order, mid, TEMPLATE, 7)
    assert (error.code(), reason(error)) == (grpc.StatusCode.ABORTED, "VERSION_CONFLICT")
    for roles in (("GUIDE",), ("FINANCE",)):
        for call, request in ((order.PutFreightTemplate, OS.PutFreightTemplateRequest(template=TEMPLATE)),
                              (order.GetFreightTemplate, OS.GetFreightTemplateRequest())):
            assert rpc_error(call, request, metadata=staff_as(mid, *roles)).code() == \
                grpc.StatusCode.PERMISSION_DENIED
    bad = OS.FreightTemplate(default_rule=rule("d", 100, 0), rules=[rule("x", 1, 1, "44")],
                             excluded_regions=["440000"], free_shipping_tiers=["VIP"])
    error = rpc_error(order.PutFreightTemplate, OS.PutFreightTemplateRequest(template=bad), metadata=staff(mid))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"template.rules[0].regions[0]", "template.free_shipping_tiers[0]"} <= set(field_violations(error))
    clash = OS.FreightTemplate(default_rule=rule("d", 100, 0), rules=[rule("x", 1, 1, "440000")],
                               excluded_regions=["440000"])
    error = rpc_error(order.PutFreightTemplate, OS.PutFreightTemplateRequest(template=clash), metadata=staff(mid))
    assert "template.excluded_regions[0]" in field_violations(error)
    got = order.GetFreightTemplate(OS.GetFreightTemplateRequest(), metadata=staff(mid))
    assert got.template.version == 1  # nothing written


def test_an_order_placed_right_after_the_default_changes_ships_to_the_new_default(order, catalog, members):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (2000, 50))
    _, md = shopper(members, mid)
    home = add_address(members, md)
    put_template(order, mid)
    assert quote(order, md, (sku, 1)).shipping_address.address_id == home.address_id  # the checkout page
    beijing = add_address(members, md, "110000", "110100", "110101")
    members.SetDefaultAddress(MS.SetDefaultAddressRequest(address_id=beijing.address_id), metadata=md)
    placed = place(order, md, "k-now", (sku, 1))  # at once, no address named
    assert placed.shipping_address.address_id == beijing.address_id
    assert placed.shipping_address.city_name == "北京市" and placed.shipping_fee.amount == 1000
