"""Checkout pricing and the merchant's order settings over the real order, catalog and
member services: the quote equals what the order charges, member tiers and activity
prices, threshold reductions and shipping, and the staff settings RPCs."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest
from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from siyu.common.v1 import common_pb2
from siyu.member.v1 import member_pb2, member_pb2_grpc
from siyu.order.v1 import order_pb2 as OS, order_pb2_grpc

from siyu_kit import clients, config, context, db, errors
from siyu_kit.context import RequestContext
from siyu_kit.ids import new_id
from siyu_kit.protos import timestamp, utcnow
from tests.integration.test_member_members import login, order_paid, publish
from tests.integration.test_order_api import make_skus, member, my_orders, place, reason, staff, stock
from tests.support import field_violations, metadata, new_merchant_id, rpc_error, stub_fixture, wait_until

from services.order.adapters.cart import MongoCarts
from services.order.adapters.catalog import CatalogClient
from services.order.adapters.member import MemberClient
from services.order.adapters.repositories import MongoSettings
from services.order.application.checkout import Checkout

order = stub_fixture("order", order_pb2_grpc.OrderServiceStub)
catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
members = stub_fixture("member", member_pb2_grpc.MemberServiceStub)


def cny(amount: int) -> common_pb2.Money:
    return common_pb2.Money(amount=amount, currency="CNY")


def quote(order, md, *lines: tuple[str, int]) -> OS.CheckoutQuote:
    return order.QuoteCheckout(OS.QuoteCheckoutRequest(
        lines=[OS.OrderLineInput(sku_id=s, quantity=q) for s, q in lines]), metadata=md).quote


def settings_of(order, md) -> OS.OrderSettings:
    return order.GetOrderSettings(OS.GetOrderSettingsRequest(), metadata=md).settings


def update_settings(order, md, expected_version: int = 0, **fields) -> OS.OrderSettings:
    wanted = dict(unpaid_expiry_seconds=1800, flash_sale_expiry_seconds=600, auto_confirm_days=10,
                  after_sales_days=7)
    wanted.update(fields)
    return order.UpdateOrderSettings(OS.UpdateOrderSettingsRequest(
        settings=OS.OrderSettings(**wanted), expected_version=expected_version), metadata=md).settings


def reductions(*pairs: tuple[int, int]) -> list[OS.ThresholdReduction]:
    return [OS.ThresholdReduction(threshold=cny(t), reduction=cny(r)) for t, r in pairs]


def steps(items) -> list[tuple[str, int, str]]:
    return [(s.step, s.amount.amount, s.detail) for s in items]


def silver_member(stack, members, mid: str) -> str:
    """A real member who paid ¥1,000 and so reached the silver tier (95%)."""
    member_id = login(members, mid, f"u-{new_id('x')[-8:]}").member.member_id
    asyncio.run(publish(stack, order_paid(mid, member_id, new_id("ord"), 100_000)))
    wait_until(lambda: members.GetMe(member_pb2.GetMeRequest(), metadata=member(mid, member_id)).member.tier
               == member_pb2.TIER_SILVER, message="silver tier")
    return member_id


def test_quote_equals_what_the_order_charges(stack, order, catalog, members):
    mid = new_merchant_id()
    owner = staff(mid)
    update_settings(order, owner, threshold_reductions=reductions((10_000, 1_000), (30_000, 5_000)),
                    shipping_fee=cny(800), free_shipping_over=cny(50_000))
    now = utcnow()
    resp = catalog.UpsertProduct(catalog_pb2.UpsertProductRequest(
        code=f"P{new_id('x')[-10:]}", title="连衣裙", status=catalog_pb2.PRODUCT_STATUS_ON_SHELF,
        skus=[catalog_pb2.SkuInput(code="tier", list_price=cny(10_000), initial_stock=10,
                                   tier_prices=[catalog_pb2.TierPrice(tier="SILVER", price=cny(9_000))]),
              catalog_pb2.SkuInput(code="rate", list_price=cny(3_333), initial_stock=10),
              catalog_pb2.SkuInput(code="limited", list_price=cny(5_000), initial_stock=10,
                                   limited_time_price=catalog_pb2.LimitedTimePrice(
                                       price=cny(4_000), starts_at=timestamp(now - timedelta(hours=1)),
                                       ends_at=timestamp(now + timedelta(hours=1))))]), metadata=owner)
    sku = {s.code: s.sku_id for s in resp.product.skus}
    md = member(mid, silver_member(stack, members, mid))
    lines = ((sku["tier"], 2), (sku["rate"], 3), (sku["limited"], 1))

    q = quote(order, md, *lines)
    assert q.tier == "SILVER"
    # The SKU's own silver price; 3,333 × 95% = 3,166.35 → 3,166; the limited price beats 95%.
    assert [steps(l.steps)[0] for l in q.lines] == [("TIER_DISCOUNT", 2_000, "SILVER"), ("TIER_DISCOUNT", 501, "SILVER"),
                                                     ("LIMITED_TIME_PRICE", 1_000, "")]
    assert [l.line_amount.amount for l in q.lines] == [18_000, 9_498, 4_000]
    assert (q.total.amount, q.line_discount.amount) == (34_999, 3_501)
    # 31,498 reaches the 30,000 rule; 26,498 after it is under 50,000: shipping is charged.
    assert steps(q.order_steps) == [("THRESHOLD_REDUCTION", 5_000, "threshold=30000,reduction=5000")]
    assert (q.order_discount.amount, q.shipping_fee.amount, q.payable.amount) == (5_000, 800, 27_298)
    assert sum(l.paid_amount.amount for l in q.lines) + q.shipping_fee.amount == q.payable.amount
    for l in q.lines:
        assert l.line_total.amount - sum(s.amount.amount for s in l.steps) == l.paid_amount.amount

    placed = place(order, md, "k", *lines)
    assert placed.payable == q.payable and placed.total == q.total and placed.shipping_fee == q.shipping_fee
    assert [(l.sku_id, l.line_amount, l.paid_amount, list(l.steps)) for l in placed.lines] == \
        [(l.sku_id, l.line_amount, l.paid_amount, list(l.steps)) for l in q.lines]
    assert list(placed.order_steps) == list(q.order_steps)
    assert order.GetOrder(OS.GetOrderRequest(order_id=placed.order_id), metadata=md).order == placed


def test_a_regular_member_pays_the_list_price_and_the_quote_changes_nothing(order, catalog, members):
    mid = new_merchant_id()
    (a,) = make_skus(catalog, mid, (1_999, 5))
    md = member(mid, login(members, mid, "u-regular").member.member_id)
    q = quote(order, md, (a, 2))
    assert q.tier == "REGULAR" and q.payable.amount == 3_998 and list(q.lines[0].steps) == []
    assert stock(catalog, mid, a).reserved == 0 and my_orders(order, md) == []


def test_quote_of_the_carts_selected_items(order, catalog):
    mid = new_merchant_id()
    a, b = make_skus(catalog, mid, (100, 5), (200, 5))
    md = member(mid)
    error = rpc_error(order.QuoteCheckout, OS.QuoteCheckoutRequest(), metadata=md)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "CART_EMPTY"
    order.AddCartItem(OS.AddCartItemRequest(sku_id=a, quantity=2), metadata=md)
    order.AddCartItem(OS.AddCartItemRequest(sku_id=b, quantity=1), metadata=md)
    order.UpdateCartItem(OS.UpdateCartItemRequest(sku_id=b, quantity=1, selected=False), metadata=md)
    q = order.QuoteCheckout(OS.QuoteCheckoutRequest(), metadata=md).quote
    assert [(l.sku_id, l.quantity) for l in q.lines] == [(a, 2)] and q.payable.amount == 200


def test_bad_quote_input_is_rejected_like_place_order(order, catalog):
    mid = new_merchant_id()
    (a,) = make_skus(catalog, mid, (100, 5))
    (elsewhere,) = make_skus(catalog, new_merchant_id(), (100, 5))
    md = member(mid)
    bad = [OS.OrderLineInput(sku_id=a, quantity=1), OS.OrderLineInput(sku_id=a, quantity=1000),
           OS.OrderLineInput(sku_id="prd_1", quantity=0)]
    error = rpc_error(order.QuoteCheckout, OS.QuoteCheckoutRequest(lines=bad), metadata=md)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"lines[1].quantity", "lines[2].sku_id", "lines[2].quantity"}
    # One line per SKU is judged once every line is well-formed.
    error = rpc_error(order.QuoteCheckout, OS.QuoteCheckoutRequest(lines=bad[:1] * 2), metadata=md)
    assert set(field_violations(error)) == {"lines[1].sku_id"}
    too_many = [OS.OrderLineInput(sku_id=new_id("sku"), quantity=1) for _ in range(51)]
    error = rpc_error(order.QuoteCheckout, OS.QuoteCheckoutRequest(lines=too_many), metadata=md)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and set(field_violations(error)) == {"lines"}
    # Another merchant's SKU does not exist here.
    error = rpc_error(quote, order, md, (a, 1), (elsewhere, 1))
    assert error.code() == grpc.StatusCode.NOT_FOUND and set(field_violations(error)) == {"lines[1].sku_id"}
    error = rpc_error(order.QuoteCheckout, OS.QuoteCheckoutRequest(lines=bad[:1]), metadata=staff(mid))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.fixture(scope="module")
def storage(stack):
    db.connect(stack.mongodb_uri, config.load("order").mongodb_db, threads=4)


async def test_no_tier_no_price_when_the_member_service_is_unreachable(stack, storage, catalog):
    mid = new_merchant_id()
    (a,) = make_skus(catalog, mid, (100, 5))
    checkout = Checkout(catalog=CatalogClient(clients.channel(f"127.0.0.1:{stack.ports['catalog']}", "order")),
                        members=MemberClient(clients.channel("127.0.0.1:1", "order")), settings=MongoSettings(),
                        carts=MongoCarts())
    member_id = new_id("mem")
    token = context.use(RequestContext(merchant_id=mid, channel="H5", caller_kind="member", caller_id=member_id))
    try:
        with pytest.raises(errors.Unavailable) as info:
            await checkout.quote([(a, 1)])
    finally:
        context.reset(token)
    assert info.value.reason == "MEMBER_UNAVAILABLE"


# Order settings

def test_settings_start_at_the_defaults_and_change_with_a_version_check(order, catalog):
    mid = new_merchant_id()
    owner = staff(mid)
    operator = metadata(mid, staff_id=new_id("stf"), roles=("OPERATOR",))
    defaults = settings_of(order, operator)
    assert (defaults.unpaid_expiry_seconds, defaults.flash_sale_expiry_seconds, defaults.auto_confirm_days,
            defaults.after_sales_days, defaults.version) == (1800, 600, 10, 7, 0)
    assert list(defaults.threshold_reductions) == [] and defaults.shipping_fee.amount == 0

    first = update_settings(order, owner, unpaid_expiry_seconds=5, threshold_reductions=reductions((5_000, 500)),
                            shipping_fee=cny(1_000), free_shipping_over=cny(9_900))
    assert first.version == 1 and first.unpaid_expiry_seconds == 5
    assert settings_of(order, operator) == first
    second = update_settings(order, owner, expected_version=1, auto_confirm_days=15)
    assert second.version == 2 and second.auto_confirm_days == 15 and list(second.threshold_reductions) == []
    error = rpc_error(update_settings, order, owner, expected_version=1, after_sales_days=0)
    assert error.code() == grpc.StatusCode.ABORTED
    assert settings_of(order, owner) == second

    # The order path uses them at once.
    (a,) = make_skus(catalog, mid, (6_000, 5))
    update_settings(order, owner, expected_version=2, unpaid_expiry_seconds=60,
                    threshold_reductions=reductions((5_000, 500)), shipping_fee=cny(1_000))
    placed = place(order, member(mid), "k", (a, 1))
    assert placed.expires_at.seconds - placed.created_at.seconds == 60
    assert (placed.payable.amount, placed.shipping_fee.amount) == (6_000 - 500 + 1_000, 1_000)


def test_bad_settings_are_rejected_and_change_nothing(order):
    mid = new_merchant_id()
    owner = staff(mid)
    before = update_settings(order, owner, shipping_fee=cny(500))
    cases = [
        (dict(unpaid_expiry_seconds=0, flash_sale_expiry_seconds=7 * 86400 + 1, auto_confirm_days=31,
              after_sales_days=-1),
         {"settings.unpaid_expiry_seconds", "settings.flash_sale_expiry_seconds", "settings.auto_confirm_days",
          "settings.after_sales_days"}),
        (dict(threshold_reductions=reductions((10_000, 10_000), (5_000, 100), (0, 0))),
         {"settings.threshold_reductions[0].reduction", "settings.threshold_reductions[1].threshold",
          "settings.threshold_reductions[2].threshold", "settings.threshold_reductions[2].reduction"}),
        (dict(threshold_reductions=reductions(*[(100 * (i + 1), 1) for i in range(11)])),
         {"settings.threshold_reductions"}),
        (dict(shipping_fee=cny(-1), free_shipping_over=common_pb2.Money(amount=100, currency="USD")),
         {"settings.shipping_fee.amount", "settings.free_shipping_over.currency"}),
        # Beyond the bound that keeps every total inside int64.
        (dict(shipping_fee=cny(10_000_000_001)), {"settings.shipping_fee.amount"}),
    ]
    for fields, expected in cases:
        error = rpc_error(update_settings, order, owner, **fields)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, fields
        assert set(field_violations(error)) == expected
    error = rpc_error(update_settings, order, owner, expected_version=-1)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and set(field_violations(error)) == {"expected_version"}
    assert settings_of(order, owner) == before


def test_settings_belong_to_the_staff_of_their_merchant(order):
    mid, other = new_merchant_id(), new_merchant_id()
    mine = update_settings(order, staff(mid), unpaid_expiry_seconds=120)
    assert settings_of(order, staff(other)).version == 0
    update_settings(order, staff(other), unpaid_expiry_seconds=300)
    assert settings_of(order, staff(mid)) == mine
    operator = metadata(mid, staff_id=new_id("stf"), roles=("OPERATOR",))
    finance = metadata(mid, staff_id=new_id("stf"), roles=("FINANCE",))
    assert rpc_error(update_settings, order, operator).code() == grpc.StatusCode.PERMISSION_DENIED
    assert rpc_error(settings_of, order, finance).code() == grpc.StatusCode.PERMISSION_DENIED
    for caller in (member(mid), metadata(mid, channel="H5"), ()):
        assert rpc_error(settings_of, order, caller).code() == grpc.StatusCode.UNAUTHENTICATED
        assert rpc_error(update_settings, order, caller).code() == grpc.StatusCode.UNAUTHENTICATED
    assert settings_of(order, staff(mid)) == mine
