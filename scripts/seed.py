"""Creates the demo merchant through the services' own gRPC APIs: channel keys for
MINI_PROGRAM, H5 and LIVE, an owner, a small catalog, a persona and an article that
features a product. Every call is an upsert by code (categories are looked up by name under
their parent first), so seeding twice duplicates nothing.

    python -m scripts.seed          # against the addresses in SIYU_*_ADDR
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from siyu.common.v1 import common_pb2
from siyu.content.v1 import content_pb2, content_pb2_grpc
from siyu.member.v1 import member_pb2, member_pb2_grpc
from siyu.order.v1 import order_pb2_grpc

from siyu_kit.config import DEFAULT_GRPC_PORTS, DEV_PLATFORM_TOKEN
from siyu_kit import trust
from siyu_kit.context import RequestContext

DEMO_MERCHANT = "demo"
DEMO_KEYS = {"MINI_PROGRAM": "demo-mini-program-key-0001", "H5": "demo-h5-channel-key-0001", "LIVE": "demo-live-room-key-0001"}
DEMO_STAFF = ("owner", "demo-owner-pass")

CATALOG = [
    {"code": "dress-floral", "title": "夏季碎花连衣裙 Floral Summer Dress", "category": ("服装", "女装"),
     "tags": ["summer", "new"], "skus": [
         {"code": "dress-floral-red-m", "attributes": {"颜色": "红", "尺码": "M"}, "price": 19900, "stock": 100, "weight_g": 300},
         {"code": "dress-floral-blue-m", "attributes": {"颜色": "蓝", "尺码": "M"}, "price": 19900, "stock": 100, "weight_g": 300}]},
    {"code": "tee-organic", "title": "有机棉T恤 Organic Cotton Tee", "category": ("服装", "基础款"),
     "tags": ["basics"], "skus": [
         {"code": "tee-organic-white-l", "attributes": {"颜色": "白", "尺码": "L"}, "price": 15900, "stock": 200, "weight_g": 250}]},
    {"code": "baby-lotion", "title": "婴儿润肤霜 Baby Lotion 200ml", "category": ("母婴", "婴儿护理"),
     "tags": ["baby", "care"], "skus": [
         {"code": "baby-lotion-200", "attributes": {"规格": "200ml"}, "price": 8900, "stock": 50, "weight_g": 260}]},
]


@dataclass
class Clients:
    member: member_pb2_grpc.MemberServiceStub
    catalog: catalog_pb2_grpc.CatalogServiceStub
    content: content_pb2_grpc.ContentServiceStub
    order: order_pb2_grpc.OrderServiceStub

    @classmethod
    def from_env(cls, env: dict[str, str]) -> "Clients":
        def addr(name: str) -> str:
            return env.get(f"SIYU_{name.upper()}_ADDR", f"127.0.0.1:{DEFAULT_GRPC_PORTS[name]}")
        return cls(member_pb2_grpc.MemberServiceStub(trust.resigning_channel(addr("member"))),
                   catalog_pb2_grpc.CatalogServiceStub(trust.resigning_channel(addr("catalog"))),
                   content_pb2_grpc.ContentServiceStub(trust.resigning_channel(addr("content"))),
                   order_pb2_grpc.OrderServiceStub(trust.resigning_channel(addr("order"))))


def _operator(merchant_id: str = "", staff_id: str = "") -> tuple[tuple[str, str], ...]:
    """Operator tooling calls as a service; staff calls act as the merchant's owner."""
    kind = "staff" if staff_id else ""
    return RequestContext(merchant_id=merchant_id, caller_kind=kind, caller_id=staff_id,
                          roles=("OWNER",) if staff_id else (), calling_service="seed").to_metadata()


def seed_merchant(clients: Clients, code: str, name: str, api_keys: dict[str, str],
                  staff: tuple[str, str]) -> dict:
    md = _operator()
    merchant = clients.member.UpsertMerchant(
        member_pb2.UpsertMerchantRequest(code=code, name=name, time_zone="Asia/Shanghai"), metadata=md).merchant
    mid = merchant.merchant_id
    for channel, key in api_keys.items():
        clients.member.UpsertApiKey(member_pb2.UpsertApiKeyRequest(
            merchant_id=mid, channel=common_pb2.Channel.Value(f"CHANNEL_{channel}"), api_key=key), metadata=md)
    staff_id = clients.member.UpsertStaffUser(member_pb2.UpsertStaffUserRequest(
        merchant_id=mid, username=staff[0], password=staff[1], roles=[common_pb2.STAFF_ROLE_OWNER]),
        metadata=md).staff_id

    as_owner = _operator(mid, staff_id)
    products = {}
    for item in CATALOG:
        product = clients.catalog.UpsertProduct(catalog_pb2.UpsertProductRequest(
            code=item["code"], title=item["title"], category_id=_category(clients, as_owner, item["category"]),
            tags=item["tags"],
            description=f"{item['title']} — demo product", status=catalog_pb2.PRODUCT_STATUS_ON_SHELF,
            skus=[catalog_pb2.SkuInput(code=s["code"], attributes=s["attributes"],
                                       list_price=common_pb2.Money(amount=s["price"], currency="CNY"),
                                       initial_stock=s["stock"], weight_g=s["weight_g"]) for s in item["skus"]]),
            metadata=as_owner).product
        products[item["code"]] = product
    persona = clients.content.UpsertPersona(content_pb2.UpsertPersonaRequest(
        code="xiaomei", name="育儿顾问小美", expertise="育儿顾问", bio="两个孩子的妈妈，分享真实的育儿好物。",
        tone="warm"), metadata=as_owner).persona
    lotion = products["baby-lotion"]
    content = clients.content.UpsertContent(content_pb2.UpsertContentRequest(
        code="lotion-review", persona_id=persona.persona_id, type=content_pb2.CONTENT_TYPE_ARTICLE,
        title="秋冬宝宝润肤怎么选", body="小美的真实测评……", product_ids=[lotion.product_id],
        status=content_pb2.CONTENT_STATUS_PUBLISHED), metadata=as_owner).content
    return {
        "merchant_id": mid, "merchant_code": code, "api_keys": dict(api_keys),
        "staff_username": staff[0], "staff_password": staff[1], "staff_id": staff_id,
        "persona_id": persona.persona_id, "content_id": content.content_id,
        "products": {c: {"product_id": p.product_id, "skus": [s.sku_id for s in p.skus]} for c, p in products.items()},
    }


def _category(clients: Clients, md, path: tuple[str, ...]) -> str:
    """The id of the category at `path` (names from the root), creating what is missing."""
    existing = {(c.parent_id, c.name): c.category_id
                for c in clients.catalog.ListCategories(catalog_pb2.ListCategoriesRequest(), metadata=md).categories}
    parent_id = ""
    for name in path:
        found = existing.get((parent_id, name))
        if found is None:
            found = clients.catalog.CreateCategory(catalog_pb2.CreateCategoryRequest(name=name, parent_id=parent_id),
                                                   metadata=md).category.category_id
        parent_id = existing[(parent_id, name)] = found
    return parent_id


def seed(env: dict[str, str] | None = None) -> dict:
    env = dict(env if env is not None else os.environ)
    clients = Clients.from_env(env)
    demo = seed_merchant(clients, DEMO_MERCHANT, "Siyu Demo Store", DEMO_KEYS, DEMO_STAFF)
    # The platform operator's bearer token the gateway accepts (onboarding merchants).
    demo["platform_token"] = env.get("SIYU_PLATFORM_TOKEN", DEV_PLATFORM_TOKEN)
    return demo


if __name__ == "__main__":
    print(json.dumps(seed(), ensure_ascii=False, indent=2))
