"""My price against the real catalog and member services: a member's listing and product
page carry their tier price (read once per page from the member service), nobody else's."""
from __future__ import annotations

from siyu.catalog.v1 import catalog_pb2 as pb, catalog_pb2_grpc
from siyu.member.v1 import member_pb2_grpc

from tests.support import metadata, new_merchant_id, stub_fixture
from tests.support.catalog import sku_input, staff
from tests.support.member import login

catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
members = stub_fixture("member", member_pb2_grpc.MemberServiceStub)


def mine(product) -> dict:
    return {s.code: (s.member_price.amount if s.HasField("member_price") else None, s.member_price_kind)
            for s in product.skus}


def test_a_members_pages_carry_their_tier_price(catalog, members):
    m = new_merchant_id()
    regular = sku_input("R", price=1000)
    regular.tier_prices.add(tier="REGULAR", price={"amount": 880})
    gold_only = sku_input("G", price=1000)
    gold_only.tier_prices.add(tier="GOLD", price={"amount": 800})
    product = catalog.UpsertProduct(pb.UpsertProductRequest(
        code="MP", title="Member price", status=pb.PRODUCT_STATUS_ON_SHELF, skus=[regular, gold_only]),
        metadata=staff(m)).product
    member_id = login(members, m, "u-my-price").member.member_id
    as_member = metadata(m, channel="H5", member_id=member_id)

    page = catalog.GetProduct(pb.GetProductRequest(product_id=product.product_id), metadata=as_member).product
    # A REGULAR member: their own tier's price; the GOLD price is not theirs.
    assert mine(page) == {"R": (880, "TIER_DISCOUNT"), "G": (None, "")}
    listed = catalog.ListProducts(pb.ListProductsRequest(), metadata=as_member).products
    assert [mine(p) for p in listed] == [mine(page)]
    # A channel call without a member, or a member of no such merchant: list prices only.
    anonymous = catalog.GetProduct(pb.GetProductRequest(product_id=product.product_id),
                                   metadata=metadata(m, channel="H5")).product
    assert mine(anonymous) == {"R": (None, ""), "G": (None, "")}
    stranger = catalog.GetProduct(pb.GetProductRequest(product_id=product.product_id),
                                  metadata=metadata(m, channel="H5", member_id="mem_01J00000000000000000000000")).product
    # A member id the member service does not know still gets the page.
    assert len(stranger.skus) == 2 and all(s.list_price.amount == 1000 for s in stranger.skus)
