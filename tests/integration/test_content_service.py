"""ContentService over its real gRPC port, against the embedded MongoDB and NATS.

Run alone with: SIYU_TEST_ONLY=catalog,content .venv/bin/python -m pytest tests/integration/test_content_service.py
(content asks the catalog whether linked products exist).
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import grpc
import nats
import pytest
from siyu.common.v1 import common_pb2
from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from siyu.content.v1 import content_pb2 as pb, content_pb2_grpc
from siyu.order.v1 import events_pb2, order_pb2

from siyu_kit.events.outbox import make_event
from siyu_kit.ids import new_id
from tests import support
from tests.support import field_violations, metadata, new_merchant_id, wait_until, database_fixture, stub_fixture


stub = stub_fixture("content", content_pb2_grpc.ContentServiceStub)
catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
db = database_fixture("content")


def staff(merchant: str, *roles: str):
    return metadata(merchant, staff_id=new_id("stf"), roles=roles or ("OPERATOR",))


def h5(merchant: str):
    return metadata(merchant, channel="H5")


def rpc_error(call, request, md) -> grpc.RpcError:
    return support.rpc_error(call, request, metadata=md)


def upsert_persona(stub, merchant: str, code: str = "mama-lin", **extra) -> pb.UpsertPersonaResponse:
    request = pb.UpsertPersonaRequest(code=code, name=extra.pop("name", "林老师"), expertise="育儿顾问",
                                      bio="两个孩子的妈妈", tone="温柔", **extra)
    return stub.UpsertPersona(request, metadata=staff(merchant))


def upsert_content(stub, merchant: str, persona_id: str, code: str = "spring-care", *,
                   status=pb.CONTENT_STATUS_PUBLISHED, title: str = "春季宝宝护肤", roles=("OPERATOR",),
                   product_ids=None, md=None) -> pb.UpsertContentResponse:
    request = pb.UpsertContentRequest(
        code=code, persona_id=persona_id, type=pb.CONTENT_TYPE_ARTICLE, title=title, body="正文",
        product_ids=product_ids or [], status=status)
    if status == pb.CONTENT_STATUS_SCHEDULED:  # scheduled content names its time, an hour ahead
        request.publish_at.FromMilliseconds(int(datetime.now(timezone.utc).timestamp() * 1000) + 3_600_000)
    return stub.UpsertContent(request, metadata=md or staff(merchant, *roles))


def new_product(catalog, merchant: str, status=catalog_pb2.PRODUCT_STATUS_DRAFT) -> str:
    code = new_id("p")[-12:]
    return catalog.UpsertProduct(catalog_pb2.UpsertProductRequest(
        code=code, title="润肤乳", status=status,
        skus=[catalog_pb2.SkuInput(code=f"{code}-1", list_price=common_pb2.Money(amount=9900))]),
        metadata=staff(merchant)).product.product_id


# ---- personas and content --------------------------------------------------------

def test_upserting_a_persona_twice_keeps_one(stub, db):
    merchant = new_merchant_id()
    first = upsert_persona(stub, merchant)
    again = upsert_persona(stub, merchant)
    assert first.created and not again.created
    assert first.persona.persona_id.startswith("per_")
    assert again.persona == first.persona
    renamed = upsert_persona(stub, merchant, name="林老师2")
    assert not renamed.created
    assert renamed.persona.persona_id == first.persona.persona_id and renamed.persona.name == "林老师2"
    docs = list(db.personas.find({"merchant_id": merchant}))
    assert len(docs) == 1
    assert docs[0]["version"] == 2  # the unchanged re-upsert wrote nothing


def test_upserting_content_twice_keeps_one_and_publishing_stamps_time(stub, catalog, db):
    merchant = new_merchant_id()
    persona = upsert_persona(stub, merchant).persona
    # Products in any status may be linked, drafts too.
    products = [new_product(catalog, merchant), new_product(catalog, merchant, catalog_pb2.PRODUCT_STATUS_ON_SHELF)]
    draft = upsert_content(stub, merchant, persona.persona_id, status=pb.CONTENT_STATUS_DRAFT, product_ids=products)
    assert draft.created and draft.content.content_id.startswith("cnt_")
    assert draft.content.status == pb.CONTENT_STATUS_DRAFT
    assert not draft.content.HasField("published_at")
    same = upsert_content(stub, merchant, persona.persona_id, status=pb.CONTENT_STATUS_DRAFT, product_ids=products)
    assert not same.created and same.content == draft.content
    published = upsert_content(stub, merchant, persona.persona_id, product_ids=products)
    assert published.content.content_id == draft.content.content_id
    assert published.content.status == pb.CONTENT_STATUS_PUBLISHED
    assert published.content.HasField("published_at")
    assert list(published.content.product_ids) == products
    docs = list(db.contents.find({"merchant_id": merchant}))
    assert len(docs) == 1 and docs[0]["version"] == 2


def test_illegal_transition_is_refused_and_changes_nothing(stub, db):
    merchant = new_merchant_id()
    persona = upsert_persona(stub, merchant).persona
    published = upsert_content(stub, merchant, persona.persona_id).content
    error = rpc_error(stub.UpsertContent, pb.UpsertContentRequest(
        code="spring-care", persona_id=persona.persona_id, type=pb.CONTENT_TYPE_ARTICLE, title="改回草稿",
        status=pb.CONTENT_STATUS_DRAFT), staff(merchant))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    doc = db.contents.find_one({"_id": published.content_id, "merchant_id": merchant})
    assert doc["status"] == "PUBLISHED" and doc["title"] == "春季宝宝护肤" and doc["version"] == 1
    archived = upsert_content(stub, merchant, persona.persona_id, status=pb.CONTENT_STATUS_ARCHIVED).content
    assert archived.published_at == published.published_at
    error = rpc_error(stub.UpsertContent, pb.UpsertContentRequest(
        code="spring-care", persona_id=persona.persona_id, type=pb.CONTENT_TYPE_ARTICLE, title="t",
        status=pb.CONTENT_STATUS_PUBLISHED), staff(merchant))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_content_needs_a_persona_of_the_same_merchant(stub, db):
    merchant, other = new_merchant_id(), new_merchant_id()
    theirs = upsert_persona(stub, other).persona
    for persona_id in (theirs.persona_id, new_id("per")):
        error = rpc_error(stub.UpsertContent, pb.UpsertContentRequest(
            code="c1", persona_id=persona_id, type=pb.CONTENT_TYPE_VIDEO, title="视频"), staff(merchant))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert "persona_id" in field_violations(error)
    assert db.contents.count_documents({"merchant_id": merchant}) == 0


def test_get_content_serves_published_content_only(stub):
    merchant = new_merchant_id()
    persona = upsert_persona(stub, merchant).persona
    ids = {}
    for status in (pb.CONTENT_STATUS_DRAFT, pb.CONTENT_STATUS_SCHEDULED, pb.CONTENT_STATUS_PUBLISHED):
        ids[status] = upsert_content(stub, merchant, persona.persona_id, code=f"c{status}", status=status).content
    for status in (pb.CONTENT_STATUS_DRAFT, pb.CONTENT_STATUS_SCHEDULED):
        error = rpc_error(stub.GetContent, pb.GetContentRequest(content_id=ids[status].content_id), h5(merchant))
        assert error.code() == grpc.StatusCode.NOT_FOUND
    got = stub.GetContent(pb.GetContentRequest(content_id=ids[pb.CONTENT_STATUS_PUBLISHED].content_id),
                          metadata=h5(merchant))
    assert got.content == ids[pb.CONTENT_STATUS_PUBLISHED]
    assert got.persona == persona
    upsert_content(stub, merchant, persona.persona_id, code=f"c{pb.CONTENT_STATUS_PUBLISHED}",
                   status=pb.CONTENT_STATUS_ARCHIVED)
    error = rpc_error(stub.GetContent, pb.GetContentRequest(
        content_id=ids[pb.CONTENT_STATUS_PUBLISHED].content_id), h5(merchant))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    # A channel key is needed; a staff token alone carries no channel.
    error = rpc_error(stub.GetContent, pb.GetContentRequest(
        content_id=ids[pb.CONTENT_STATUS_PUBLISHED].content_id), metadata(merchant))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


# ---- isolation and roles -----------------------------------------------------------

def test_another_merchant_can_neither_read_nor_change(stub, db):
    a, b = new_merchant_id(), new_merchant_id()
    persona = upsert_persona(stub, a).persona
    content = upsert_content(stub, a, persona.persona_id).content
    assert rpc_error(stub.GetContent, pb.GetContentRequest(content_id=content.content_id),
                     h5(b)).code() == grpc.StatusCode.NOT_FOUND
    assert rpc_error(stub.GetPersonaFunnel, pb.GetPersonaFunnelRequest(persona_id=persona.persona_id),
                     staff(b)).code() == grpc.StatusCode.NOT_FOUND
    assert rpc_error(stub.GetContentFunnel, pb.GetContentFunnelRequest(content_id=content.content_id),
                     staff(b)).code() == grpc.StatusCode.NOT_FOUND
    # The same codes in B make B's own records; A's stay as they were.
    b_persona = upsert_persona(stub, b, name="另一个人设")
    assert b_persona.created and b_persona.persona.persona_id != persona.persona_id
    b_content = upsert_content(stub, b, b_persona.persona.persona_id, status=pb.CONTENT_STATUS_DRAFT, title="B")
    assert b_content.created and b_content.content.content_id != content.content_id
    assert db.personas.find_one({"_id": persona.persona_id})["name"] == "林老师"
    a_doc = db.contents.find_one({"_id": content.content_id})
    assert a_doc["merchant_id"] == a and a_doc["status"] == "PUBLISHED" and a_doc["version"] == 1
    assert stub.GetContent(pb.GetContentRequest(content_id=content.content_id),
                           metadata=h5(a)).content == content


def test_staff_roles(stub):
    merchant = new_merchant_id()
    persona = upsert_persona(stub, merchant).persona
    guide_id = new_id("stf")
    persona = stub.AssignPersonaGuides(pb.AssignPersonaGuidesRequest(persona_id=persona.persona_id,
                                                                     guide_ids=[guide_id]), metadata=staff(merchant)).persona
    guide = metadata(merchant, staff_id=guide_id, roles=("GUIDE",))
    content = upsert_content(stub, merchant, persona.persona_id, code="by-guide", md=guide).content
    assert stub.GetPersonaFunnel(pb.GetPersonaFunnelRequest(persona_id=persona.persona_id),
                                 metadata=guide).persona == persona
    assert stub.GetContentFunnel(pb.GetContentFunnelRequest(content_id=content.content_id),
                                 metadata=guide).content == content
    assert stub.GetContentFunnel(pb.GetContentFunnelRequest(content_id=content.content_id),
                                 metadata=staff(merchant, "OWNER")).content == content
    member = metadata(merchant, channel="H5", member_id=new_id("mem"))
    finance = staff(merchant, "FINANCE")
    for md, code in ((member, grpc.StatusCode.UNAUTHENTICATED), (finance, grpc.StatusCode.PERMISSION_DENIED)):
        assert rpc_error(stub.GetPersonaFunnel, pb.GetPersonaFunnelRequest(persona_id=persona.persona_id),
                         md).code() == code
        assert rpc_error(stub.GetContentFunnel, pb.GetContentFunnelRequest(content_id=content.content_id),
                         md).code() == code
    # Only operators (and the owner) create personas; a guide edits only their own.
    error = rpc_error(stub.UpsertPersona, pb.UpsertPersonaRequest(code="g", name="导购"), guide)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


# ---- bad input ---------------------------------------------------------------------

def test_bad_persona_is_refused_and_nothing_is_written(stub, db):
    merchant = new_merchant_id()
    error = rpc_error(stub.UpsertPersona, pb.UpsertPersonaRequest(code="bad code!", name="", bio="b" * 501),
                      staff(merchant))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"code", "name", "bio"}
    error = rpc_error(stub.UpsertPersona, pb.UpsertPersonaRequest(code="ok", name="n" * 41), staff(merchant))
    assert set(field_violations(error)) == {"name"}
    assert db.personas.count_documents({"merchant_id": merchant}) == 0


def test_bad_content_is_refused_and_nothing_is_written(stub, db):
    merchant = new_merchant_id()
    persona = upsert_persona(stub, merchant).persona
    error = rpc_error(stub.UpsertContent, pb.UpsertContentRequest(
        code="c", persona_id="someone", title="", product_ids=[new_id("sku"), "prd_x"], status=99),
        staff(merchant))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"persona_id", "type", "title", "product_ids[0]", "product_ids[1]",
                                            "status"}
    error = rpc_error(stub.UpsertContent, pb.UpsertContentRequest(
        code="c", persona_id=persona.persona_id, type=pb.CONTENT_TYPE_SHORT_POST, title="t" * 121),
        staff(merchant))
    assert set(field_violations(error)) == {"title"}
    assert db.contents.count_documents({"merchant_id": merchant}) == 0
    # The code is still free: the first valid upsert creates it.
    assert upsert_content(stub, merchant, persona.persona_id, code="c").created


@pytest.mark.parametrize("call,request_,field,md", [
    ("GetContent", pb.GetContentRequest(content_id="nope"), "content_id", h5),
    ("GetContent", pb.GetContentRequest(), "content_id", h5),
    ("GetPersonaFunnel", pb.GetPersonaFunnelRequest(persona_id=""), "persona_id", staff),
    ("GetPersonaFunnel", pb.GetPersonaFunnelRequest(persona_id=new_id("cnt")), "persona_id", staff),
    ("GetContentFunnel", pb.GetContentFunnelRequest(content_id="cnt_1"), "content_id", staff),
])
def test_bad_ids_on_reads_are_invalid_arguments(stub, call, request_, field, md):
    error = rpc_error(getattr(stub, call), request_, md(new_merchant_id()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error)


# ---- funnels from order events -----------------------------------------------------

def order(merchant: str, amount: int, *, persona_id="", content_id="", live_session_id="") -> order_pb2.Order:
    return order_pb2.Order(
        order_id=new_id("ord"), member_id=new_id("mem"), version=1,
        total=common_pb2.Money(amount=amount, currency="CNY"), payable=common_pb2.Money(amount=amount, currency="CNY"),
        attribution=common_pb2.Attribution(channel=common_pb2.CHANNEL_H5, persona_id=persona_id,
                                           content_id=content_id, live_session_id=live_session_id))


def placed(merchant: str, o: order_pb2.Order, at: datetime):
    return make_event("siyu.order.order.placed", merchant_id=merchant, aggregate_id=o.order_id,
                      aggregate_version=1, payload=events_pb2.OrderPlaced(order=o), channel="H5", occurred_at=at)


def paid(merchant: str, o: order_pb2.Order, at: datetime):
    return make_event("siyu.order.order.paid", merchant_id=merchant, aggregate_id=o.order_id,
                      aggregate_version=2, payload=events_pb2.OrderPaid(order=o), channel="H5", occurred_at=at)


def publish(stack, *items: tuple) -> None:
    """Publishes (event, msg_id) pairs to JetStream as the order service's relay would."""
    async def run():
        nc = await nats.connect(stack.nats_url)
        try:
            js = nc.jetstream()
            for event, msg_id in items:
                await js.publish(event.subject, event.data, headers={"Nats-Msg-Id": msg_id})
        finally:
            await nc.close()
    asyncio.run(run())


def funnel_of(stub, merchant: str, persona_id: str) -> pb.Funnel:
    return stub.GetPersonaFunnel(pb.GetPersonaFunnelRequest(persona_id=persona_id), metadata=staff(merchant)).funnel


def test_order_events_feed_the_funnels_once(stack, stub, db):
    merchant = new_merchant_id()
    persona = upsert_persona(stub, merchant).persona
    content = upsert_content(stub, merchant, persona.persona_id).content
    sentinel = upsert_persona(stub, merchant, code="sentinel").persona
    live = new_id("liv")
    # 16:30 UTC is already the next day in Shanghai.
    at = datetime(2024, 5, 1, 16, 30, tzinfo=timezone.utc)
    o = order(merchant, 12345, persona_id=persona.persona_id, content_id=content.content_id, live_session_id=live)
    first_placed, first_paid = placed(merchant, o, at), paid(merchant, o, at)
    publish(stack, (first_placed, first_placed.event_id), (first_paid, first_paid.event_id))

    def counted():
        f = funnel_of(stub, merchant, persona.persona_id)
        # The channel's bucket is the last an event reaches.
        last = db.funnel_buckets.find_one({"_id": f"{merchant}:channel:H5:2024-05-02"}) or {}
        return f if f.orders == 1 and f.paid_orders == 1 and last.get("paid_orders") == 1 else None
    f = wait_until(counted, message="persona funnel counts the order")
    assert f.gmv.amount == 12345 and f.gmv.currency == "CNY"
    assert f.unique_viewers == 0 and f.product_clicks == 0 and f.conversion_rate_bp == 0
    content_funnel = stub.GetContentFunnel(pb.GetContentFunnelRequest(content_id=content.content_id),
                                           metadata=staff(merchant)).funnel
    assert content_funnel == f
    ids = sorted(d["_id"] for d in db.funnel_buckets.find({"merchant_id": merchant}, {"_id": 1}))
    assert ids == sorted(f"{merchant}:{dim}:{ref}:2024-05-02" for dim, ref in
                         (("persona", persona.persona_id), ("content", content.content_id), ("live_session", live),
                          ("channel", "H5")))
    live_bucket = db.funnel_buckets.find_one({"_id": f"{merchant}:live_session:{live}:2024-05-02"})
    assert (live_bucket["orders"], live_bucket["paid_orders"], live_bucket["gmv"]) == (1, 1, 12345)

    # Replays: the same message id (JetStream drops it) and a new one (the consumer must).
    publish(stack, (first_placed, first_placed.event_id), (first_paid, first_paid.event_id),
            (first_placed, "replay-" + first_placed.event_id), (first_paid, "replay-" + first_paid.event_id))
    # Events after the replays on the same consumers prove the replays were handled.
    later = order(merchant, 500, persona_id=sentinel.persona_id)
    publish(stack, *((e, e.event_id) for e in (placed(merchant, later, at), paid(merchant, later, at))))
    wait_until(lambda: funnel_of(stub, merchant, sentinel.persona_id).paid_orders == 1 and
               funnel_of(stub, merchant, sentinel.persona_id).orders == 1, message="later events counted")
    assert funnel_of(stub, merchant, persona.persona_id) == f

    # Another paid order on another business day adds up across the daily buckets.
    second = order(merchant, 655, persona_id=persona.persona_id)
    publish(stack, *((e, e.event_id) for e in (placed(merchant, second, at.replace(hour=15)),
                                               paid(merchant, second, at.replace(hour=15)))))
    total = wait_until(lambda: (lambda g: g if g.paid_orders == 2 and g.orders == 2 else None)(
        funnel_of(stub, merchant, persona.persona_id)), message="second order counted")
    assert total.gmv.amount == 13000
    assert db.funnel_buckets.count_documents({"merchant_id": merchant, "dimension": "persona",
                                              "ref_id": persona.persona_id}) == 2


def test_order_events_of_another_merchant_do_not_reach_our_funnel(stack, stub):
    a, b = new_merchant_id(), new_merchant_id()
    persona = upsert_persona(stub, a).persona
    b_persona = upsert_persona(stub, b).persona
    at = datetime.now(timezone.utc)
    # B's order names A's persona id: it counts in B's books under that id, never in A's.
    stray = order(b, 999, persona_id=persona.persona_id)
    marker = order(b, 1, persona_id=b_persona.persona_id)
    publish(stack, *((e, e.event_id) for e in (placed(b, stray, at), paid(b, stray, at),
                                               placed(b, marker, at), paid(b, marker, at))))
    wait_until(lambda: funnel_of(stub, b, b_persona.persona_id).paid_orders == 1, message="B's events handled")
    f = funnel_of(stub, a, persona.persona_id)
    assert (f.orders, f.paid_orders, f.gmv.amount) == (0, 0, 0)


def test_concurrent_first_upserts_of_one_code_create_one_persona(stub, db):
    from concurrent.futures import ThreadPoolExecutor

    merchant = new_merchant_id()
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda i: upsert_persona(stub, merchant, code="race"), range(6)))
    assert sum(r.created for r in results) == 1
    assert len({r.persona.persona_id for r in results}) == 1
    assert db.personas.count_documents({"merchant_id": merchant}) == 1


# ---- referenced ids ----------------------------------------------------------------

def test_linked_products_must_be_the_merchants(stub, catalog, db):
    merchant, other = new_merchant_id(), new_merchant_id()
    persona = upsert_persona(stub, merchant).persona
    ours, theirs = new_product(catalog, merchant), new_product(catalog, other)
    error = rpc_error(stub.UpsertContent, pb.UpsertContentRequest(
        code="links", persona_id=persona.persona_id, type=pb.CONTENT_TYPE_ARTICLE, title="t",
        product_ids=[ours, theirs, new_id("prd")]), staff(merchant))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert set(field_violations(error)) == {"product_ids[1]", "product_ids[2]"}
    assert db.contents.count_documents({"merchant_id": merchant}) == 0
    assert list(upsert_content(stub, merchant, persona.persona_id, code="links",
                               product_ids=[ours]).content.product_ids) == [ours]


def test_check_attribution_finds_only_the_callers_persona_and_content(stub):
    merchant, other = new_merchant_id(), new_merchant_id()
    persona = upsert_persona(stub, merchant).persona
    draft = upsert_content(stub, merchant, persona.persona_id, status=pb.CONTENT_STATUS_DRAFT).content
    theirs = upsert_persona(stub, other).persona
    internal = metadata(merchant, channel="H5", member_id=new_id("mem"), service="order")

    def check(persona_id: str = "", content_id: str = "") -> tuple[bool, bool]:
        resp = stub.CheckAttribution(pb.CheckAttributionRequest(persona_id=persona_id, content_id=content_id),
                                     metadata=internal)
        return resp.persona_found, resp.content_found

    assert check(persona.persona_id, draft.content_id) == (True, True)
    assert check() == (True, True)
    assert check(theirs.persona_id, new_id("cnt")) == (False, False)
    # Front ends cannot ask: the RPC is internal.
    error = rpc_error(stub.CheckAttribution, pb.CheckAttributionRequest(persona_id=persona.persona_id), h5(merchant))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
