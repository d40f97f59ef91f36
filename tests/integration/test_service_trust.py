"""Forged identity metadata straight to each service, as any pod on the network could send
it: without an assertion, with an expired one, one signed by another key, or one whose
headers were changed after signing. Each is UNAUTHENTICATED (PEER_UNVERIFIED) and writes
nothing; the same call signed by a key holder works."""
from __future__ import annotations

import time
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymongo import MongoClient
from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from siyu.content.v1 import content_pb2, content_pb2_grpc
from siyu.member.v1 import member_pb2, member_pb2_grpc
from siyu.order.v1 import order_pb2, order_pb2_grpc

from siyu_kit import config, context, trust
from siyu_kit.context import RequestContext
from siyu_kit.ids import new_id
from tests.support import reason, rpc_error

STRANGER = trust.parse_keys("other:" + "x" * 40)


def forgeries(ctx: RequestContext) -> dict[str, tuple]:
    pairs = ctx.identity_pairs()
    guide = RequestContext(request_id=ctx.request_id, merchant_id=ctx.merchant_id, caller_kind="staff",
                           caller_id=ctx.caller_id or new_id("stf"), roles=("GUIDE",))
    signed_guide = guide.to_metadata()
    expired = time.time() - trust.TTL_S - trust.LEEWAY_S - 5
    return {
        "no assertion": pairs,
        "expired": pairs + ((trust.MD_ASSERTION, trust.sign(pairs, "gateway", now=expired)),),
        "another key": pairs + ((trust.MD_ASSERTION, trust.sign(pairs, "gateway", STRANGER)),),
        # Signed for a GUIDE of another merchant, then the headers rewritten.
        "tampered": tuple((k, v) for k, v in signed_guide if k not in (context.MD_ROLES, context.MD_MERCHANT))
        + ((context.MD_MERCHANT, ctx.merchant_id), (context.MD_ROLES, ",".join(ctx.roles) or "OWNER"),
           (context.MD_SERVICE, "ops")),
    }


def owner(merchant_id: str) -> RequestContext:
    return RequestContext(request_id=new_id("req"), merchant_id=merchant_id, caller_kind="staff",
                          caller_id=new_id("stf"), roles=("OWNER",))


def written(stack, service: str, query: dict) -> int:
    with MongoClient(stack.mongodb_uri) as client:
        database = client[config.load(service).mongodb_db]
        return sum(database[name].count_documents(query) for name in database.list_collection_names())


def _calls(stack):
    """(service, stub class, method, request, identity, the documents the call writes)."""
    mid = new_id("mch")
    code = "trust-" + uuid.uuid4().hex[:10]
    supplier = order_pb2.SupplierInput(
        name="Farm", account_kind=order_pb2.SETTLEMENT_ACCOUNT_KIND_BANK, settlement_account="6222 0000 1111")
    return [
        ("catalog", catalog_pb2_grpc.CatalogServiceStub, "CreateCategory",
         catalog_pb2.CreateCategoryRequest(name="Tea"), owner(mid), {"merchant_id": mid}),
        ("content", content_pb2_grpc.ContentServiceStub, "UpsertPersona",
         content_pb2.UpsertPersonaRequest(code=code, name="Lin"), owner(mid), {"merchant_id": mid}),
        ("order", order_pb2_grpc.OrderServiceStub, "CreateSupplier",
         order_pb2.CreateSupplierRequest(idempotency_key=code, supplier=supplier), owner(mid), {"merchant_id": mid}),
        # An internal RPC: the forged identity is a calling service.
        ("member", member_pb2_grpc.MemberServiceStub, "UpsertMerchant",
         member_pb2.UpsertMerchantRequest(code=code, name="Forged"),
         RequestContext(request_id=new_id("req"), calling_service="ops"), {"code": code}),
    ]


@pytest.mark.parametrize("index", range(4), ids=["catalog", "content", "order", "member"])
def test_forged_identity_is_refused_and_writes_nothing_then_a_signed_call_works(stack, index):
    service, stub_class, method, request, ctx, query = _calls(stack)[index]
    # A plain channel: nothing on the way signs or re-signs the metadata.
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports[service]}") as ch:
        call = getattr(stub_class(ch), method)
        for name, forged in forgeries(ctx).items():
            error = rpc_error(call, request, metadata=forged)
            assert (error.code(), reason(error)) == (grpc.StatusCode.UNAUTHENTICATED, "PEER_UNVERIFIED"), name
        assert written(stack, service, query) == 0
        call(request, metadata=ctx.to_metadata())
    assert written(stack, service, query) > 0


def test_calls_without_identity_are_unaffected_and_health_is_not_a_way_in(stack):
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports['order']}") as ch:
        health = health_pb2_grpc.HealthStub(ch)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
        forged = ((context.MD_MERCHANT, new_id("mch")), (context.MD_SERVICE, "ops"))
        error = rpc_error(health.Check, health_pb2.HealthCheckRequest(), metadata=forged)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED


# ---- the production profile refuses development secrets ---------------------------------
def _content_process(stack, tmp_path, **env: str):
    """The content service (the lightest to start) on its own port and database, NATS unreachable (no consumers or
    jobs touch the suite's streams), with the given settings over the suite's."""
    import subprocess
    import sys

    from siyu_kit.devstack import ROOT, free_port

    port = free_port()
    full = {**stack.service_env("content"), "SIYU_GRPC_PORT": str(port), "SIYU_MONGODB_DB_PREFIX": "trustprobe_",
            "SIYU_NATS_URL": "nats://127.0.0.1:1", "SIYU_METRICS_PORT": "0", **env}
    for name in SECRET_NAMES:
        full.pop(name, None)
    full.update({k: v for k, v in env.items() if k in SECRET_NAMES})
    log = tmp_path / "content.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.content"], cwd=ROOT, env=full, stdout=out,
                                stderr=subprocess.STDOUT)
    return proc, port, log


SECRET_NAMES = ("SIYU_JWT_SECRET", "SIYU_DATA_KEY", "SIYU_LOOKUP_KEY", "SIYU_PLATFORM_TOKEN",
                "SIYU_SANDBOX_PAYMENT_SECRET", "SIYU_INTERNAL_KEY")


def test_production_refuses_default_secrets_and_starts_with_real_ones(stack, tmp_path):
    import base64
    import os

    proc, _, log = _content_process(stack, tmp_path, SIYU_PROFILE="production")
    assert proc.wait(timeout=180) != 0
    refusal = [line for line in log.read_text().splitlines() if "config.refused" in line]
    assert len(refusal) == 1 and all(name in refusal[0] for name in SECRET_NAMES)

    key = base64.b64encode(os.urandom(32)).decode()
    real = {"SIYU_JWT_SECRET": "j" * 40, "SIYU_DATA_KEY": f"prod:{key}", "SIYU_LOOKUP_KEY": key,
            "SIYU_PLATFORM_TOKEN": "p" * 40, "SIYU_SANDBOX_PAYMENT_SECRET": "s" * 40,
            "SIYU_INTERNAL_KEY": "prod:" + "i" * 40}
    proc, port, log = _content_process(stack, tmp_path, SIYU_PROFILE="production", **real)
    try:
        def listening():
            assert proc.poll() is None, log.read_text()[-2000:]
            return "service.listening" in log.read_text()
        from tests.support import wait_until
        wait_until(listening, timeout=180, interval=0.2, message="the content service listening")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
            # The suite's key is not this process's: what the suite signs is not believed here.
            stub = content_pb2_grpc.ContentServiceStub(ch)
            error = rpc_error(stub.UpsertPersona, content_pb2.UpsertPersonaRequest(code="p-1", name="Lin"),
                              metadata=owner(new_id("mch")).to_metadata())
            assert reason(error) == "PEER_UNVERIFIED"
    finally:
        proc.kill()
        proc.wait(timeout=30)
